#!/usr/bin/env bash
# The NER flow on WNUT-17 (shipped with tf_distill, CC BY 4.0): fine-tune the all-MiniLM-L6-v2 tagger -> export ->
# distil a 2-layer student (flags/ner.flags) -> the same student trained without distillation -> export both
# (SavedModel with serving_text that returns words and tags; TFLite for the distilled one) -> report with entity F1,
# size and batch-1 latency (also in export/ner/report.md). Extra flags go to the teacher and both students ("$@").
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/train_teacher.sh --flagfile=flags/ner_teacher.flags "$@"
scripts/export_teacher.sh --output_dir=runs/ner_teacher --model_name=ner_teacher
scripts/distill.sh --flagfile=flags/ner.flags "$@"
scripts/distill.sh --flagfile=flags/ner.flags --output_dir=runs/ner_baseline --alpha=0 --augmentation= \
  --teacher_cache=off "$@"
scripts/export_student.sh --output_dir=runs/ner --model_name=ner_student
scripts/export_student.sh --output_dir=runs/ner_baseline --model_name=ner_student_baseline --tflite=
scripts/report.sh --teacher_model=export/ner_teacher --no_distillation_model=ner_student_no_distillation \
  --models=ner_student:export/ner_student,ner_student_no_distillation:export/ner_student_baseline \
  --tflite=ner_student_tflite_int8:export/ner_student_tflite,ner_student_tflite_full_int8:export/ner_student_tflite \
  --report_dir=export/ner
echo "demo_ner finished in $(( $(date +%s) - start )) s"

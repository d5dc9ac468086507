#!/usr/bin/env bash
# The extractive QA flow on the SQuAD 2.0 articles shipped with tf_distill (CC BY-SA 4.0): fine-tune the
# all-MiniLM-L6-v2 reader (flags/qa_teacher.flags) -> export -> distil a 2-layer reader (flags/qa.flags) -> the same
# reader trained without distillation -> export both (SavedModel whose serving_text takes a question and a context
# and returns the answer; TFLite for the distilled one) -> report with SQuAD F1, exact match, size and batch-1
# latency (also in export/qa/report.md). The presets read the articles as SQuAD v1.1 (answerable questions only).
# The demo's budget: the first 2,000 training questions (of 5,510) for every model; drop --max_train_examples to
# train on all. Extra flags go to the teacher and both students ("$@").
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
budget=(--max_train_examples=2000)
scripts/train_teacher.sh --flagfile=flags/qa_teacher.flags "${budget[@]}" "$@"
scripts/export_teacher.sh --output_dir=runs/qa_teacher --model_name=qa_teacher
scripts/distill.sh --flagfile=flags/qa.flags "${budget[@]}" "$@"
scripts/distill.sh --flagfile=flags/qa.flags --output_dir=runs/qa_baseline --alpha=0 --teacher_cache=off \
  "${budget[@]}" "$@"
scripts/export_student.sh --output_dir=runs/qa --model_name=qa_student
scripts/export_student.sh --output_dir=runs/qa_baseline --model_name=qa_student_baseline --tflite=
scripts/report.sh --teacher_model=export/qa_teacher --no_distillation_model=qa_student_no_distillation \
  --models=qa_student:export/qa_student,qa_student_no_distillation:export/qa_student_baseline \
  --tflite=qa_student_tflite_int8:export/qa_student_tflite,qa_student_tflite_full_int8:export/qa_student_tflite \
  --report_dir=export/qa
echo "demo_qa finished in $(( $(date +%s) - start )) s"

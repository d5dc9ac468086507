#!/usr/bin/env bash
# The whole flow on the embedded default (Rotten Tomatoes, all-MiniLM-L6-v2 teacher):
# fine-tune teacher -> export -> distil a 2-layer student on the labelled data plus a transfer set of unlabeled
# in-domain text (the plot sentences of the training movies, labelled by the teacher) -> the same student distilled on
# the labelled data only, and trained without distillation. The demo's budget: the plot sentences instead of
# flags/distill.flags' 10 Tang variants per example (--augmentation=), which make each epoch 11x longer -> export the students (SavedModel; TFLite for the first)
# -> report table (also in export/report.md), with the full-int8 file or, where export_student did not ship it (it
# lost more than 1 point), the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/train_teacher.sh --num_train_epochs=1 "$@"  # demo budget; flags/teacher.flags defaults to 3
scripts/export_teacher.sh --output_dir=runs/teacher
scripts/distill.sh --augmentation= --unlabeled_data=rotten_tomatoes_plots "$@"
scripts/distill.sh --augmentation= --output_dir=runs/student_labelled_only "$@"
scripts/distill.sh --flagfile=flags/baseline.flags "$@"
scripts/export_student.sh --output_dir=runs/student --model_name=student
scripts/export_student.sh --output_dir=runs/student_labelled_only --model_name=student_labelled_only --tflite=
scripts/export_student.sh --output_dir=runs/student_baseline --model_name=student_baseline --tflite=
scripts/report.sh --teacher_model=export/teacher --no_distillation_model=student_no_distillation \
  --models=student:export/student,student_labelled_only:export/student_labelled_only,student_no_distillation:export/student_baseline \
  --tflite=student_tflite_int8:export/student_tflite,student_tflite_full_int8:export/student_tflite
echo "demo finished in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# Issue 31's quantisation table in one command: float32, dynamic-range int8, post-training full int8 and QAT full int8
# of the 2-layer BERT student and the BiLSTM on Rotten Tomatoes and BBC News (and the BERT student on hotel reviews we
# wrote), 3 seeds each (bench/qat.py), then one
# summary row per table (bench/QAT_SUMMARY.md, the README's table). Finished runs and exports are reused, so a rerun
# after an interruption continues. Hours on 2 cores. The Rotten Tomatoes rows use the demo's teacher: run
# scripts/demo.sh first; BBC News fine-tunes its own (one epoch, seed 1).
# Run: bench/qat_all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -d export/teacher/1 ]]; then
  echo "error: export/teacher/1 does not exist; run scripts/demo.sh first (its teacher labels the Rotten Tomatoes rows)" >&2
  exit 1
fi
python3 bench/qat.py --task=rotten_tomatoes --student=bert2 --seeds=1,2,3 --teacher_model=export/teacher/1 \
  --work_dir=runs/bench_qat --output=bench/QAT_RT_BERT2.md -- --unlabeled_data=rotten_tomatoes_plots
python3 bench/qat.py --task=bbc_news --student=bert2 --seeds=1,2,3 --work_dir=runs/bench_qat \
  --output=bench/QAT_BBC_BERT2.md
# The BiLSTM's quantisation-aware epoch at a tenth of its preset's learning rate (bench/qat.py's docstring).
python3 bench/qat.py --task=rotten_tomatoes --student=bilstm --seeds=1,2,3 --teacher_model=export/teacher/1 \
  --work_dir=runs/bench_qat_b2000 --max_train_examples=2000 --qat_learning_rate=1e-4 --output=bench/QAT_RT2000_BILSTM.md
python3 bench/qat.py --task=bbc_news --student=bilstm --seeds=1,2,3 --work_dir=runs/bench_qat --qat_learning_rate=1e-4 \
  --output=bench/QAT_BBC_BILSTM.md -- --augmentation=
# Text we wrote ourselves: 600 hotel reviews.
python3 bench/qat.py --task=csv --data_dir=bench/data/hotel_reviews --student=bert2 --seeds=1,2,3 \
  --work_dir=runs/bench_qat_hotel --output=bench/QAT_HOTEL_BERT2.md
python3 bench/qat.py --summarize=bench/QAT_RT_BERT2.md,bench/QAT_BBC_BERT2.md,bench/QAT_HOTEL_BERT2.md,bench/QAT_RT2000_BILSTM.md,bench/QAT_BBC_BILSTM.md \
  --output=bench/QAT_SUMMARY.md

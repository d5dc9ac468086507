"""What the transfer set adds (issue 12's table): test accuracy (a tagger's entity F1) of the 2-layer BERT student and
the BiLSTM trained without distillation / distilled on the labelled data / + unlabeled text / + augmentation, over
seeds, per task (classification, or a tagging task such as wnut17).

    python3 bench/transfer_sets.py --tasks=rotten_tomatoes,bbc_news --seeds=1,2,3 --output=bench/TRANSFER_SETS.md
    # smoke run at a tiny budget:
    python3 bench/transfer_sets.py --work_dir=/tmp/transfer_smoke --tasks=rotten_tomatoes --seeds=1 \\
        --students=bert2 --max_train_examples=64 --teacher_max_train_examples=64 --teacher_epochs=1 --epochs=1 \\
        --augmentation=tang:n=2 --unlabeled_ratio=0.5

Per task, the teacher is fine-tuned and exported first if `<work_dir>/<task>/teacher` has no eval_results.json
(scripts/train_teacher.sh with flags/teacher.flags, for wnut17 flags/ner_teacher.flags and for squad
flags/qa_teacher.flags, then scripts/export_teacher.sh). Each student run is
`scripts/distill.sh` with the student's preset (bert2: flags/distill.flags, bilstm: flags/bilstm.flags, tinybert4:
flags/tinybert4.flags, whose --stages replace --epochs; ner: flags/ner.flags, the 2-layer tagger for --tasks=wnut17
or conll; qa: flags/qa.flags, the 2-layer reader for --tasks=squad, SQuAD F1 as a fraction) and:
- no distillation: bench_runs.NO_DISTILLATION (`--alpha=0 --intermediate_matches= --stages= --augmentation=
  --teacher_cache=off --kd_loss=ce`, the stages' epochs as --num_train_epochs), the twin of flags/baseline.flags;
- distillation: the preset on the labelled data (`--augmentation=`: the bilstm and tinybert4 presets augment);
- + unlabeled text: `--unlabeled_data=rotten_tomatoes_plots` (4,546 plot sentences of the training movies) for
  Rotten Tomatoes; BBC News has no unlabeled set in the packaged corpora, so its row is n/a;
- + augmentation: `--augmentation=SPEC --augmentation_mode=MODE --teacher_cache=auto` (`off` for a preset with
  intermediate matches: the teacher labels its variants online);
- + unlabeled text + augmentation: both transfer sets (n/a where there is no unlabeled set).
`--configs` picks rows by key (none, labelled, unlabeled, augmentation, both; default: all); the no-distillation
row is always there, as the others are measured against it.
Your own data: `--tasks=csv --data_dir=DIR` (train/dev/test .csv with text and label columns), for teacher and
students alike.
A run whose eval_results.json exists is reused, so an interrupted bench continues where it stopped. The table gives
the mean ± sample sd of test accuracy over the seeds, its share of the teacher's, the gain over the twin and the mean
wall time of a student run (written to `<run_dir>.seconds` when the bench trains it; "-" for runs reused from before
that file existed; compare within one table, as machine load moves it).
"""

import argparse
import os
import sys
import time

from bench_runs import (REPO, fine_tuned_teacher, is_finished, mean_sd as _mean_sd, preset_setting, publish,
                        run_logged as _run, stage_epochs, test_accuracy as _test_accuracy, twin_flags)

STUDENTS = {"bert2": "flags/distill.flags", "bilstm": "flags/bilstm.flags", "tinybert4": "flags/tinybert4.flags",
            "ner": "flags/ner.flags", "qa": "flags/qa.flags"}  # ner, qa: the 2-layer tagger's and reader's presets
TEACHER_PRESETS = {"wnut17": "flags/ner_teacher.flags", "squad": "flags/qa_teacher.flags"}  # else flags/teacher.flags'
CONFIGS = {"none": "no distillation", "labelled": "distillation", "unlabeled": "+ unlabeled text",
           "augmentation": "+ augmentation", "both": "+ unlabeled text + augmentation"}  # --configs key: row
UNLABELED = {"rotten_tomatoes": "rotten_tomatoes_plots"}
TASK_TITLES = {"rotten_tomatoes": "Rotten Tomatoes", "bbc_news": "BBC News", "wnut17": "WNUT-17 (NER)",
               "squad": "SQuAD 2.0 articles (QA)"}
METRICS = {"wnut17": "entity F1", "conll": "entity F1", "squad": "SQuAD F1"}  # what eval_results.json's "metric" is
PERCENT_METRICS = ("squad",)  # tasks whose eval_results.json score is in percent (SQuAD's), read as a fraction


def teacher(task, args):
  """The task's teacher export (trained and exported if missing) and its test accuracy."""
  run_dir = os.path.join(args.work_dir, task, "teacher")
  export_root = os.path.join(args.work_dir, task, "export")
  flags = [f"--flagfile={TEACHER_PRESETS[task]}"] * (task in TEACHER_PRESETS) + [f"--task_name={task}"] + _common(args)
  if args.teacher_epochs:
    flags.append(f"--num_train_epochs={args.teacher_epochs}")
  if args.teacher_max_train_examples:
    flags.append(f"--max_train_examples={args.teacher_max_train_examples}")
  if args.teacher_seed is not None:
    flags.append(f"--seed={args.teacher_seed}")
  if args.teacher_learning_rate:
    flags.append(f"--learning_rate={args.teacher_learning_rate}")
  return fine_tuned_teacher(run_dir, export_root, flags), test_score(task, run_dir)


def test_score(task, run_dir):
  """The run's test score as a fraction."""
  return _test_accuracy(run_dir) / (100.0 if task in PERCENT_METRICS else 1.0)


def _common(args):
  return ([f"--max_seq_length={args.max_seq_length}"] if args.max_seq_length else []) + (
      [f"--data_dir={args.data_dir}"] if args.data_dir else [])


def student_flags(task, student, config, args):
  """The distill.sh flags of one table cell (module docstring); None when the cell is n/a."""
  preset = STUDENTS[student]
  flags = [f"--flagfile={preset}", f"--task_name={task}"]
  if not stage_epochs(preset):  # a preset's --stages give its epochs
    flags.append(f"--num_train_epochs={args.epochs}")
  if args.max_train_examples:
    flags.append(f"--max_train_examples={args.max_train_examples}")
  if args.learning_rate:
    flags.append(f"--learning_rate={args.learning_rate}")
  if config == "no distillation":
    return flags + twin_flags(preset)
  augments = config.endswith("+ augmentation")
  if not augments:
    flags.append("--augmentation=")  # the bilstm and tinybert4 presets augment; here only the augmentation rows do
  if "+ unlabeled text" in config:
    if task not in UNLABELED:
      return None
    flags.append(f"--unlabeled_data={UNLABELED[task]}")
    if args.unlabeled_ratio:
      flags.append(f"--unlabeled_ratio={args.unlabeled_ratio}")
  if augments:
    # Intermediate matches take the teacher's hidden states and attention for every variant: cached, those are
    # ~170 KB per Rotten Tomatoes example (gigabytes for a set of variants), so such presets query the teacher online.
    cache = "off" if preset_setting(preset, "intermediate_matches") else "auto"
    flags += [f"--augmentation={args.augmentation}", f"--augmentation_mode={args.augmentation_mode}",
              f"--teacher_cache={cache}"]
  return flags


def student_accuracy(task, student, config, seed, teacher_model, args):
  flags = student_flags(task, student, config, args)
  if flags is None:
    return None
  name = f"{student}_{config.replace('+ ', 'plus_').replace(' ', '_')}_s{seed}"
  run_dir = os.path.join(args.work_dir, task, name)
  seconds_file = os.path.join(REPO, run_dir + ".seconds")
  if not is_finished(run_dir):
    start = time.time()
    _run(["scripts/distill.sh", *flags, f"--teacher_model={teacher_model}", f"--seed={seed}",
          f"--output_dir={run_dir}"] + _common(args), os.path.join(REPO, run_dir + ".log"))
    with open(seconds_file, "w", encoding="utf-8") as f:
      f.write(f"{time.time() - start:.1f}\n")
  seconds = None
  if os.path.isfile(seconds_file):
    with open(seconds_file, encoding="utf-8") as f:
      seconds = float(f.read())
  return test_score(task, run_dir), seconds


def task_table(task, args, seeds):
  teacher_model, teacher_accuracy = teacher(task, args)
  title = TASK_TITLES.get(task, f"{task} ({args.data_dir})" if args.data_dir else task)
  metric = METRICS.get(task, "accuracy")
  lines = [f"**{title}**: teacher (all-MiniLM-L6-v2 fine-tuned) test {metric} {teacher_accuracy:.4f}.", "",
           f"| student | transfer set | test {metric} | % of teacher | vs no distillation | seeds "
           "| wall time per run |",
           "|---|---|---|---|---|---|---|"]
  for student in args.students.split(","):
    twin = None
    for config in [CONFIGS[key] for key in args.configs]:
      runs = [student_accuracy(task, student, config, seed, teacher_model, args) for seed in seeds]
      if runs[0] is None:
        lines.append(f"| {student} | {config} | n/a (no unlabeled set for this task) | | | | |")
        continue
      values, seconds = [accuracy for accuracy, _ in runs], [s for _, s in runs]
      wall = "-" if None in seconds else f"{sum(seconds) / len(seconds) / 60:.1f} min"
      mean, sd = _mean_sd(values)
      twin = mean if config == "no distillation" else twin
      spread = f" ± {sd:.4f}" if len(values) > 1 else ""
      gain = "" if config == "no distillation" else f"{100 * (mean - twin):+.2f} points"
      lines.append(f"| {student} | {config} | {mean:.4f}{spread} | {100 * mean / teacher_accuracy:.1f}% | {gain} | "
                   f"{len(values)} | {wall} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="rotten_tomatoes,bbc_news")
  parser.add_argument("--students", default="bert2,bilstm")
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--work_dir", default="runs/bench_transfer", help="Runs go to <work_dir>/<task>/...")
  parser.add_argument("--max_train_examples", type=int, default=None, help="Students: first N training examples.")
  parser.add_argument("--epochs", type=int, default=3, help="Student epochs.")
  parser.add_argument("--learning_rate", type=float, default=None, help="Students (all rows); default: the preset's.")
  parser.add_argument("--teacher_learning_rate", type=float, default=None, help="Default: flags/teacher.flags'.")
  parser.add_argument("--teacher_epochs", type=int, default=None, help="Default: flags/teacher.flags' 3.")
  parser.add_argument("--teacher_max_train_examples", type=int, default=None)
  parser.add_argument("--teacher_seed", type=int, default=None, help="Default: flags/common.flags' 42.")
  parser.add_argument("--max_seq_length", type=int, default=None, help="Default: flags/common.flags' 64.")
  parser.add_argument("--data_dir", default=None, help="With --tasks=csv: the directory of train/dev/test .csv.")
  parser.add_argument("--augmentation", default="tang:n=20")
  parser.add_argument("--augmentation_mode", default="fixed", choices=["fixed", "per_epoch"])
  parser.add_argument("--unlabeled_ratio", type=float, default=None, help="Default: all unlabeled text each epoch.")
  parser.add_argument("--configs", default=",".join(CONFIGS), help="Rows, by key: " + ", ".join(CONFIGS) + ".")
  parser.add_argument("--output", help="Markdown file to write the tables and the command to.")
  args = parser.parse_args()
  for name, given, known in (("configs", args.configs, CONFIGS), ("students", args.students, STUDENTS)):
    unknown = sorted(set(given.split(",")) - set(known))
    if unknown:
      parser.error(f"--{name}: unknown {unknown}; use some of {','.join(known)}")
  args.configs = ["none"] + [key for key in CONFIGS if key != "none" and key in args.configs.split(",")]
  seeds = [int(s) for s in args.seeds.split(",")]
  command = "python3 bench/transfer_sets.py " + " ".join(sys.argv[1:])
  students = args.students.split(",")
  epochs = [f"{args.epochs} epochs"] if any(not stage_epochs(STUDENTS[student]) for student in students) else []
  epochs += [f"{student}: stages {preset_setting(STUDENTS[student], 'stages')}"
             for student in students if stage_epochs(STUDENTS[student])]
  budget = (f"Students: {', '.join(epochs)} on {args.max_train_examples or 'all'} training examples; "
            f"augmentation {args.augmentation} ({args.augmentation_mode}); unlabeled ratio "
            f"{args.unlabeled_ratio or 'all'}; seeds {args.seeds}; mean ± sample sd.")
  tables = "\n\n".join(task_table(task, args, seeds) for task in args.tasks.split(","))
  text = f"Command: `{command}`\n\n{budget}\n\n{tables}\n"
  publish(text, args.output)


if __name__ == "__main__":
  main()

"""Epoch time online vs cached for an augmented transfer set (issue 12), and the teacher's labelling rate.

    python3 bench/augmented_epoch.py --teacher_model=runs/bench_ensemble/export_s1/teacher --output=bench/AUGMENTED_EPOCH.md

Per student preset (bert2: flags/distill.flags, bilstm: flags/bilstm.flags), one epoch of `scripts/distill.sh` on
the first --max_train_examples training examples plus their --augmentation variants (`--augmentation_mode=fixed`),
twice in a row in this process tree:
- online: `--teacher_cache=off`, the teacher runs in every step;
- cached: `--teacher_cache=build`, the teacher labels every row once before training (the cache manifest's
  build_seconds and record count give the labelling rate), then the steps read its outputs.
Epoch seconds are eval_results.json's epoch_seconds (the fit call: training and dev evaluation). The two runs of a
row use the same seed, so they train on the same rows; their test accuracies agree up to float32 reordering.
Absolute times move with machine load; compare within a row.
"""

import argparse
import json
import os
import sys

from bench_runs import REPO, eval_results, publish, run_logged
from transfer_sets import STUDENTS


def run(student, mode, args):
  """One epoch of `student` with the teacher queried online or cached; returns the run directory."""
  run_dir = os.path.join(args.work_dir, f"{student}_{mode}")
  flags = [f"--flagfile={STUDENTS[student]}", f"--task_name={args.task_name}", f"--teacher_model={args.teacher_model}",
           f"--max_train_examples={args.max_train_examples}", f"--augmentation={args.augmentation}",
           "--augmentation_mode=fixed", "--num_train_epochs=1", f"--seed={args.seed}", f"--output_dir={run_dir}",
           f"--teacher_cache={'off' if mode == 'online' else 'build'}"]
  run_logged(["scripts/distill.sh", *flags], os.path.join(REPO, run_dir + ".log"))
  return run_dir


def row(student, args):
  online = eval_results(run(student, "online", args))
  cached_dir = run(student, "cached", args)
  cached = eval_results(cached_dir)
  with open(os.path.join(REPO, cached_dir, "teacher_cache", "manifest.json"), encoding="utf-8") as f:
    manifest = json.load(f)
  records = sum(shard["num_records"] for shard in manifest["shards"])
  build = manifest["build_seconds"]
  online_s, cached_s = online["epoch_seconds"][0], cached["epoch_seconds"][0]
  repay = f"{build / (online_s - cached_s):.1f}" if online_s > cached_s else "never"
  return (f"| {student} | {records} | {online_s:.1f} | {build:.1f} ({records / build:.0f} ex/s) | {cached_s:.1f} | "
          f"{online_s / cached_s:.2f}x | {repay} | "
          f"{online['test_accuracy']:.4f} / {cached['test_accuracy']:.4f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--teacher_model", required=True, help="An exported teacher (scripts/export_teacher.sh).")
  parser.add_argument("--task_name", default="rotten_tomatoes")
  parser.add_argument("--students", default="bert2,bilstm")
  parser.add_argument("--max_train_examples", type=int, default=1000)
  parser.add_argument("--augmentation", default="tang:n=10")
  parser.add_argument("--seed", type=int, default=1)
  parser.add_argument("--work_dir", default="runs/bench_augmented_epoch")
  parser.add_argument("--output", help="Markdown file to write the table and the command to.")
  args = parser.parse_args()
  load = os.getloadavg()[0]
  lines = [f"Command: `python3 bench/augmented_epoch.py {' '.join(sys.argv[1:])}`", "",
           f"{args.task_name}, first {args.max_train_examples} training examples + {args.augmentation} variants "
           f"(fixed), one epoch, seed {args.seed}; {os.cpu_count()} CPUs, load average {load:.2f} at the start.", "",
           "| student | rows labelled | online epoch s | cache build s (teacher labelling) | cached epoch s | "
           "online / cached | epochs to repay the build | test acc online / cached |",
           "|---|---|---|---|---|---|---|---|"]
  lines += [row(student, args) for student in args.students.split(",")]
  publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
  main()

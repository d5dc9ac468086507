"""Does a general-distilled start beat random init at this corpus size? (issue 35's table)

    python3 bench/general_distillation.py --general_student=runs/general_tinybert4/student --seeds=1,2,3 \\
        --output=bench/GENERAL_DISTILLATION.md

Task distillation of the TinyBERT-4 student (flags/tinybert4.flags: 4 layers x 312, hidden states and attention
scores over the uniform map, then the soft labels; stages intermediate:2,prediction:2) from random weights
(`--student_init_checkpoint=`) and from `--general_student` (the output of scripts/general_distill.sh), on each
`--tasks` entry TASK:N (the first N training examples; TASK alone: all), for each seed. `--augmentation` (default
none) is passed to every student run, e.g. tinybert:n=10 for the preset's own transfer set. Each task's teacher is
fine-tuned (flags/teacher.flags, `--teacher_epochs`) and exported under `--work_dir/<task>` unless it is there. Finished runs are reused,
so an interrupted bench continues. The table: mean ± sample sd of test accuracy and the gain of the general start.
"""

import argparse
import os

from bench_runs import REPO, fine_tuned_teacher, is_finished, mean_sd, mean_sd_text, publish, run_logged, test_accuracy

INITS = ("random", "general")


def parse_tasks(text):
  """"rotten_tomatoes:1000,bbc_news:500" -> [("rotten_tomatoes", 1000), ("bbc_news", 500)] (None: all examples)."""
  tasks = []
  for item in text.split(","):
    name, _, size = item.partition(":")
    tasks.append((name, int(size) if size else None))
  return tasks


def student_flags(task, size, init, seed, teacher, args):
  flags = ["--flagfile=flags/tinybert4.flags", f"--task_name={task}", f"--teacher_model={teacher}", f"--seed={seed}",
           f"--augmentation={args.augmentation}",
           f"--student_init_checkpoint={args.general_student if init == 'general' else ''}"]
  return flags + ([f"--max_train_examples={size}"] if size else []) + args.student_flags.split()


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--general_student", required=True, help="scripts/general_distill.sh's <output_dir>/student.")
  parser.add_argument("--tasks", default="rotten_tomatoes:1000,bbc_news:500")
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--inits", default=",".join(INITS), help="Which starts to train (the table needs both; "
                      "e.g. random alone while general distillation runs).")
  parser.add_argument("--augmentation", default="", help="--augmentation of every student run (default: none).")
  parser.add_argument("--student_flags", default="", help="More distill.sh flags for every student run, space "
                      "separated, e.g. '--stages=prediction:4' (soft labels only); with --tag naming the runs.")
  parser.add_argument("--tag", default="", help="Part of the run directories' names for --student_flags.")
  parser.add_argument("--teacher_epochs", type=int, default=1, help="Teacher fine-tuning epochs (the demo's budget).")
  parser.add_argument("--work_dir", default="runs/bench_general")
  parser.add_argument("--output", default=None, help="Also write the table here (e.g. bench/GENERAL_DISTILLATION.md).")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  lines = [f"Task distillation of the TinyBERT-4 student (flags/tinybert4.flags, augmentation: "
           f"{args.augmentation or 'none'}{', ' + args.student_flags if args.student_flags else ''}) from random init "
           f"vs from {args.general_student}; test accuracy, mean ± sd over seeds {args.seeds}.", "",
           "| task | examples | teacher | random init | general-distilled init | gain |", "|---|---|---|---|---|---|"]
  for task, size in parse_tasks(args.tasks):
    teacher = fine_tuned_teacher(os.path.join(args.work_dir, task, "teacher"),
                                 os.path.join(args.work_dir, task, "export"),
                                 [f"--task_name={task}", f"--num_train_epochs={args.teacher_epochs}"])
    scores = {}
    for init in args.inits.split(","):
      scores[init] = []
      for seed in seeds:
        name = "_".join(filter(None, [str(size or "all"), args.augmentation or "noaug", args.tag, init, str(seed)]))
        run_dir = os.path.join(args.work_dir, task, name)
        if not is_finished(run_dir):
          run_logged(["scripts/distill.sh", *student_flags(task, size, init, seed, teacher, args),
                      f"--output_dir={run_dir}"], os.path.join(REPO, run_dir + ".log"))
        scores[init].append(test_accuracy(run_dir))
    if set(scores) != set(INITS):
      continue
    gain = mean_sd([g - r for g, r in zip(scores["general"], scores["random"])])[0]
    lines.append(f"| {task} | {size or 'all'} | {test_accuracy(os.path.join(args.work_dir, task, 'teacher')):.4f} | "
                 f"{mean_sd_text(scores['random'])} | {mean_sd_text(scores['general'])} | {gain * 100:+.2f} points |")
  publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
  main()

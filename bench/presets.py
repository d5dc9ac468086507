"""Test accuracy of each distillation preset's student against the teacher and against the same student trained
without distillation (hard labels only), over several seeds, on the embedded Rotten Tomatoes task.

    python3 bench/presets.py --max_train_examples=2000 --epochs=2 --seeds=1,2,3 --presets=distilbert6,bilstm

Runs `scripts/distill.sh --flagfile=flags/<preset>.flags` (the preset exactly, plus the sizes given here) and the
no-distillation twin (bench_runs.NO_DISTILLATION: `--alpha=0 --intermediate_matches= --stages= --augmentation=
--teacher_cache=off --kd_loss=ce`, same student, same epochs), then writes a markdown table (mean and sample standard deviation over the seeds) to stdout
and, with --output, to a file.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench_runs import NO_DISTILLATION

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(preset, seed, distilled, args):
  name = f"{preset}_{'kd' if distilled else 'nokd'}_s{seed}"
  out = os.path.join("runs", "bench_presets", name)
  results = os.path.join(REPO, out, "eval_results.json")
  if not os.path.isfile(results):
    command = ["scripts/distill.sh", f"--flagfile=flags/{preset}.flags", f"--output_dir={out}", f"--seed={seed}",
               f"--teacher_model={args.teacher_model}", f"--max_train_examples={args.max_train_examples}"]
    if "--stages" not in open(os.path.join(REPO, "flags", f"{preset}.flags"), encoding="utf-8").read():
      command.append(f"--num_train_epochs={args.epochs}")
    else:
      command.append(f"--stages={args.tinybert_stages}" if distilled else "--stages=")
      if not distilled:
        command.append(f"--num_train_epochs={sum(int(s.split(':')[1]) for s in args.tinybert_stages.split(','))}")
    if not distilled:
      command += list(NO_DISTILLATION)
    start = time.time()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"{name}: {time.time() - start:.0f} s", file=sys.stderr)
  with open(results, encoding="utf-8") as f:
    return json.load(f)["test_accuracy"]


def summary(values):
  mean = statistics.mean(values)
  spread = statistics.stdev(values) if len(values) > 1 else float("nan")
  return mean, spread, f"{mean:.4f}" + (f" ± {spread:.4f}" if len(values) > 1 else "")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--presets", default="distilbert6,pkd_skip,tinybert4,minilm,bilstm")
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--max_train_examples", type=int, default=2000)
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--tinybert_stages", default="intermediate:1,prediction:1")
  parser.add_argument("--teacher_model", default="export/teacher")
  parser.add_argument("--output")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  with open(os.path.join(REPO, "runs", "teacher", "eval_results.json"), encoding="utf-8") as f:
    teacher = json.load(f)["test_accuracy"]
  lines = [f"Rotten Tomatoes test accuracy (1,241 examples); students trained on the first {args.max_train_examples} "
           f"training examples for {args.epochs} epochs (tinybert4: stages {args.tinybert_stages}); seeds "
           f"{args.seeds}; teacher (all-MiniLM-L6-v2 fine-tuned, 6 layers) {teacher:.4f}.", "",
           "| preset | distilled | % of teacher | no distillation | distilled - no distillation | seeds |",
           "|---|---|---|---|---|---|"]
  for preset in args.presets.split(","):
    kd = [run(preset, seed, True, args) for seed in seeds]
    base = [run(preset, seed, False, args) for seed in seeds]
    kd_mean, kd_sd, kd_text = summary(kd)
    base_mean, base_sd, base_text = summary(base)
    lines.append(f"| {preset} | {kd_text} | {100 * kd_mean / teacher:.1f}% | {base_text} | "
                 f"{100 * (kd_mean - base_mean):+.2f} points | {len(seeds)} |")
  table = "\n".join(lines)
  print(table)
  if args.output:
    with open(args.output, "a", encoding="utf-8") as f:
      f.write(f"\nCommand: `python3 bench/presets.py {' '.join(sys.argv[1:])}`\n\n{table}\n")


if __name__ == "__main__":
  main()

"""Test accuracy of each distillation preset's student against the teacher and against the same student trained
without distillation (hard labels only), over several seeds, on the embedded Rotten Tomatoes task.

    python3 bench/presets.py --max_train_examples=2000 --epochs=2 --seeds=1,2,3 --presets=distilbert6,bilstm

Runs `scripts/distill.sh --flagfile=flags/<preset>.flags` (the preset exactly, plus the sizes given here) and the
no-distillation twin (bench_runs.NO_DISTILLATION: `--alpha=0 --intermediate_matches= --stages= --augmentation=
--teacher_cache=off --kd_loss=ce`, same student, same epochs), then writes a markdown table (mean and sample
standard deviation over the seeds) to stdout and, with --output, appends it to a file.
"""

import argparse
import os
import sys

from bench_runs import (NO_DISTILLATION, REPO, epochs_of_stages, is_finished, mean_sd, mean_sd_text, run_logged,
                        stage_epochs, test_accuracy)


def run(preset, seed, distilled, args):
  """Test accuracy of one preset run (trained unless finished; its log beside it, runs/bench_presets/NAME.log)."""
  name = f"{preset}_{'kd' if distilled else 'nokd'}_s{seed}"
  out = os.path.join("runs", "bench_presets", name)
  if not is_finished(out):
    flagfile = f"flags/{preset}.flags"
    command = ["scripts/distill.sh", f"--flagfile={flagfile}", f"--output_dir={out}", f"--seed={seed}",
               f"--teacher_model={args.teacher_model}", f"--max_train_examples={args.max_train_examples}"]
    if not stage_epochs(flagfile):
      command.append(f"--num_train_epochs={args.epochs}")
    elif distilled:
      command.append(f"--stages={args.tinybert_stages}")
    else:
      command.append(f"--num_train_epochs={epochs_of_stages(args.tinybert_stages)}")
    if not distilled:
      command += list(NO_DISTILLATION)
    run_logged(command, os.path.join(REPO, out + ".log"))
  return test_accuracy(out)


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
  teacher = test_accuracy(os.path.join("runs", "teacher"))
  lines = [f"Rotten Tomatoes test accuracy (1,241 examples); students trained on the first {args.max_train_examples} "
           f"training examples for {args.epochs} epochs (tinybert4: stages {args.tinybert_stages}); seeds "
           f"{args.seeds}; teacher (all-MiniLM-L6-v2 fine-tuned, 6 layers) {teacher:.4f}.", "",
           "| preset | distilled | % of teacher | no distillation | distilled - no distillation | seeds |",
           "|---|---|---|---|---|---|"]
  for preset in args.presets.split(","):
    kd = [run(preset, seed, True, args) for seed in seeds]
    base = [run(preset, seed, False, args) for seed in seeds]
    kd_mean, base_mean = mean_sd(kd)[0], mean_sd(base)[0]
    lines.append(f"| {preset} | {mean_sd_text(kd)} | {100 * kd_mean / teacher:.1f}% | {mean_sd_text(base)} | "
                 f"{100 * (kd_mean - base_mean):+.2f} points | {len(seeds)} |")
  table = "\n".join(lines)
  print(table)
  if args.output:
    with open(args.output, "a", encoding="utf-8") as f:
      f.write(f"\nCommand: `python3 bench/presets.py {' '.join(sys.argv[1:])}`\n\n{table}\n")


if __name__ == "__main__":
  main()

"""Test accuracy of the default student recipe (scripts/distill.sh) with trained word embeddings, exact AdamW
(`--embedding_optimizer=adamw`, the default) against the row-sparse LazyAdamW (`lazy_adamw`), over several seeds.

    python3 bench/embedding_optimizer_accuracy.py --teacher_model=export/teacher --seeds=1,2,3 \
        --max_train_examples=2000 --epochs=2 --output=bench/RESULTS.md

With --teacher_cache_dir the runs read the teacher's logits from one shared cache (--teacher_cache=auto) instead of
querying it online; the soft targets are the same. Each run is `scripts/distill.sh --nofreeze_word_embeddings --embedding_optimizer=X --seed=S` plus the budget given
here (the rest of flags/distill.flags unchanged); a finished run's eval_results.json is reused. Prints a markdown
table: mean ± sample standard deviation of the test accuracy and the mean wall time per run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIMIZERS = ("adamw", "lazy_adamw")


def run(optimizer, seed, args):
  out = os.path.join(args.runs_dir, f"{optimizer}_s{seed}")
  results = os.path.join(out, "eval_results.json")
  seconds = None
  if not os.path.isfile(results):
    command = ["scripts/distill.sh", f"--output_dir={out}", f"--seed={seed}", f"--teacher_model={args.teacher_model}",
               "--nofreeze_word_embeddings", f"--embedding_optimizer={optimizer}",
               f"--num_train_epochs={args.epochs}", "--augmentation="]
    if args.max_train_examples:
      command.append(f"--max_train_examples={args.max_train_examples}")
    if args.teacher_cache_dir:  # the teacher labels the training split once for all runs (same outputs as online)
      command += ["--teacher_cache=auto", f"--teacher_cache_dir={args.teacher_cache_dir}"]
    else:
      command.append("--teacher_cache=off")
    start = time.time()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
      sys.exit(f"{' '.join(command)} failed:\n" + "\n".join(done.stderr.strip().splitlines()[-5:]))
    seconds = time.time() - start
    print(f"{optimizer} seed {seed}: {seconds:.0f} s", file=sys.stderr)
  with open(results, encoding="utf-8") as f:
    return json.load(f)["test_accuracy"], seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--teacher_model", default="export/teacher")
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--max_train_examples", type=int, default=2000, help="0: the whole training split")
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--runs_dir", default=os.path.join("runs", "bench_embedding_optimizer"))
  parser.add_argument("--teacher_cache_dir", help="share one teacher cache between the runs (default: online teacher)")
  parser.add_argument("--output")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  rows = []
  for optimizer in OPTIMIZERS:
    accuracies, seconds = zip(*[run(optimizer, seed, args) for seed in seeds])
    spread = f" ± {statistics.stdev(accuracies):.4f}" if len(seeds) > 1 else ""
    timed = [s for s in seconds if s is not None]
    wall = f"{statistics.mean(timed):.0f} s" if timed else "(reused runs)"
    rows.append(f"| {optimizer} | {statistics.mean(accuracies):.4f}{spread} | "
                f"{', '.join(f'{a:.4f}' for a in accuracies)} | {wall} |")
  budget = (f"the first {args.max_train_examples} training examples" if args.max_train_examples else
            "the whole training split")
  lines = [f"Rotten Tomatoes test accuracy (1,241 examples) of the scripts/distill.sh student with trained word "
           f"embeddings, {budget}, {args.epochs} epochs, seeds {args.seeds}, teacher {args.teacher_model}.", "",
           "| --embedding_optimizer | test accuracy (mean ± sd) | per seed | wall time per run |", "|---|---|---|---|",
           *rows]
  table = "\n".join(lines)
  print(table)
  if args.output:
    with open(args.output, "a", encoding="utf-8") as f:
      f.write(f"\nCommand: `python3 bench/embedding_optimizer_accuracy.py {' '.join(sys.argv[1:])}`\n\n{table}\n")


if __name__ == "__main__":
  main()

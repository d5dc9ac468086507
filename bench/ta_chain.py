"""A teacher-assistant chain against direct distillation: test accuracy of a 1-layer student distilled from the
6-layer teacher through a 3-layer assistant (`scripts/chain.sh`) and directly (`scripts/distill.sh`), over seeds.

    python3 bench/ta_chain.py --teacher_model=export/teacher --seeds=1,2,3 --output=bench/TA_CHAIN.md
    # smoke run on a tiny setup:
    python3 bench/ta_chain.py --teacher_model=/tmp/t/export/teacher --task_name=csv --data_dir=/tmp/t/data \\
        --max_seq_length=16 --assistant_num_layers=2 --assistant_init=1,2 --seeds=1 --epochs=1 --runs_dir=/tmp/t/runs

Both final students start from the same teacher lineage: the direct one from teacher layer --direct_init (default
1), the chain's from assistant layer --student_init (default 1), itself from teacher layer 1 (--assistant_init
1,3,5). Every stage distils with flags/chain.flags' (and flags/distill.flags') soft CE at T=2, alpha=0.5, for
--epochs epochs on --max_train_examples. The teacher's outputs are cached once (`--teacher_cache=auto`) and shared
by the direct runs and the chains' first stage; each assistant is cached in its own run. A run whose
eval_results.json exists is reused, so an interrupted bench continues where it stopped. The table gives mean ±
sample sd of test accuracy over the seeds.
"""

import argparse
import os
import sys

from bench_runs import is_finished, mean_sd, mean_sd_text, publish, run_logged, test_accuracy


def common_flags(args, seed):
  flags = [f"--teacher_model={args.teacher_model}", f"--seed={seed}", f"--num_train_epochs={args.epochs}",
           f"--task_name={args.task_name}", "--student_num_layers=1", "--teacher_cache=auto",
           f"--teacher_cache_dir={os.path.join(args.runs_dir, 'teacher_cache')}"]
  flags += [f"--{name}={getattr(args, name)}" for name in ("max_train_examples", "data_dir", "max_seq_length")
            if getattr(args, name)]
  return flags


def chain_accuracies(args, seed):
  """(assistant, chain student) test accuracy of one seed."""
  out = os.path.join(args.runs_dir, f"chain_s{seed}")
  if not is_finished(os.path.join(out, "student")):
    run_logged(["scripts/chain.sh", *common_flags(args, seed), f"--output_dir={out}",
                f"--assistant_num_layers={args.assistant_num_layers}", f"--assistant_init_from_layers={args.assistant_init}",
                f"--student_init_from_layers={args.student_init}"], os.path.join(args.runs_dir, f"chain_s{seed}.log"))
  return test_accuracy(os.path.join(out, "assistant")), test_accuracy(os.path.join(out, "student"))


def direct_accuracy(args, seed):
  out = os.path.join(args.runs_dir, f"direct_s{seed}")
  if not is_finished(out):
    run_logged(["scripts/distill.sh", *common_flags(args, seed), f"--output_dir={out}",
                f"--student_init_from_layers={args.direct_init}"], os.path.join(args.runs_dir, f"direct_s{seed}.log"))
  return test_accuracy(out)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--teacher_model", default="export/teacher")
  parser.add_argument("--seeds", default="1,2,3")
  parser.add_argument("--runs_dir", default="runs/bench_ta_chain")
  parser.add_argument("--task_name", default="rotten_tomatoes")
  parser.add_argument("--data_dir", default=None, help="For --task_name=csv.")
  parser.add_argument("--max_seq_length", type=int, default=None, help="Default: flags/common.flags' 64.")
  parser.add_argument("--max_train_examples", type=int, default=None, help="Default: the whole training split.")
  parser.add_argument("--epochs", type=int, default=3, help="Epochs of every stage.")
  parser.add_argument("--assistant_num_layers", type=int, default=3)
  parser.add_argument("--assistant_init", default="1,3,5", help="Teacher layers initialising the assistant.")
  parser.add_argument("--student_init", default="1", help="Assistant layer initialising the chain's student.")
  parser.add_argument("--direct_init", default="1", help="Teacher layer initialising the direct student.")
  parser.add_argument("--output", help="Markdown file to write the table and the command to.")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  chains = [chain_accuracies(args, seed) for seed in seeds]
  assistant, chained = [a for a, _ in chains], [s for _, s in chains]
  direct = [direct_accuracy(args, seed) for seed in seeds]
  gain = 100 * (mean_sd(chained)[0] - mean_sd(direct)[0])
  layers = args.assistant_num_layers
  text = "\n".join([
      f"Command: `python3 bench/ta_chain.py {' '.join(sys.argv[1:])}`", "",
      f"{args.task_name} test accuracy, {args.epochs} epochs per stage on {args.max_train_examples or 'all'} training "
      f"examples, seeds {args.seeds}, mean ± sample sd.", "",
      "| student | path | test accuracy | vs direct | seeds |", "|---|---|---|---|---|",
      f"| {layers}-layer assistant | teacher -> assistant | {mean_sd_text(assistant)} | | {len(seeds)} |",
      f"| 1-layer | teacher -> {layers}-layer assistant -> student (chain) | {mean_sd_text(chained)} | "
      f"{gain:+.2f} points | {len(seeds)} |",
      f"| 1-layer | teacher -> student (direct) | {mean_sd_text(direct)} | | {len(seeds)} |", ""])
  publish(text, args.output)


if __name__ == "__main__":
  main()

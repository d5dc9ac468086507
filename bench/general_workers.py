"""General distillation's throughput on 1 and 2 local CPU workers (multi_worker_mirrored, TF_CONFIG on 127.0.0.1).

    python3 bench/general_workers.py --steps=40 --output=bench/GENERAL_WORKERS.md

Runs `scripts/general_distill.sh` (the TinyBERT-4 preset; extra flags are passed on) for `--steps` steps, once as
one process and once as two worker processes on this machine, and reads each run's tokens per second from the
chief's history.json (over the whole `fit` call, tracing included). On one machine the two workers share its cores,
so the ratio shows the cost of the collective ops, not a cluster's speed-up; compare the rows of one table only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from bench_runs import REPO, publish


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run(workers, steps, work_dir, extra):
  """Seconds for `steps` steps with `workers` processes (the slowest worker's wall time)."""
  out = os.path.join(work_dir, f"workers_{workers}")
  command = ["scripts/general_distill.sh", f"--output_dir={out}", f"--num_train_steps={steps}",
             f"--save_every_steps={steps}", *extra]
  ports = [f"127.0.0.1:{_free_port()}" for _ in range(workers)]
  processes = []
  start = time.time()
  for index in range(workers):
    env = dict(os.environ)
    flags = []
    if workers > 1:
      env["TF_CONFIG"] = json.dumps({"cluster": {"worker": ports}, "task": {"type": "worker", "index": index}})
      flags = ["--distribution_strategy=multi_worker_mirrored"]
    log = open(os.path.join(REPO, f"{out}_{index}.log"), "w", encoding="utf-8")  # pylint: disable=consider-using-with
    processes.append(subprocess.Popen(command + flags, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
  for process in processes:
    if process.wait():
      raise SystemExit(f"error: {' '.join(command)} failed with {workers} worker(s); see {out}_*.log")
  seconds = time.time() - start
  with open(os.path.join(REPO, out, "history.json"), encoding="utf-8") as f:
    return seconds, json.load(f)["tokens_per_second"]


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--steps", type=int, default=40)
  parser.add_argument("--work_dir", default="runs/bench_general_workers")
  parser.add_argument("--output", default=None)
  args, extra = parser.parse_known_args()
  os.makedirs(os.path.join(REPO, args.work_dir), exist_ok=True)
  rows = {}
  for workers in (1, 2):
    rows[workers] = run(workers, args.steps, args.work_dir, extra)
    print(f"{workers} worker(s): {rows[workers][1]:.0f} tokens/s", file=sys.stderr)
  lines = [f"General distillation, TinyBERT-4 preset{' with ' + ' '.join(extra) if extra else ''}, {args.steps} "
           f"steps, on this machine ({os.cpu_count()} CPUs).", "",
           "| workers | tokens/s (fit) | ratio | wall time incl. start-up (s) |", "|---|---|---|---|"]
  for workers, (seconds, speed) in rows.items():
    lines.append(f"| {workers} | {speed:.0f} | {speed / rows[1][1]:.2f}x | {seconds:.0f} |")
  publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
  main()

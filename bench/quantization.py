"""Every TFLite variant of trained students: size, test accuracy against the Keras student, batch-1 latency.

    python3 bench/quantization.py --runs=student:runs/student,bilstm:runs/bilstm --output=bench/QUANTIZATION.md

Each run is exported with `export_student` and all of `tflite.VARIANTS` (float32, dynamic-range int8, full int8,
16x8, selective), calibrated on 300 training examples, with the accuracy threshold lifted so that every file is kept
for timing; the table's last column says whether `export_student`'s default threshold (1 point) would have shipped
it. Accuracy is on the whole test split. Latency is the LiteRT interpreter (1 thread) on single examples at their
real lengths, the variants of a run timed round-robin in one process (`report.round_robin_latencies`), so compare
within a run: absolute times move with machine load.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_distill  # noqa: F401,E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tf_distill.report import Timed, round_robin_latencies, single_examples  # noqa: E402
from tf_distill.export import parity, run_export, tflite  # noqa: E402
from tf_distill.run_dir import RunDir  # noqa: E402


def bench_run(name: str, run_dir: str, export_dir: str, latency_examples: int, rounds: int):
  """Markdown rows for one run's variants."""
  result = run_export.export_student(run_dir, export_dir, name, tflite=tflite.VARIANTS, max_accuracy_drop=100.0)
  report = result.report
  examples = run_export.split_examples(RunDir(run_dir).data_config(), "test", latency_examples)[1]
  singles = single_examples(examples, latency_examples)
  written = [variant for variant in tflite.VARIANTS if report[variant]["path"]]
  timed = [Timed(tflite.TFLiteClassifier(report[variant]["path"]), singles) for variant in written]
  latencies = dict(zip(written, round_robin_latencies(timed, rounds)))
  float_bytes = report["float32"]["bytes"]
  rows = []
  for variant in tflite.VARIANTS:
    entry = report[variant]
    if variant not in latencies:
      rows.append(f"| {name} | {variant} | not convertible: {entry['error']} | | | | | no |")
      continue
    latency = latencies[variant]
    ships = "yes" if entry["accuracy_drop_points"] <= parity.MAX_ACCURACY_DROP else "no (refused)"
    rows.append(f"| {name} | {variant} | {entry['bytes'] / 2**20:.2f} MiB ({float_bytes / entry['bytes']:.2f}x) "
                f"| {100 * entry['accuracy']:.2f}% | {entry['accuracy_drop_points']:+.2f} | {latency.median_ms:.2f} ms "
                f"| {', '.join(entry.get('float_ops') or []) or '-'} | {ships} |")
  header = (f"Keras {name}: test accuracy {100 * report['keras_accuracy']:.2f}% on {result.num_labelled} examples")
  return header, rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs", required=True, help="name:run_dir,... distill runs to export")
  parser.add_argument("--export_dir", default="runs/bench_quantization", help="where the exports are written")
  parser.add_argument("--latency_examples", type=int, default=300, help="test examples timed per variant")
  parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds")
  parser.add_argument("--output", help="also write the table to this markdown file")
  args = parser.parse_args(argv)
  lines = ["| student | variant | size (vs float32) | test accuracy | drop vs Keras (points) | batch-1 latency "
           "| ops left in float32 | shipped at 1 point |", "|---|---|---|---|---|---|---|---|"]
  headers = []
  for spec in args.runs.split(","):
    name, run_dir = spec.split(":", 1)
    header, rows = bench_run(name, run_dir, args.export_dir, args.latency_examples, args.rounds)
    headers.append(header)
    lines += rows
    print(header, flush=True)
  text = "\n".join(lines + [""] + [f"- {h}" for h in headers]) + "\n"
  print(text)
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      f.write(f"`python3 bench/quantization.py {' '.join(argv or sys.argv[1:])}`\n\n{text}")


if __name__ == "__main__":
  main()

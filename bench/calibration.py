"""Post-training full int8 against its calibration (issue 31, item 3): how many representative training examples, and
does the sample matter? For each trained student, full_int8 files calibrated on N random training examples (N from
--sizes; --samples different random draws each), scored on the whole test split with the LiteRT interpreter.

    python3 bench/calibration.py --runs=bilstm_bbc:runs/bench_qat/bbc_news/bilstm/float_s1 --sizes=30,100,300,1000 \\
        --samples=3 --output=bench/CALIBRATION.md

export_student calibrates on 300 examples drawn with seed 0 (`--representative_examples`); this table says what
other sizes and draws would have given. Drop: points below the Keras student (negative: above it).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_runs import REPO, mean_sd_text, publish  # noqa: E402


def calibration_rows(name, run_dir, sizes, samples):
  """Table rows of one student: its Keras accuracy, then per size the full-int8 accuracy and drop, mean ± sd over the
  draws (the draws' per-file accuracies listed)."""
  from tf_distill.export import parity, run_export, tflite  # pylint: disable=import-outside-toplevel
  from tf_distill.run_dir import RunDir  # pylint: disable=import-outside-toplevel
  work = tempfile.mkdtemp(prefix="tf_distill_calibration_")
  exported = run_export.export_student(os.path.join(REPO, run_dir), work, name, tflite=())  # SavedModel only
  config = RunDir(os.path.join(REPO, run_dir)).data_config()
  test = run_export.split_examples(config, "test", 2**62)[1]  # all of them
  keras = exported.report["keras_accuracy"]
  rows = [f"| {name} | Keras float32 | {keras:.4f} | - | - |"]
  for size in sizes:
    accuracies = []
    for sample in range(samples):
      path = os.path.join(work, f"full_int8_{size}_{sample}.tflite")
      representative = run_export.split_examples(config, "train", size, seed=sample)[1]
      tflite.convert_saved_model(exported.saved_model, path, tflite.FULL_INT8, representative)
      accuracies.append(parity.labelled_accuracy(tflite.TFLiteClassifier(path)(test), test["label_ids"]))
      print(f"{name}: {size} examples, draw {sample}: {accuracies[-1]:.4f}", flush=True)
    drops = [100 * (keras - a) for a in accuracies]
    rows.append(f"| {name} | {size} | {mean_sd_text(accuracies)} | {mean_sd_text(drops, '+.2f')} | "
                f"{', '.join(f'{a:.4f}' for a in accuracies)} |")
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs", required=True, help="name:run_dir,... of trained students")
  parser.add_argument("--sizes", default="30,100,300,1000", help="calibration sizes (training examples)")
  parser.add_argument("--samples", type=int, default=3, help="random draws of the calibration examples per size")
  parser.add_argument("--output", help="also write the table to this markdown file (relative to the repo root)")
  args = parser.parse_args(argv)
  sizes = [int(s) for s in args.sizes.split(",")]
  lines = [f"`python3 bench/calibration.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
           "| student | calibration examples | full int8 test accuracy | drop (points) | per draw |",
           "|---|---|---|---|---|"]
  for spec in args.runs.split(","):
    name, _, run_dir = spec.partition(":")
    lines += calibration_rows(name, run_dir, sizes, args.samples)
  publish("\n".join(lines) + "\n", args.output)


if __name__ == "__main__":
  main()

"""Compares exported models on the test split: accuracy, parameters, size and batch-1 latency.

    python -m tf_distill.cli.report --teacher_model=export/teacher \
        --models=student:export/student,baseline:export/student_baseline \
        --tflite=int8:export/student_tflite

Prints a Markdown table and writes report.md / report.json to --report_dir. Latency is the median wall time of one
`serving_default` call on one test example padded to the teacher's max_seq_length (the serving contract), over
--latency_examples examples after warm-up, inputs already converted to tensors, on this machine's CPU threads.
"""

import dataclasses
import json
import os
import time
from typing import Callable, Dict, List, Optional

import numpy as np
from absl import app, flags

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.cli import common
from tf_distill.configs import DataConfig
from tf_distill.export.serving import latest_version_dir, read_metadata
from tf_distill.export.tflite import TFLiteClassifier
from tf_distill.training import accuracy, load_data, write_json

FLAGS = flags.FLAGS
INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")


def define_flags() -> None:
  flags.DEFINE_string("teacher_model", "export/teacher", "Teacher SavedModel (model dir or version dir).")
  flags.DEFINE_list("models", ["student:export/student"], "name:path of further SavedModels to compare.")
  flags.DEFINE_list("tflite", [], "name:path of TFLite files, or of a *_tflite model dir (takes "
                    "<latest>/full_int8.tflite for a name containing full_int8, int8.tflite for one containing int8, "
                    "else float32.tflite).")
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS keeps prepared datasets.")
  flags.DEFINE_string("data_dir", None, "For task csv: the directory with the test file.")
  flags.DEFINE_integer("latency_examples", 300, "Test examples timed one at a time.")
  flags.DEFINE_integer("num_threads", 2, "CPU threads for TFLite (TensorFlow uses all cores).")
  flags.DEFINE_string("report_dir", "export", "Where report.md and report.json are written.")


@dataclasses.dataclass
class Row:
  name: str
  test_accuracy: float
  parameters: int
  size_mib: float
  latency_ms: float


def directory_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def single_examples(features: Dict[str, np.ndarray], num_examples: int, convert=np.asarray) -> List[Dict]:
  """The first `num_examples` examples as batches of one, already converted (input conversion is not timed)."""
  count = min(num_examples, len(features["input_ids"]))
  return [{k: convert(features[k][i:i + 1]) for k in INPUT_KEYS} for i in range(count)]


def median_latency_ms(predict: Callable, singles: List[Dict]) -> float:
  """Median milliseconds of `predict` on each single example (after 5 warm-up calls)."""
  for example in singles[:5]:
    predict(example)
  times = []
  for example in singles:
    start = time.perf_counter()
    predict(example)
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))


def saved_model_row(name: str, path: str, features: Dict[str, np.ndarray], latency_examples: int) -> Row:
  path = latest_version_dir(path)
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures["serving_default"]

  def predict(batch):
    return serve(**{k: batch[k] for k in INPUT_KEYS})["logits"].numpy()

  logits = np.concatenate([predict({k: tf.constant(features[k][i:i + 256]) for k in INPUT_KEYS})
                           for i in range(0, len(features["input_ids"]), 256)])
  parameters = sum(int(np.prod(v.shape)) for v in loaded.model.variables if not v.name.endswith("calls:0"))
  return Row(name, accuracy(logits, features["label_ids"]), parameters, directory_bytes(path) / 2**20,
             median_latency_ms(predict, single_examples(features, latency_examples, tf.constant)))


def tflite_row(name: str, path: str, features: Dict[str, np.ndarray], latency_examples: int, num_threads: int,
               parameters: int) -> Row:
  if os.path.isdir(path):
    variant = "full_int8" if "full_int8" in name else "int8" if "int8" in name else "float32"
    path = os.path.join(latest_version_dir(path), f"{variant}.tflite")
  model = TFLiteClassifier(path, num_threads=num_threads)
  logits = np.concatenate([model({k: features[k][i:i + 1] for k in INPUT_KEYS})
                           for i in range(len(features["input_ids"]))])
  return Row(name, accuracy(logits, features["label_ids"]), parameters, os.path.getsize(path) / 2**20,
             median_latency_ms(model, single_examples(features, latency_examples)))


def test_features(teacher_dir: str, data_dir: Optional[str], tfds_data_dir: Optional[str]) -> Dict[str, np.ndarray]:
  meta = read_metadata(teacher_dir)
  config = DataConfig(task_name=meta["task_name"], data_dir=data_dir, tfds_data_dir=tfds_data_dir,
                      vocab_file=os.path.join(teacher_dir, "assets.extra", "vocab.txt"),
                      max_seq_length=int(meta["max_seq_length"]), labels=tuple(meta["labels"])).validate()
  return load_data(config, splits=("test",)).features["test"]


def format_table(rows: List[Row]) -> str:
  teacher = rows[0]
  lines = ["| model | test accuracy | % of teacher | parameters | size (MiB) | latency b=1 (ms) | speed-up |",
           "|---|---|---|---|---|---|---|"]
  for row in rows:
    lines.append(f"| {row.name} | {row.test_accuracy:.4f} | {100 * row.test_accuracy / teacher.test_accuracy:.1f}% | "
                 f"{row.parameters / 1e6:.2f}M | {row.size_mib:.1f} | {row.latency_ms:.2f} | "
                 f"{teacher.latency_ms / row.latency_ms:.2f}x |")
  return "\n".join(lines)


def _split_named(value: str):
  name, sep, path = value.partition(":")
  if not sep or not name or not path:
    raise ValueError(f"expected name:path, got {value!r}")
  return name, path


def main(argv) -> None:
  del argv
  teacher_dir = latest_version_dir(FLAGS.teacher_model)
  features = test_features(teacher_dir, FLAGS.data_dir, FLAGS.tfds_data_dir)
  rows = [saved_model_row("teacher", teacher_dir, features, FLAGS.latency_examples)]
  for name, path in map(_split_named, FLAGS.models):
    rows.append(saved_model_row(name, path, features, FLAGS.latency_examples))
  student_parameters = rows[1].parameters if len(rows) > 1 else 0  # TFLite files hold the first student's weights
  for name, path in map(_split_named, FLAGS.tflite):
    rows.append(tflite_row(name, path, features, FLAGS.latency_examples, FLAGS.num_threads, student_parameters))
  table = format_table(rows)
  print(f"\nTest split: {len(features['label_ids'])} examples, max_seq_length "
        f"{features['input_ids'].shape[1]}\n\n{table}\n")
  os.makedirs(FLAGS.report_dir, exist_ok=True)
  with open(os.path.join(FLAGS.report_dir, "report.md"), "w", encoding="utf-8") as f:
    f.write(table + "\n")
  write_json(os.path.join(FLAGS.report_dir, "report.json"), {"rows": [dataclasses.asdict(r) for r in rows]})


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

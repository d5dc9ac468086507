"""Compares exported models on the test split: the task's metric (accuracy; a tagger's entity F1, `TaskType.quality`
of the teacher export's task type) and its extra scores (`TaskType.report_scores`: a reader's exact match),
parameters, size and batch-1 latency, as a Markdown table, report.json and a PNG (the metric against latency, marker
area proportional to size); `tf_distill report` maps its flags to `write_report`.

Latency is the wall time of one `serving_default` call on one test example padded to the teacher's max_seq_length
(the serving contract), inputs already converted to tensors, on this machine's CPU threads. The models are timed
round-robin, so that drift in the machine's speed (other processes, clock boosts) reaches every model alike: the
latency examples of each model, after 5 warm-up calls, split into rounds, each round timing every model on its chunk
in turn, starting one model later each round. The table gives the median over all calls and the spread: the lowest
and highest per-round median, and names the CPU they were measured on (`tf_distill.machine`).
"""

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill import diagnostics, machine
from tf_distill.configs import DataConfig
from tf_distill.export.parity import MAX_ACCURACY_DROP, read_report
from tf_distill.export.serving import latest_version_dir, read_metadata
from tf_distill.export.tflite import TFLiteClassifier
from tf_distill.tasks import TaskType, task_type_of_export
from tf_distill.training import write_json

INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")
WARMUP_CALLS = 5


@dataclasses.dataclass
class Row:
  name: str
  test_accuracy: float  # the task's metric (`TestSplit.metric`)
  parameters: int
  size_mib: float
  latency_ms: float = 0.0  # median over all timed calls
  latency_low_ms: float = 0.0  # lowest per-round median
  latency_high_ms: float = 0.0  # highest per-round median
  not_shipped: Optional[str] = None  # why export_student did not write this TFLite file (then nothing is timed)
  extra: Dict[str, float] = dataclasses.field(default_factory=dict)  # from `TaskType.report_scores` (QA: exact match)


@dataclasses.dataclass
class Timed:
  """What the latency timer calls: `predict` on each of `singles` (batches of one, already converted)."""
  predict: Callable
  singles: List[Dict]


@dataclasses.dataclass
class Latency:
  median_ms: float
  round_medians_ms: List[float]


def directory_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def single_examples(features: Dict[str, np.ndarray], num_examples: int, convert=np.asarray) -> List[Dict]:
  """The first `num_examples` examples as batches of one, already converted (input conversion is not timed)."""
  count = min(num_examples, len(features["input_ids"]))
  return [{k: convert(features[k][i:i + 1]) for k in INPUT_KEYS} for i in range(count)]


def round_robin_latencies(models: Sequence[Timed], rounds: int, clock: Callable[[], float] = time.perf_counter,
                          warmup_calls: int = WARMUP_CALLS) -> List[Latency]:
  """Times `models` interleaved: the examples are split into `rounds` chunks (fewer if there are fewer examples),
  and round r times model (r + j) % len(models), j = 0, 1, ..., on chunk r, so no model always goes first.
  Returns, per model, the median over all its calls and the median of each round, in milliseconds."""
  for model in models:
    for example in model.singles[:warmup_calls]:
      model.predict(example)
  count = min(len(model.singles) for model in models)
  chunks = np.array_split(np.arange(count), min(rounds, count))
  times = [[[] for _ in chunks] for _ in models]  # seconds, [model][round][call]
  for r, chunk in enumerate(chunks):
    for j in range(len(models)):
      m = (r + j) % len(models)
      for i in chunk:
        start = clock()
        models[m].predict(models[m].singles[i])
        times[m][r].append(clock() - start)
  return [Latency(1000.0 * float(np.median(np.concatenate(per_round))),
                  [1000.0 * float(np.median(calls)) for calls in per_round]) for per_round in times]


@dataclasses.dataclass
class TestSplit:
  """A split's features and how a model's logits on them are scored: `score(logits)`, the task's `metric`."""
  features: Dict[str, np.ndarray]
  task: TaskType
  labels: List[str]

  @property
  def metric(self) -> str:
    return self.task.metric_title

  def score(self, logits: np.ndarray, metadata: Optional[Dict] = None) -> Tuple[float, Dict[str, float]]:
    """The metric of `logits` and the task's extra scores (`TaskType.report_scores`), decoded as the export with
    `metadata` decodes (`TaskType.with_export_settings`)."""
    features = self.task.with_export_settings(self.features, metadata) if metadata else self.features
    quality, extra = self.task.report_scores(logits, features, self.labels)
    return quality or 0.0, extra

  def describe(self) -> str:
    """e.g. "1241 examples" or "2004 labelled words in 1287 rows", and the sequence length."""
    labelled = self.task.labelled(self.features)
    rows = len(self.features["input_ids"])
    count = f"{rows} {self.task.unit}" if labelled == rows else f"{labelled} labelled {self.task.unit} in {rows} rows"
    return f"{count}, max_seq_length {self.features['input_ids'].shape[1]}"


def batched_logits(predict: Callable, features: Dict[str, np.ndarray]) -> np.ndarray:
  return np.concatenate([predict({k: tf.constant(features[k][i:i + 256]) for k in INPUT_KEYS})
                         for i in range(0, len(features["input_ids"]), 256)])


def saved_model_score(path: str, split: TestSplit) -> float:
  path = latest_version_dir(path)
  serve = tf.saved_model.load(path).signatures["serving_default"]
  return split.score(batched_logits(lambda b: serve(**b)["logits"].numpy(), split.features), read_metadata(path))[0]


def saved_model_row(name: str, path: str, split: TestSplit, latency_examples: int) -> Tuple[Row, Timed]:
  path = latest_version_dir(path)
  loaded = tf.saved_model.load(path)
  serve = loaded.signatures["serving_default"]

  def predict(batch):
    return serve(**{k: batch[k] for k in INPUT_KEYS})["logits"].numpy()

  logits = batched_logits(predict, split.features)
  parameters = sum(int(np.prod(v.shape)) for v in loaded.model.variables if not v.name.endswith("calls:0"))
  score, extra = split.score(logits, read_metadata(path))
  return (Row(name, score, parameters, directory_bytes(path) / 2**20, extra=extra),
          Timed(predict, single_examples(split.features, latency_examples, tf.constant)))


def tflite_row(name: str, path: str, split: TestSplit, latency_examples: int, num_threads: int,
               parameters: int) -> Tuple[Row, Optional[Timed]]:
  """The row of a TFLite file; for a variant that export_student measured but did not ship (parity.json), a row
  with its measured accuracy and size, the reason, and nothing to time (None)."""
  metadata = None  # the SavedModel's that export_student converted, when its parity.json names it
  if os.path.isdir(path):
    variant = "full_int8" if "full_int8" in name else "int8" if "int8" in name else "float32"
    version_dir = latest_version_dir(path)
    path = os.path.join(version_dir, f"{variant}.tflite")
    report = read_report(version_dir)
    entry = report.get(variant, {})
    if not os.path.isfile(path) and entry and not entry.get("path"):
      return Row(name, entry.get("accuracy") or 0.0, parameters, entry.get("bytes", 0) / 2**20,
                 not_shipped=_why_not_shipped(entry, report)), None
    if os.path.isdir(report.get("saved_model", "")):
      metadata = read_metadata(report["saved_model"])
  model = TFLiteClassifier(path, num_threads=num_threads)
  features = split.features
  logits = np.concatenate([model({k: features[k][i:i + 1] for k in INPUT_KEYS})
                           for i in range(len(features["input_ids"]))])
  score, extra = split.score(logits, metadata)
  return (Row(name, score, parameters, os.path.getsize(path) / 2**20, extra=extra),
          Timed(model, single_examples(features, latency_examples)))


def _why_not_shipped(entry: Dict, report: Dict) -> str:
  if entry.get("error"):
    return entry["error"]
  return (f"{entry['accuracy_drop_points']:+.2f} points vs the Keras student, threshold "
          f"{report.get('max_accuracy_drop', MAX_ACCURACY_DROP):g}")


def test_split(teacher_dir: str, data_dir: Optional[str], tfds_data_dir: Optional[str],
               split: str = "test") -> TestSplit:
  """`split` of the teacher export's task, encoded with its vocab and max_seq_length, scored by its task type."""
  meta = read_metadata(teacher_dir)
  task = task_type_of_export(meta)
  config = DataConfig(task_name=meta["task_name"], data_dir=data_dir, tfds_data_dir=tfds_data_dir,
                      vocab_file=os.path.join(teacher_dir, "assets.extra", "vocab.txt"),
                      max_seq_length=int(meta["max_seq_length"]), labels=tuple(meta["labels"]),
                      **{name: meta[name] for name in task.data_flags if name in meta}).validate()
  return TestSplit(task.export_examples(config, split, 2**62)[1], task, list(meta["labels"]))


def set_up_warnings(teacher_dir: str, split: TestSplit, models: Dict[str, str],
                    no_distillation_model: Optional[str], data_dir: Optional[str] = None,
                    tfds_data_dir: Optional[str] = None) -> List[str]:
  """diagnostics' warnings: [UNK]-dominated test text; a teacher no better on dev than the no-distillation student."""
  found = [diagnostics.unk_warning(split.features, os.path.join(teacher_dir, "assets.extra", "vocab.txt"))]
  if no_distillation_model:
    if no_distillation_model not in models:
      raise ValueError(f"--no_distillation_model={no_distillation_model} is not a name in --models "
                       f"({', '.join(models)}); pass one of them")
    dev = test_split(teacher_dir, data_dir, tfds_data_dir, split="dev")
    found.append(diagnostics.teacher_warning(saved_model_score(teacher_dir, dev),
                                             saved_model_score(models[no_distillation_model], dev),
                                             no_distillation_model))
  return [line for line in found if line]


def format_table(rows: List[Row], metric: str = "accuracy") -> str:
  """The Markdown table; the teacher's `extra` scores (QA: exact match) as columns after `metric`'s ("-" where a
  row has none: a file not shipped)."""
  teacher, extra = rows[0], list(rows[0].extra)
  lines = [f"| model | test {metric} | {''.join(f'test {name} | ' for name in extra)}% of teacher | parameters | "
           "size (MiB) | latency b=1 (ms) | round medians (ms) | speed-up |",
           "|---|---|" + "---|" * len(extra) + "---|---|---|---|---|---|"]
  for row in rows:
    extras = "".join(f"{row.extra[name]:.4f} | " if name in row.extra else "- | " for name in extra)
    if row.not_shipped:
      lines.append(f"| {row.name} | {row.test_accuracy:.4f} (not shipped: {row.not_shipped}) | {extras}"
                   f"{100 * row.test_accuracy / teacher.test_accuracy:.1f}% | {row.parameters / 1e6:.2f}M | "
                   f"{row.size_mib:.1f} | - | - | - |")
      continue
    lines.append(f"| {row.name} | {row.test_accuracy:.4f} | {extras}"
                 f"{100 * row.test_accuracy / teacher.test_accuracy:.1f}% | "
                 f"{row.parameters / 1e6:.2f}M | {row.size_mib:.1f} | {row.latency_ms:.2f} | "
                 f"{row.latency_low_ms:.2f}–{row.latency_high_ms:.2f} | {teacher.latency_ms / row.latency_ms:.2f}x |")
  return "\n".join(lines)


def plot_rows(rows: List[Row], path: str, metric: str = "accuracy") -> None:
  """Writes a PNG of the table: the test metric against batch-1 latency, one labelled point per model, its area
  proportional to its size in MiB, the bar across it the round-median spread."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel

  rows = [row for row in rows if not row.not_shipped]  # nothing was timed
  largest = max(row.size_mib for row in rows) or 1.0
  figure, axes = pyplot.subplots(figsize=(7, 4.5))
  for row in rows:
    axes.errorbar(row.latency_ms, row.test_accuracy, color="0.6", capsize=3, zorder=1,
                  xerr=[[row.latency_ms - row.latency_low_ms], [row.latency_high_ms - row.latency_ms]])
    axes.scatter(row.latency_ms, row.test_accuracy, s=20 + 1000 * row.size_mib / largest, alpha=0.6, zorder=2)
    axes.annotate(f"{row.name} ({row.size_mib:.1f} MiB)", (row.latency_ms, row.test_accuracy),
                  textcoords="offset points", xytext=(8, 6))
  axes.set_xlabel("latency, batch 1 (ms)")
  axes.set_ylabel(f"test {metric}")
  axes.set_title(f"Test {metric} against latency (marker area: size)")
  axes.margins(x=0.3, y=0.25)
  axes.set_xlim(left=0)
  axes.grid(alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  pyplot.close(figure)


def write_report(teacher_dir: str, models: Sequence[Tuple[str, str]], tflite: Sequence[Tuple[str, str]],
                 split: TestSplit, report_dir: str, latency_examples: int = 300,
                 latency_rounds: int = 5, num_threads: int = 2) -> str:
  """Measures the teacher, the SavedModels `models` and the TFLite files `tflite` ((name, path) pairs) on the test
  `split` (`test_split`), times them round-robin, writes report.md, report.json and report.png to `report_dir` and
  returns the table followed by the line naming the CPU."""
  measured = [saved_model_row("teacher", teacher_dir, split, latency_examples)]
  for name, path in models:
    measured.append(saved_model_row(name, path, split, latency_examples))
  student_parameters = measured[1][0].parameters if len(measured) > 1 else 0  # TFLite holds the first student's
  for name, path in tflite:
    measured.append(tflite_row(name, path, split, latency_examples, num_threads, student_parameters))
  rows = [row for row, _ in measured]
  timed_rows = [(row, timed) for row, timed in measured if timed is not None]
  for (row, _), latency in zip(timed_rows, round_robin_latencies([timed for _, timed in timed_rows], latency_rounds)):
    row.latency_ms = latency.median_ms
    row.latency_low_ms, row.latency_high_ms = min(latency.round_medians_ms), max(latency.round_medians_ms)
  text = f"{format_table(rows, split.metric)}\n\nMeasured on {machine.describe()}."
  os.makedirs(report_dir, exist_ok=True)
  with open(os.path.join(report_dir, "report.md"), "w", encoding="utf-8") as f:
    f.write(text + "\n")
  write_json(os.path.join(report_dir, "report.json"), {"metric": split.metric,
                                                       "rows": [dataclasses.asdict(r) for r in rows]})
  plot_rows(rows, os.path.join(report_dir, "report.png"), split.metric)
  return text

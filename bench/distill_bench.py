"""Online distillation step benchmark: throughput, FLOP rate, XLA, precision, length bucketing, latency.

One command prints a RESULTS.md-ready markdown block (and appends it to --output):

    python3 bench/distill_bench.py --output=bench/RESULTS.md

Default shapes: teacher 6 layers / hidden 384 / 12 heads / FFN 1536 (all-MiniLM-L6-v2's shape, random weights)
exported with `export_classifier` and loaded with `SavedModelTeacher`; student 2 layers initialised from teacher
layers 1 and 4; batch 32, sequence length 128; AdamW as in training, word embeddings frozen (flags/common.flags).

Every time is the median of --steps calls after --warmup untimed calls (first calls trace and compile).

FLOPs are matmul FLOPs (2 per multiply-add), counted from the shapes. For a BERT layer with batch B, sequence S,
tokens N = B*S, hidden H, FFN size I (heads do not change the count):

    Q, K, V and attention-output projections   4 * 2*N*H*H   = 8*N*H^2
    scores Q.K^T and context P.V               2 * 2*B*S*S*H = 4*B*S^2*H
    feed-forward (H -> I -> H)                 2 * 2*N*H*I   = 4*N*H*I
    forward(model) = layers * (8*N*H^2 + 4*B*S^2*H + 4*N*H*I) + pooler 2*B*H^2 + classifier 2*B*H*labels

tf_distill runs the last layer for [CLS] alone when only logits are needed (`BertClassifier(logits_only=True)`: the
teacher's serving_default, the student's step without intermediate losses). Its last layer then costs
K and V 4*N*H^2 + Q and output 4*B*H^2 + scores and context 4*B*S*H + feed-forward 4*B*H*I. FLOPs below are the ones
each step executes: logits-only for tf_distill's steps and the teacher, full for the keras.io student (it calls the
model as a plain Keras model would).

A train step is 3x the forward (the backward pass computes the input and the weight gradient of every matmul).
The online step is forward(teacher) + 3 * forward(student); a cached step is 3 * forward(student). Embedding
lookups, softmax, LayerNorm, GELU, dropout and the optimizer update are not counted: they are memory-bound work that
the "% of matmul rate" column charges against the step. The `flops` section cross-checks the count on the traced
forward graphs: tf.compat.v1.profiler for MatMul (it does not count BatchMatMulV2) plus BatchMatMulV2 counted from
the graph's static shapes.

The matmul rate is the best float32 tf.matmul rate measured in the same run (inside tf.function, best of
--matmul_repeats) over BERT-shaped ([B*S, H] x [H, I] ...) and large square products.
"""

import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from absl import app, flags, logging

_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_BENCH_DIR), _BENCH_DIR]  # this checkout's tf_distill, then keras_io_distiller

import tf_distill  # noqa: F401,E402  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

# pylint: disable=wrong-import-position
from keras_io_distiller import KerasIoDistiller, LogitsOnly, SavedModelLogits  # noqa: E402

from tf_distill import machine, teacher_cache  # noqa: E402
from tf_distill.bert import BertClassifier, BertConfig  # noqa: E402
from tf_distill.configs import BertStudentConfig  # noqa: E402
from tf_distill.distiller import Distiller, trim_padding  # noqa: E402
from tf_distill.export.serving import export_classifier  # noqa: E402
from tf_distill.optimization import create_optimizer  # noqa: E402
from tf_distill.students.bert import build_bert_student  # noqa: E402
from tf_distill.teacher import INDEX_KEY, SavedModelTeacher  # noqa: E402

SECTIONS = ("matmul", "flops", "step", "threads", "xla", "precision", "lengths", "latency")

flags.DEFINE_integer("teacher_layers", 6, "Teacher encoder layers.")
flags.DEFINE_integer("hidden_size", 384, "Hidden size of teacher and student.")
flags.DEFINE_integer("num_heads", 12, "Attention heads.")
flags.DEFINE_integer("intermediate_size", 1536, "Feed-forward size.")
flags.DEFINE_integer("vocab_size", 30522, "Vocabulary size (30522: BERT uncased, so real MiniLM-tokenised data fits).")
flags.DEFINE_integer("num_labels", 2, "Classifier labels.")
flags.DEFINE_integer("student_layers", 2, "Student encoder layers.")
flags.DEFINE_list("student_init_from_layers", ["2", "5"], "Teacher layer (1..N) per student layer; empty for "
                  "random init.")
flags.DEFINE_integer("batch_size", 32, "Training batch size.")
flags.DEFINE_integer("seq_len", 128, "Padded sequence length (max_seq_length).")
flags.DEFINE_float("alpha", 0.5, "Distillation weight (tf_distill's alpha; keras.io's alpha is 1 - this).")
flags.DEFINE_float("temperature", 2.0, "Distillation temperature.")
flags.DEFINE_bool("freeze_word_embeddings", True, "Freeze the student's word embeddings, as flags/common.flags does.")
flags.DEFINE_integer("warmup", 2, "Untimed calls before timing.")
flags.DEFINE_integer("steps", 10, "Timed calls; the median is reported.")
flags.DEFINE_integer("matmul_repeats", 10, "Timed calls per matmul shape; the best is reported.")
flags.DEFINE_list("sections", list(SECTIONS), f"Sections to run, from {list(SECTIONS)}.")
flags.DEFINE_list("widths", ["16", "32", "48", "64", "96"], "Trimmed batch widths timed in the lengths section.")
flags.DEFINE_integer("bucketed_batches", 16, "Batches of the real bucketed pipeline run end to end.")
flags.DEFINE_list("latency_seq_lens", ["32", "128"], "Sequence lengths for batch-1 latency.")
flags.DEFINE_integer("latency_runs", 50, "Timed batch-1 calls per model (median reported).")
flags.DEFINE_list("tflite_variants", ["float32", "int8"], "TFLite student variants to time.")
flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow intra-op threads (0: TensorFlow's default, all cores).")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads (0: TensorFlow's default).")
flags.DEFINE_list("thread_settings", ["2:1", "1:1", "onednn_off"],
                  "Settings the threads section compares with the default, each in a child process running the step "
                  "section: INTRA:INTER op threads, or onednn_off (TF_ENABLE_ONEDNN_OPTS=0).")
flags.DEFINE_string("output", "", "Also append the markdown to this file.")
flags.DEFINE_string("values_json", "", "Also write the measured values (seconds, rates) as JSON here.")
FLAGS = flags.FLAGS

FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")


# ------------------------------------------------------------------------------------------------ measurement


@dataclasses.dataclass
class Timing:
  """Seconds per call over the timed calls."""
  median: float
  best: float
  worst: float
  first: float  # the first (tracing / compiling) call

  def examples_per_second(self, batch_size: int) -> float:
    return batch_size / self.median


def time_calls(fn: Callable[[], object], warmup: int, steps: int) -> Timing:
  """Calls `fn` warmup times untimed (the first call is timed separately), then `steps` times individually."""
  start = time.perf_counter()
  _sync(fn())
  first = time.perf_counter() - start
  for _ in range(max(warmup - 1, 0)):
    _sync(fn())
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    _sync(fn())
    times.append(time.perf_counter() - start)
  return Timing(statistics.median(times), min(times), max(times), first)


def time_interleaved(fns: Dict[str, Callable[[], object]], warmup: int, steps: int) -> Dict[str, Timing]:
  """Times several calls round-robin (one call of each per round), so that load from other processes on a shared
  machine spreads over all of them instead of skewing whichever ran during a busy spell."""
  first, times = {}, {name: [] for name in fns}
  for name, fn in fns.items():
    start = time.perf_counter()
    _sync(fn())
    first[name] = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
      _sync(fn())
  for _ in range(steps):
    for name, fn in fns.items():
      start = time.perf_counter()
      _sync(fn())
      times[name].append(time.perf_counter() - start)
  return {name: Timing(statistics.median(t), min(t), max(t), first[name]) for name, t in times.items()}


def _sync(result) -> None:
  """Waits for a result: reads one value back to the host (TF's CPU ops already ran, but be explicit)."""
  leaves = tf.nest.flatten(result)
  if leaves and hasattr(leaves[0], "numpy"):
    leaves[0].numpy()


def machine_info() -> Dict[str, str]:
  cpu = machine.cpu_info()
  return {
      "cpu": f"{cpu['model']} ({cpu['family_model']})",
      "cores": str(os.cpu_count()),
      "vector/matrix extensions": cpu["extensions"],
      "tensorflow": tf.__version__,
      "tf_keras": keras.__version__,
      "oneDNN": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 Linux)"),
      "threads": f"intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'default'}, "
                 f"inter-op {tf.config.threading.get_inter_op_parallelism_threads() or 'default'}",
      "python": platform.python_version(),
  }


# ------------------------------------------------------------------------------------------------ FLOPs


def forward_flops(config: BertConfig, batch: int, seq: int, logits_only: bool = True) -> int:
  """Matmul FLOPs of one forward pass (formulas in the module docstring)."""
  h, i, n = config.hidden_size, config.intermediate_size, batch * seq
  per_layer = 8 * n * h * h + 4 * batch * seq * seq * h + 4 * n * h * i
  last_layer = 4 * n * h * h + 4 * batch * h * h + 4 * batch * seq * h + 4 * batch * h * i if logits_only else per_layer
  return ((config.num_hidden_layers - 1) * per_layer + last_layer + 2 * batch * h * h
          + 2 * batch * h * config.num_labels)


def graph_flops(config: BertConfig, batch: int, seq: int, logits_only: bool) -> Tuple[int, int]:
  """(MatMul FLOPs from tf.compat.v1.profiler, BatchMatMulV2 FLOPs from static shapes) of the traced forward."""
  from tensorflow.python.framework import convert_to_constants  # pylint: disable=import-outside-toplevel
  model = BertClassifier(config).build_weights()
  spec = {k: tf.TensorSpec([batch, seq], tf.int32) for k in FEATURE_KEYS}
  concrete = tf.function(lambda x: model(x, training=False, logits_only=logits_only)["logits"]).get_concrete_function(
      spec)
  graph = convert_to_constants.convert_variables_to_constants_v2(concrete).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder(
      tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()).with_empty_output().build()
  profile = tf.compat.v1.profiler.profile(graph=graph, cmd="scope", options=options)
  op_types = {op.name: op.type for op in graph.get_operations()}
  matmul = 0
  stack = list(profile.children)
  while stack:
    node = stack.pop()
    if op_types.get(node.name) == "MatMul":
      matmul += node.float_ops
    stack.extend(node.children)
  batched = 0
  for op in graph.get_operations():
    if op.type == "BatchMatMulV2":
      a, b = (x.shape.as_list() for x in op.inputs)
      m = a[-1] if op.get_attr("adj_x") else a[-2]
      k = a[-2] if op.get_attr("adj_x") else a[-1]
      n = b[-2] if op.get_attr("adj_y") else b[-1]
      batched += 2 * int(np.prod(a[:-2])) * m * n * k
  return matmul, batched


# ------------------------------------------------------------------------------------------------ setup


class Bench:
  """The exported teacher, its vocab and a factory of fresh students."""

  def __init__(self, root: str):
    self.root = root
    self.teacher_config = BertConfig(vocab_size=FLAGS.vocab_size, hidden_size=FLAGS.hidden_size,
                                     num_hidden_layers=FLAGS.teacher_layers, num_attention_heads=FLAGS.num_heads,
                                     intermediate_size=FLAGS.intermediate_size, num_labels=FLAGS.num_labels,
                                     max_position_embeddings=max(512, FLAGS.seq_len))
    self.vocab_file = os.path.join(root, "vocab.txt")
    with open(self.vocab_file, "w", encoding="utf-8") as f:
      f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                        [f"tok{i}" for i in range(FLAGS.vocab_size - 5)]) + "\n")
    keras.utils.set_random_seed(0)
    teacher_model = BertClassifier(self.teacher_config).build_weights()
    self.labels = [f"label{i}" for i in range(FLAGS.num_labels)]
    self.teacher_path = export_classifier(teacher_model, os.path.join(root, "export"), "teacher",
                                          {"labels": self.labels, "max_seq_length": FLAGS.seq_len},
                                          self.vocab_file, with_distill_signature=True)
    self.teacher = SavedModelTeacher(self.teacher_path)
    init = tuple(int(x) for x in FLAGS.student_init_from_layers) if FLAGS.student_init_from_layers else None
    self.student_config = BertStudentConfig(num_hidden_layers=FLAGS.student_layers, init_from_layers=init)
    self.student_bert_config = BertConfig.from_dict({**self.teacher_config.to_dict(),
                                                     "num_hidden_layers": FLAGS.student_layers})

  def student(self) -> BertClassifier:
    model = build_bert_student(self.teacher.bert_config, self.student_config, self.teacher.variables)
    model.embeddings.word_embeddings.trainable = not FLAGS.freeze_word_embeddings
    return model


def optimizer() -> keras.optimizers.Optimizer:
  return create_optimizer(1e-4, 10000, 0.1, 0.01)


def synthetic_batch(batch: int, seq: int, width: Optional[int] = None, seed: int = 0) -> Dict[str, np.ndarray]:
  """int32 [batch, seq] inputs whose real length is `width` (default seq) for every example: [CLS] ids [SEP] pad."""
  width = seq if width is None else width
  rng = np.random.default_rng(seed)
  ids = np.zeros([batch, seq], np.int32)
  ids[:, :width] = rng.integers(1000, min(FLAGS.vocab_size, 29000), size=[batch, width])
  ids[:, 0], ids[:, width - 1] = 2, 3
  mask = np.zeros([batch, seq], np.int32)
  mask[:, :width] = 1
  return {"input_ids": ids, "input_mask": mask, "segment_ids": np.zeros([batch, seq], np.int32)}


def labels_for(batch: int) -> np.ndarray:
  return (np.arange(batch) % FLAGS.num_labels).astype(np.int32)


class StudentXlaDistiller(Distiller):
  """Online step with the teacher SavedModel run by TensorFlow and only the student's forward and backward
  XLA-compiled (one alternative when the whole step cannot or should not be compiled)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._gradients = tf.function(self._loss_and_gradients, jit_compile=True, reduce_retracing=True)

  def _loss_and_gradients(self, inputs, labels, teacher_logits):
    with tf.GradientTape() as tape:
      student_logits = self.student(inputs, training=True, logits_only=True)["logits"]
      loss, _, _ = self.compute_losses(labels, student_logits, teacher_logits)
    return loss, tape.gradient(loss, self.student.trainable_variables)

  def train_step(self, data):
    features, labels = data
    inputs = trim_padding({k: features[k] for k in FEATURE_KEYS})
    teacher_logits = self.teacher(inputs, outputs=("logits",))["logits"]
    loss, gradients = self._gradients(inputs, labels, teacher_logits)
    self.optimizer.apply_gradients(zip(gradients, self.student.trainable_variables))
    return {"loss": loss}


class FullLastLayer(keras.Model):
  """A student that ignores `logits_only` (its last layer always runs for every position, as when a Keras model is
  called plainly): isolates what the logits-only last layer saves."""

  def __init__(self, model: keras.Model):
    super().__init__()
    self.model = model

  def call(self, inputs, training=None, logits_only=False):
    del logits_only
    return self.model(inputs, training=training)


def train_function(model: keras.Model, features: Dict[str, np.ndarray], labels: np.ndarray, compile_model: bool = True,
                   **compile_kwargs) -> Callable[[], object]:
  """A zero-argument call of the model's Keras train_function (what fit runs per step) on one repeated batch.

  The model is compiled with AdamW and `compile_kwargs` unless `compile_model` is False (already compiled).
  """
  if compile_model:
    model.compile(optimizer=optimizer(), **compile_kwargs)
  dataset = tf.data.Dataset.from_tensors((features, labels)).repeat().prefetch(2)
  iterator = iter(dataset)
  fn = model.make_train_function()
  return lambda: fn(iterator)


def cached_distiller(bench: Bench, batches: Sequence[Dict[str, np.ndarray]]
                     ) -> Tuple[keras.Model, str, List[Dict[str, np.ndarray]]]:
  """The cached-logits step: tf_distill's Distiller with a `TeacherCache` of the teacher's logits on `batches` as its
  teacher (what --teacher_cache=build gives a run), so it never queries the teacher. Returns the model, a note, and
  each batch with the `example_index` column the cache looks its examples up by."""
  features = {k: np.concatenate([b[k] for b in batches]) for k in FEATURE_KEYS}
  key = teacher_cache.cache_key(bench.teacher_path, bench.vocab_file, FLAGS.seq_len,
                                teacher_cache.features_fingerprint(features))
  cache_dir = os.path.join(tempfile.mkdtemp(prefix="teacher_cache_", dir=bench.root), "cache")
  cache = teacher_cache.resolve("build", cache_dir, key, bench.teacher, features, log=logging.info)
  starts = np.cumsum([0] + [len(b["input_ids"]) for b in batches])
  indexed = [{**b, INDEX_KEY: np.arange(start, start + len(b["input_ids"]), dtype=np.int64)}
             for start, b in zip(starts, batches)]
  return (Distiller(bench.student(), cache, alpha=FLAGS.alpha, temperature=FLAGS.temperature),
          "Distiller with a `TeacherCache` as its teacher", indexed)


def keras_io_distiller(bench: Bench, **compile_kwargs) -> KerasIoDistiller:
  model = KerasIoDistiller(LogitsOnly(bench.student()), SavedModelLogits(bench.teacher_path))
  model.compile(optimizer=optimizer(), metrics=[keras.metrics.SparseCategoricalAccuracy()],
                student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                distillation_loss_fn=keras.losses.KLDivergence(), alpha=1.0 - FLAGS.alpha,
                temperature=FLAGS.temperature, **compile_kwargs)
  return model


# ------------------------------------------------------------------------------------------------ sections


class Report:
  """Collects markdown lines and the numbers later sections compare against."""

  def __init__(self):
    self.lines: List[str] = []
    self.values: Dict[str, float] = {}

  def add(self, *lines: str) -> None:
    self.lines.extend(lines)
    for line in lines:
      print(line, flush=True)

  def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    self.add("| " + " | ".join(header) + " |", "|" + "---|" * len(header))
    for row in rows:
      self.add("| " + " | ".join(_cell(x) for x in row) + " |")
    self.add("")


def _cell(x) -> str:
  if isinstance(x, float):
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
  return str(x)


def run_matmul(report: Report) -> None:
  batch_tokens = FLAGS.batch_size * FLAGS.seq_len
  h, i = FLAGS.hidden_size, FLAGS.intermediate_size
  shapes = [(batch_tokens, h, i), (batch_tokens, i, h), (batch_tokens, h, h), (1024, 1024, 1024),
            (2048, 2048, 2048), (4096, 4096, 4096)]
  rows, best = [], 0.0
  for m, k, n in shapes:
    rate = matmul_rate(m, k, n, tf.float32)
    best = max(best, rate)
    rows.append((f"[{m}, {k}] x [{k}, {n}]", "float32", rate))
  report.values["matmul_gflops"] = best
  report.add("### float32 matmul rate (tf.matmul inside tf.function, best of "
             f"{FLAGS.matmul_repeats})", "")
  report.table(("product", "dtype", "GFLOP/s"), rows)
  report.add(f"Reference rate for the % columns: **{best:.1f} GFLOP/s** (the best row).", "")


def matmul_rate(m: int, k: int, n: int, dtype) -> float:
  """Best GFLOP/s of an [m, k] x [k, n] product in `dtype`."""
  a = tf.random.normal([m, k], dtype=tf.float32)
  b = tf.random.normal([k, n], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(b, dtype)
  fn = tf.function(tf.matmul)
  fn(a, b).numpy()
  repeats = FLAGS.matmul_repeats if m * k * n < 2**34 else max(3, FLAGS.matmul_repeats // 3)
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2.0 * m * k * n / best / 1e9


def run_flops(report: Report, bench: Bench) -> None:
  rows = []
  for name, config in (("teacher", bench.teacher_config), ("student", bench.student_bert_config)):
    for logits_only in (False, True):
      analytic = forward_flops(config, FLAGS.batch_size, FLAGS.seq_len, logits_only)
      matmul, batched = graph_flops(config, FLAGS.batch_size, FLAGS.seq_len, logits_only)
      rows.append((f"{name} forward ({config.num_hidden_layers} layers{', logits only' if logits_only else ''})",
                   analytic / 1e9, matmul / 1e9, batched / 1e9, (matmul + batched) / 1e9,
                   f"{(matmul + batched) / analytic - 1:+.2%}"))
  report.add(f"### FLOPs per step (batch {FLAGS.batch_size}, seq {FLAGS.seq_len}), GFLOP", "")
  report.table(("graph", "formula", "profiler MatMul", "BatchMatMulV2 (graph shapes)", "graph total",
                "graph vs formula"), rows)


def step_flops(bench: Bench, width: int, teacher: bool = True, student_train: bool = True,
               student_logits_only: bool = True) -> float:
  total = 0.0
  if teacher:
    total += forward_flops(bench.teacher_config, FLAGS.batch_size, width)
  if student_train:
    total += 3 * forward_flops(bench.student_bert_config, FLAGS.batch_size, width, student_logits_only)
  return total


def step_row(report: Report, name: str, timing: Timing, flops: float, note: str = "") -> Tuple:
  rate = flops / timing.median / 1e9
  reference = report.values.get("matmul_gflops")
  share = f"{rate / reference:.0%}" if reference else "n/a"
  return (name, timing.median, timing.best, timing.first, FLAGS.batch_size / timing.median, flops / 1e9, rate, share,
          note)


STEP_HEADER = ("step", "median s", "best s", "first call s", "examples/s", "GFLOP", "GFLOP/s", "% of matmul rate",
               "note")


def run_step(report: Report, bench: Bench) -> None:
  features, labels = synthetic_batch(FLAGS.batch_size, FLAGS.seq_len), labels_for(FLAGS.batch_size)
  tensors = {k: tf.constant(v) for k, v in features.items()}
  cached_model, how, (cached_features,) = cached_distiller(bench, [features])
  full, teacher_only, student_only = (step_flops(bench, FLAGS.seq_len), step_flops(bench, FLAGS.seq_len,
                                      student_train=False), step_flops(bench, FLAGS.seq_len, teacher=False))
  configs = {
      "online": ("tf_distill online step (Distiller, SavedModel teacher)", full, "",
                 train_function(Distiller(bench.student(), bench.teacher, alpha=FLAGS.alpha,
                                          temperature=FLAGS.temperature), features, labels)),
      "online_full": ("tf_distill online step, student's last layer for every position", step_flops(
          bench, FLAGS.seq_len, student_logits_only=False), "what logits-only saves", train_function(
              Distiller(FullLastLayer(bench.student()), bench.teacher, alpha=FLAGS.alpha,
                        temperature=FLAGS.temperature), features, labels)),
      "teacher": ("teacher forward alone (serving_default)", teacher_only, "",
                  lambda: bench.teacher(tensors, outputs=("logits",))["logits"]),
      "student": ("student train step alone (alpha=0)", student_only, "",
                  train_function(Distiller(bench.student(), alpha=0.0), features, labels)),
      "cached": ("cached step (KD on stored teacher logits)", student_only, how,
                 train_function(cached_model, cached_features, labels)),
      "keras_io": ("keras.io-style Distiller (bench/keras_io_distiller.py)",
                   step_flops(bench, FLAGS.seq_len, student_logits_only=False),
                   "same teacher, student, optimizer, batch; student called as a plain Keras model",
                   train_function(keras_io_distiller(bench), features, labels, compile_model=False)),
  }
  timings = time_interleaved({k: v[3] for k, v in configs.items()}, FLAGS.warmup, FLAGS.steps)
  for key in ("online", "online_full", "cached", "keras_io", "student", "teacher"):
    report.values[f"{key}_s"] = timings[key].median
    report.values[f"{key}_best_s"] = timings[key].best
  report.add(f"### Train step, batch {FLAGS.batch_size} x seq {FLAGS.seq_len} (every position real, so padding "
             "trim changes nothing; configurations timed round-robin)", "")
  report.table(STEP_HEADER, [step_row(report, name, timings[k], flops, note)
                             for k, (name, flops, note, _) in configs.items()])
  t = {k: v.median for k, v in timings.items()}
  b = {k: v.best for k, v in timings.items()}
  report.add(f"- online / cached step time: **{t['online'] / t['cached']:.2f}x** median, "
             f"{b['online'] / b['cached']:.2f}x best (a cached epoch is that much faster at this length)",
             "- online / (teacher forward + student step timed apart): "
             f"{t['online'] / (t['teacher'] + t['student']):.2f} median, "
             f"{b['online'] / (b['teacher'] + b['student']):.2f} best",
             f"- keras.io-style / tf_distill online step time: **{t['keras_io'] / t['online']:.2f}x** median, "
             f"{b['keras_io'] / b['online']:.2f}x best (> 1: tf_distill is faster); with the student's last layer for "
             f"every position: {t['keras_io'] / t['online_full']:.2f}x median, {b['keras_io'] / b['online_full']:.2f}x "
             "best", "")


def run_threads(report: Report, bench: Bench) -> None:
  """The step section's online, cached and teacher times under other thread settings, each in a child process
  (TensorFlow fixes its thread pools when it starts)."""
  del bench
  rows = []
  if "online_s" in report.values:
    rows.append(("default (this process)", report.values["online_s"], report.values["cached_s"],
                 report.values["teacher_s"], ""))
  passed = [a for a in sys.argv[1:] if not a.startswith(("--sections", "--output", "--values_json",
                                                         "--intra_op_threads", "--inter_op_threads"))]
  for setting in FLAGS.thread_settings:
    env, args = dict(os.environ), []
    if setting == "onednn_off":
      env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    else:
      intra, inter = setting.split(":")
      args = [f"--intra_op_threads={intra}", f"--inter_op_threads={inter}"]
    values_path = os.path.join(tempfile.mkdtemp(prefix="distill_bench_threads_"), "values.json")
    command = [sys.executable, os.path.abspath(__file__), "--sections=step", f"--values_json={values_path}"]
    result = subprocess.run(command + passed + args, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
      rows.append((setting, "fails", "", "", result.stderr.strip().splitlines()[-1][-200:]))
      continue
    with open(values_path, encoding="utf-8") as f:
      values = json.load(f)
    shutil.rmtree(os.path.dirname(values_path), ignore_errors=True)
    label = "TF_ENABLE_ONEDNN_OPTS=0" if setting == "onednn_off" else f"intra-op {args[0].split('=')[1]}, " \
        f"inter-op {args[1].split('=')[1]}"
    rows.append((label, values["online_s"], values["cached_s"], values["teacher_s"], ""))
  report.add(f"### Thread settings (batch {FLAGS.batch_size} x seq {FLAGS.seq_len}, median s; each row its own "
             "process, so rows are not interleaved and are more exposed to load changes)", "")
  report.table(("setting", "online step", "cached step", "teacher forward", "note"), rows)


def run_xla(report: Report, bench: Bench) -> None:
  features, labels = synthetic_batch(FLAGS.batch_size, FLAGS.seq_len), labels_for(FLAGS.batch_size)
  short_width = min(32, FLAGS.seq_len)
  short = synthetic_batch(FLAGS.batch_size, FLAGS.seq_len, width=short_width)
  tensors = {k: tf.constant(v) for k, v in features.items()}
  signature = bench.teacher._signature  # pylint: disable=protected-access
  compiled_teacher = tf.function(lambda x: signature(**x)["logits"], jit_compile=True)

  def online(jit, batch=features):
    model = Distiller(bench.student(), bench.teacher, alpha=FLAGS.alpha, temperature=FLAGS.temperature)
    return train_function(model, batch, labels, jit_compile=jit)

  candidates = [
      ("online, no XLA", step_flops(bench, FLAGS.seq_len), "", lambda: online(False)),
      ("online, compile(jit_compile=True): whole step incl. SavedModel teacher", step_flops(bench, FLAGS.seq_len),
       "", lambda: online(True)),
      ("online, XLA on the student forward+backward only (teacher by TF)", step_flops(bench, FLAGS.seq_len), "",
       lambda: train_function(StudentXlaDistiller(bench.student(), bench.teacher, alpha=FLAGS.alpha,
                                                  temperature=FLAGS.temperature), features, labels)),
      (f"online, no XLA, real width {short_width} of {FLAGS.seq_len}", step_flops(bench, short_width), "",
       lambda: online(False, short)),
      (f"online, jit_compile=True, real width {short_width} of {FLAGS.seq_len}", step_flops(bench, short_width),
       "FLOPs at the trimmed width", lambda: online(True, short)),
      ("student step alone (alpha=0), no XLA", step_flops(bench, FLAGS.seq_len, teacher=False), "",
       lambda: train_function(Distiller(bench.student(), alpha=0.0), features, labels)),
      ("student step alone (alpha=0), jit_compile=True", step_flops(bench, FLAGS.seq_len, teacher=False), "",
       lambda: train_function(Distiller(bench.student(), alpha=0.0), features, labels, jit_compile=True)),
      ("teacher forward alone, no XLA", step_flops(bench, FLAGS.seq_len, student_train=False), "",
       lambda: lambda: signature(**tensors)["logits"]),
      ("teacher forward alone, tf.function(jit_compile=True) around the signature",
       step_flops(bench, FLAGS.seq_len, student_train=False), "", lambda: lambda: compiled_teacher(tensors)),
  ]
  fns, rows, meta, compile_s = {}, [], {}, {}
  for name, flops, note, make in candidates:
    try:
      fn = make()
      start = time.perf_counter()
      _sync(fn())  # trace and compile here, so that a failure is reported and does not stop the section
      compile_s[name] = time.perf_counter() - start
      fns[name], meta[name] = fn, (flops, note)
    except Exception as e:  # pylint: disable=broad-except  (a benchmark reports what fails and goes on)
      meta[name] = None
      rows.append((name, "fails", "", "", "", "", "", "", f"{type(e).__name__}: {' '.join(str(e).split())[-300:]}"))
  timings = time_interleaved(fns, FLAGS.warmup, FLAGS.steps)
  for name in fns:
    timings[name].first = compile_s[name]
  rows = [step_row(report, name, timings[name], *meta[name]) for name in fns] + rows
  report.add(f"### XLA (batch {FLAGS.batch_size} x seq {FLAGS.seq_len}; configurations timed round-robin)", "")
  report.table(STEP_HEADER, rows)
  names = [c[0] for c in candidates]
  if names[0] in timings and names[1] in timings:
    report.add(f"- whole-step XLA speed-up: {timings[names[0]].median / timings[names[1]].median:.2f}x. XLA "
               "compiles once per input shape; with per-batch padding trim each new trimmed width is a new shape.")
  if names[3] in timings and names[4] in timings:
    ratio = timings[names[4]].median / timings[names[3]].median
    report.add(f"- at real width {short_width}: XLA / no XLA step time {ratio:.2f}")
  report.add("")


def run_precision(report: Report, bench: Bench) -> None:
  del bench
  h, i = FLAGS.hidden_size, FLAGS.intermediate_size
  m = FLAGS.batch_size * FLAGS.seq_len
  rows = []
  for dtype in (tf.float32, tf.bfloat16, tf.float16):
    rows.append((f"[{m}, {h}] x [{h}, {i}]", dtype.name, matmul_rate(m, h, i, dtype)))
    rows.append(("[2048, 2048] x [2048, 2048]", dtype.name, matmul_rate(2048, 2048, 2048, dtype)))
  report.add("### Mixed precision: matmul rate by dtype", "")
  report.table(("product", "dtype", "GFLOP/s"), rows)
  step_rows = []
  features, labels = synthetic_batch(FLAGS.batch_size, FLAGS.seq_len), labels_for(FLAGS.batch_size)
  for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
    keras.mixed_precision.set_global_policy(policy)
    try:
      config = BertConfig.from_dict({**_bench_teacher_config().to_dict(), "num_hidden_layers": FLAGS.student_layers})
      student = BertClassifier(config).build_weights()
      student.embeddings.word_embeddings.trainable = not FLAGS.freeze_word_embeddings
      timing = time_calls(train_function(Distiller(student, alpha=0.0), features, labels), FLAGS.warmup,
                          FLAGS.steps)
      step_rows.append((policy, timing.median, FLAGS.batch_size / timing.median, ""))
    except Exception as e:  # pylint: disable=broad-except
      step_rows.append((policy, "fails", "", f"{type(e).__name__}: {' '.join(str(e).split())[-250:]}"))
    finally:
      keras.mixed_precision.set_global_policy("float32")
  report.add("Student train step (alpha=0, random init) under a Keras mixed-precision policy "
             "(`--mixed_precision`; mixed_float16 adds Keras' loss scaling).", "")
  report.table(("policy", "median s", "examples/s", "note"), step_rows)


def _bench_teacher_config() -> BertConfig:
  return BertConfig(vocab_size=FLAGS.vocab_size, hidden_size=FLAGS.hidden_size, num_hidden_layers=FLAGS.teacher_layers,
                    num_attention_heads=FLAGS.num_heads, intermediate_size=FLAGS.intermediate_size,
                    num_labels=FLAGS.num_labels, max_position_embeddings=max(512, FLAGS.seq_len))


def real_features(seq_len: int) -> Tuple[Dict[str, np.ndarray], str]:
  """Rotten Tomatoes train split tokenised with the all-MiniLM-L6-v2 vocab; synthetic lengths if unavailable."""
  try:
    from tf_distill import pretrained  # pylint: disable=import-outside-toplevel
    from tf_distill.data.processors import get_processor  # pylint: disable=import-outside-toplevel
    from tf_distill.data.tokenization import WordPieceTokenizer  # pylint: disable=import-outside-toplevel
    processor = get_processor("rotten_tomatoes")
    tokenizer = WordPieceTokenizer(os.path.join(pretrained.default_pretrained_dir(), "vocab.txt"), do_lower_case=True)
    features = tokenizer.encode(processor.get_examples("train", None), seq_len, processor.get_labels())
    features["input_ids"] = np.minimum(features["input_ids"], FLAGS.vocab_size - 1)
    return features, f"Rotten Tomatoes train split ({len(features['label_ids'])} examples, all-MiniLM-L6-v2 vocab)"
  except Exception as e:  # pylint: disable=broad-except
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(25), 0.45, size=8000).astype(int), 3, seq_len)
    features = {k: np.zeros([len(lengths), seq_len], np.int32) for k in FEATURE_KEYS}
    for row, length in enumerate(lengths):
      features["input_ids"][row, :length] = rng.integers(1000, 29000, size=length)
      features["input_mask"][row, :length] = 1
    features["label_ids"] = (np.arange(len(lengths)) % FLAGS.num_labels).astype(np.int32)
    return features, f"synthetic log-normal lengths (real data unavailable: {type(e).__name__})"


def epoch_widths(features: Dict[str, np.ndarray], buckets: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
  """(trimmed width, batch size) of every batch of one shuffled training epoch through `make_dataset`."""
  from tf_distill.data.pipeline import make_dataset  # pylint: disable=import-outside-toplevel
  dataset = make_dataset({k: features[k] for k in FEATURE_KEYS + ("label_ids",)}, FLAGS.batch_size, training=True,
                         seed=0, length_buckets=buckets)
  widths, sizes = [], []
  for inputs, _ in dataset.as_numpy_iterator():
    widths.append(max(int(inputs["input_mask"].sum(axis=1).max()), 1))
    sizes.append(len(inputs["input_mask"]))
  return np.array(widths), np.array(sizes)


def run_lengths(report: Report, bench: Bench) -> None:
  from tf_distill.data.pipeline import make_dataset  # pylint: disable=import-outside-toplevel
  from tf_distill.training import length_buckets  # pylint: disable=import-outside-toplevel
  features, source = real_features(FLAGS.seq_len)
  lengths = features["input_mask"].sum(axis=1)
  steps = max(3, FLAGS.steps // 2)
  widths = sorted({int(w) for w in FLAGS.widths if int(w) <= FLAGS.seq_len} | {FLAGS.seq_len})
  labels = labels_for(FLAGS.batch_size)
  online_model = Distiller(bench.student(), bench.teacher, alpha=FLAGS.alpha, temperature=FLAGS.temperature)
  batches = [synthetic_batch(FLAGS.batch_size, FLAGS.seq_len, width=width, seed=width) for width in widths]
  cached_model, _, cached_batches = cached_distiller(bench, batches)
  online_model.compile(optimizer=optimizer())
  cached_model.compile(optimizer=optimizer())
  fns = {}
  for width, batch, cached_batch in zip(widths, batches, cached_batches):
    fns[("online", width)] = train_function(online_model, batch, labels, compile_model=False)
    fns[("cached", width)] = train_function(cached_model, cached_batch, labels, compile_model=False)
  timings = time_interleaved(fns, 1, steps)
  online_t = {w: timings[("online", w)].median for w in widths}
  cached_t = {w: timings[("cached", w)].median for w in widths}
  report.add(f"### Sequence length: step time by trimmed batch width (batch {FLAGS.batch_size}, median of {steps}, "
             "all widths and both steps timed round-robin)", "")
  report.table(("width", "online s", "cached s", "online / cached", "online GFLOP/s", "% of matmul rate"),
               [(w, online_t[w], cached_t[w], online_t[w] / cached_t[w], step_flops(bench, w) / online_t[w] / 1e9,
                 f"{step_flops(bench, w) / online_t[w] / 1e9 / report.values['matmul_gflops']:.0%}"
                 if "matmul_gflops" in report.values else "n/a") for w in widths])

  def epoch_seconds(table, batch_widths):
    return float(np.sum(np.interp(batch_widths, widths, [table[w] for w in widths])))

  modes = [("padded to max_seq_length, no trim (keras.io style)", np.full(
      int(np.ceil(len(lengths) / FLAGS.batch_size)), FLAGS.seq_len))]
  modes.append(("trim per batch, random batches", epoch_widths(features, ())[0]))
  buckets = length_buckets(FLAGS.seq_len)
  modes.append((f"trim per batch + length buckets {list(buckets)} (training.fit)", epoch_widths(features, buckets)[0]))
  rows = []
  for name, batch_widths in modes:
    online_epoch, cached_epoch = epoch_seconds(online_t, batch_widths), epoch_seconds(cached_t, batch_widths)
    rows.append((name, len(batch_widths), float(np.mean(batch_widths)), online_epoch, cached_epoch,
                 online_epoch / cached_epoch))
  report.values["bucketed_online_over_cached"] = rows[-1][-1]
  bucketed_flops = float(sum(step_flops(bench, int(w)) for w in modes[-1][1]))
  report.values["bucketed_online_gflops"] = bucketed_flops / rows[-1][3] / 1e9
  report.add(f"Epoch estimates on {source}: real lengths mean {lengths.mean():.1f}, median "
             f"{np.median(lengths):.0f}, p90 {np.percentile(lengths, 90):.0f}, max {lengths.max()}. Each batch's "
             "time is interpolated from the table above at its trimmed width (partial batches counted as full).", "")
  report.table(("batching", "batches", "mean width", "online epoch s", "cached epoch s", "online / cached"), rows)

  # The real pipeline end to end: bucketed batches through fit's train_function; count traces.
  dataset = make_dataset({k: features[k] for k in FEATURE_KEYS + ("label_ids",)}, FLAGS.batch_size, training=True,
                         seed=1, length_buckets=buckets).take(FLAGS.bucketed_batches)
  batch_widths = [max(int(x["input_mask"].sum(axis=1).max()), 1) for x, _ in dataset.as_numpy_iterator()]
  model = Distiller(bench.student(), bench.teacher, alpha=FLAGS.alpha, temperature=FLAGS.temperature)
  model.compile(optimizer=optimizer())
  fn = model.make_train_function()
  iterator = iter(dataset)
  _sync(fn(iterator))  # trace outside the timing
  first_traces = fn.experimental_get_tracing_count()  # 2 when the first trace creates the optimizer's variables
  start = time.perf_counter()
  for _ in range(len(batch_widths) - 1):
    _sync(fn(iterator))
  measured = time.perf_counter() - start
  predicted = epoch_seconds(online_t, batch_widths[1:])
  retraces = fn.experimental_get_tracing_count() - first_traces
  keras_io = keras_io_distiller(bench)
  keras_fn = keras_io.make_train_function()
  keras_iterator = iter(dataset)
  _sync(keras_fn(keras_iterator))
  keras_first = keras_fn.experimental_get_tracing_count()
  for _ in range(len(batch_widths) - 1):
    _sync(keras_fn(keras_iterator))
  report.add(f"Real bucketed pipeline, {len(batch_widths)} batches through `Distiller.make_train_function()` "
             f"(widths {sorted(set(batch_widths))}): {measured:.1f} s for the last {len(batch_widths) - 1} vs "
             f"{predicted:.1f} s predicted from the width table. **Retraces after the first step: {retraces}** over "
             f"{len(set(batch_widths))} distinct trimmed widths (the first call traced {first_traces} times: the "
             "optimizer creates its variables in the first trace; batches keep the "
             f"[batch, {FLAGS.seq_len}] shape and the trim happens inside the step). keras.io-style train_function "
             f"on the same batches: {keras_fn.experimental_get_tracing_count() - keras_first} retraces.", "")


def run_latency(report: Report, bench: Bench) -> None:
  from tf_distill.export.tflite import TFLiteClassifier, convert_saved_model  # pylint: disable=import-outside-toplevel
  student = bench.student()
  student_path = export_classifier(student, os.path.join(bench.root, "export"), "student",
                                   {"labels": bench.labels, "max_seq_length": FLAGS.seq_len}, bench.vocab_file,
                                   with_distill_signature=False)
  teacher_fn = tf.saved_model.load(bench.teacher_path).signatures["serving_default"]
  student_fn = tf.saved_model.load(student_path).signatures["serving_default"]
  runners = [("teacher SavedModel (TF)", lambda x: teacher_fn(**x)["logits"], True),
             ("student SavedModel (TF)", lambda x: student_fn(**x)["logits"], True)]
  for variant in FLAGS.tflite_variants:
    path = convert_saved_model(student_path, os.path.join(bench.root, f"student_{variant}.tflite"), variant)
    for threads in (1, 2):
      runners.append((f"student TFLite {variant}, {threads} thread(s)", TFLiteClassifier(path, num_threads=threads),
                      False))
  seq_lens = [int(x) for x in FLAGS.latency_seq_lens]
  rows = []
  for name, fn, tensors in runners:
    row = [name]
    for seq in seq_lens:
      batch = synthetic_batch(1, seq)
      inputs = {k: tf.constant(v) for k, v in batch.items()} if tensors else batch
      timing = time_calls(lambda fn=fn, inputs=inputs: fn(inputs), 5, FLAGS.latency_runs)
      row.append(timing.median * 1000)
    rows.append(row)
  report.add(f"### Batch-1 latency, ms (median of {FLAGS.latency_runs}; inputs pre-converted)", "")
  report.table(["model"] + [f"seq {s}" for s in seq_lens], rows)


def run_checks(report: Report) -> None:
  """The issue-4 targets, each from the numbers above (median; best of the timed calls in brackets)."""
  values = report.values
  reference = values.get("matmul_gflops")
  lines = ["### Issue-4 targets (median; best call in brackets)", ""]
  if "bucketed_online_over_cached" in values:
    lines.append(f"- cached epoch >= 1.8x faster than online: {values['bucketed_online_over_cached']:.2f}x on the "
                 "real-length bucketed epoch estimate (lengths section)")
  if "cached_s" in values:
    lines.append(f"- the same at full width {FLAGS.seq_len}: {values['online_s'] / values['cached_s']:.2f}x "
                 f"({values['online_best_s'] / values['cached_best_s']:.2f}x)")
  if "online_s" in values and "matmul_gflops" in values:
    flops = step_flops_default()
    median, best = flops / values["online_s"] / 1e9, flops / values["online_best_s"] / 1e9
    lines.append(f"- online step >= 55% of the matmul rate: {median / reference:.0%} ({best / reference:.0%}): "
                 f"{median:.1f} ({best:.1f}) of {reference:.1f} GFLOP/s at width {FLAGS.seq_len}")
  if "bucketed_online_gflops" in values and "matmul_gflops" in values:
    lines.append(f"- ... and over the real-length bucketed epoch: {values['bucketed_online_gflops'] / reference:.0%} "
                 f"({values['bucketed_online_gflops']:.1f} GFLOP/s)")
  if "keras_io_s" in values:
    lines.append(f"- tf_distill step at least as fast as keras.io: keras.io / tf_distill time = "
                 f"{values['keras_io_s'] / values['online_s']:.2f}x "
                 f"({values['keras_io_best_s'] / values['online_best_s']:.2f}x) at full width; on real lengths "
                 "keras.io computes every batch at max_seq_length (lengths section, first row)")
  report.add(*lines, "")


def step_flops_default() -> float:
  teacher = _bench_teacher_config()
  student = BertConfig.from_dict({**teacher.to_dict(), "num_hidden_layers": FLAGS.student_layers})
  return (forward_flops(teacher, FLAGS.batch_size, FLAGS.seq_len) +
          3 * forward_flops(student, FLAGS.batch_size, FLAGS.seq_len))


def set_thread_flags() -> None:
  """Applies --intra_op_threads / --inter_op_threads (0: TensorFlow's default) before TensorFlow starts its pools."""
  if FLAGS.intra_op_threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
  if FLAGS.inter_op_threads:
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel("ERROR")
  unknown = [s for s in FLAGS.sections if s not in SECTIONS]
  if unknown:
    raise app.UsageError(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
  set_thread_flags()
  started, load_before = time.time(), os.getloadavg()
  report = Report()
  command = "python3 bench/distill_bench.py " + " ".join(sys.argv[1:])
  report.add(f"## Online distillation benchmark ({time.strftime('%Y-%m-%d %H:%M')})", "", "Command:", "",
             f"    {command.strip()}", "")
  info = machine_info()
  report.add(*[f"- {k}: {v}" for k, v in info.items()])
  report.add(f"- teacher: {FLAGS.teacher_layers} layers / hidden {FLAGS.hidden_size} / {FLAGS.num_heads} heads / "
             f"FFN {FLAGS.intermediate_size}, random weights, SavedModel; student: {FLAGS.student_layers} layers "
             f"initialised from teacher layers {','.join(FLAGS.student_init_from_layers) or 'none (random)'}; "
             f"word embeddings {'frozen' if FLAGS.freeze_word_embeddings else 'trained'}; alpha {FLAGS.alpha}, "
             f"T {FLAGS.temperature}; timing: median of {FLAGS.steps} after {FLAGS.warmup} warm-up calls", "")
  root = tempfile.mkdtemp(prefix="distill_bench_")
  try:
    bench = Bench(root)
    sections = {"matmul": lambda: run_matmul(report), "flops": lambda: run_flops(report, bench),
                "step": lambda: run_step(report, bench), "threads": lambda: run_threads(report, bench),
                "xla": lambda: run_xla(report, bench),
                "precision": lambda: run_precision(report, bench), "lengths": lambda: run_lengths(report, bench),
                "latency": lambda: run_latency(report, bench)}
    for name in SECTIONS:
      if name in FLAGS.sections:
        sections[name]()
    run_checks(report)
  finally:
    shutil.rmtree(root, ignore_errors=True)
  load_after = os.getloadavg()
  report.add(f"Run took {time.time() - started:.0f} s; 1-minute load average {load_before[0]:.2f} before, "
             f"{load_after[0]:.2f} after (above ~0.1 on {os.cpu_count()} cores means something else was running).",
             "")
  if FLAGS.output:
    with open(FLAGS.output, "a", encoding="utf-8") as f:
      f.write("\n" + "\n".join(report.lines) + "\n")
  if FLAGS.values_json:
    with open(FLAGS.values_json, "w", encoding="utf-8") as f:
      json.dump(report.values, f, indent=2, sort_keys=True)


if __name__ == "__main__":
  app.run(main)

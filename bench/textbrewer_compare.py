"""tf_distill vs TextBrewer (PyTorch): the online distillation step side by side on the same shapes.

One command (bench/textbrewer_compare.sh makes the TextBrewer environment from bench/requirements-textbrewer.txt
and runs this; PyTorch and TextBrewer are never dependencies of tf_distill):

    bench/textbrewer_compare.sh --output=bench/RESULTS.md

This process is the tf_distill side (bench/distill_bench.py's teacher SavedModel, students and Distiller); it starts
bench/textbrewer_worker.py with --torch_python as its child, which builds the same teacher and student shapes as
transformers' PyTorch BertForSequenceClassification (random init) and trains them with TextBrewer's
`GeneralDistiller`. Configurations are timed round-robin: each round times --steps_per_round steps of every
configuration in turn (the child waits idle while TensorFlow runs and the other way round), so load from other
processes on a shared machine spreads over all of them. Reported: the median over --steps timed steps (after
--warmup untimed ones) and examples/s = batch / median; "tf_distill / TextBrewer" is TextBrewer's median step time over
tf_distill's (> 1: tf_distill is faster).

Both sides: batch --batch_size of --lengths tokens, every position real (the inputs are [batch, length] on both
sides, so tf_distill's padding trim changes nothing); loss 0.5 * hard-label CE + 0.5 * KD CE at temperature 2
(--alpha, --temperature), optionally plus one hidden-state MSE match (--hidden_match, student:teacher layer, 0 =
embeddings); AdamW (lr 1e-4, weight decay 0.01 except biases and LayerNorm, eps 1e-6) with linear warm-up; dropout on
in the student, teacher in inference mode. Word embeddings trained or frozen. tf_distill also runs with
`--embedding_optimizer=lazy_adamw` (row-sparse update of the embedding table; not the default, different semantics:
tf_distill/optimization.py LazyAdamW), and with the default AdamW minus its XLA-compiled update (what tf-keras does on
a CPU by itself; the package default before it turned `jit_compile` on); TextBrewer always with torch's dense AdamW
(nn.Embedding's default dense gradient).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Sequence

from absl import app, flags, logging

_BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_BENCH_DIR), _BENCH_DIR]

# pylint: disable=wrong-import-position
import distill_bench  # noqa: E402  (defines the shared shape, timing and thread flags)
from distill_bench import Bench, Report, labels_for, machine_info, synthetic_batch, train_function  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_distill.distiller import Distiller  # noqa: E402
from tf_distill.layer_map import Match  # noqa: E402
from tf_distill.optimization import create_optimizer  # noqa: E402

flags.DEFINE_list("lengths", ["32", "128"], "Sequence lengths (every position real).")
flags.DEFINE_integer("steps_per_round", 2, "Steps of one configuration per round-robin turn.")
flags.DEFINE_string("torch_python", "", "Python of the TextBrewer environment (bench/textbrewer_compare.sh sets it).")
flags.DEFINE_integer("torch_threads", 2, "torch.set_num_threads in the TextBrewer child.")
flags.DEFINE_string("hidden_match", "2:6", "STUDENT:TEACHER layers of the hidden-MSE match (1-based, 0 = embeddings).")
FLAGS = flags.FLAGS

# (key, word embeddings, hidden MSE match, tf_distill embedding optimizers)
# "adamw_unfused": the default AdamW with tf-keras' CPU behaviour (no XLA update), the package default before the
# XLA-compiled update; bench only, to show that lever in the same run.
CASES = (("kd_trained", "trained", False, ("adamw", "lazy_adamw", "adamw_unfused")),
         ("kd_frozen", "frozen", False, ("adamw",)),
         ("hidden_trained", "trained", True, ("adamw", "lazy_adamw", "adamw_unfused")))
COLUMNS = (("adamw", "tf_distill, adamw (default)"), ("lazy_adamw", "tf_distill, lazy_adamw"),
           ("adamw_unfused", "tf_distill, adamw without the XLA update"))


class TorchWorker:
  """The TextBrewer child process: one JSON request per line on its stdin, one JSON answer per line on its stdout."""

  def __init__(self, python: str, threads: int, log_path: str):
    self.log_path = log_path
    self._log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
    self.process = subprocess.Popen(  # pylint: disable=consider-using-with
        [python, os.path.join(_BENCH_DIR, "textbrewer_worker.py"), str(threads)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)

  def ask(self, **request) -> Dict:
    self.process.stdin.write(json.dumps(request) + "\n")
    line = self.process.stdout.readline()
    if not line:
      raise RuntimeError(f"the TextBrewer worker exited (code {self.process.poll()}); its log: {self.log_path}")
    answer = json.loads(line)
    if "error" in answer:
      raise RuntimeError(f"TextBrewer worker, {request['cmd']} {request.get('name', '')}: {answer['error']} "
                         f"(log: {self.log_path})")
    return answer

  def close(self) -> None:
    if self.process.poll() is None:
      self.process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
      self.process.stdin.flush()
      self.process.wait(timeout=60)
    self._log.close()


def model_spec() -> Dict:
  student, teacher = (int(x) for x in FLAGS.hidden_match.split(":"))
  return {"vocab_size": FLAGS.vocab_size, "hidden_size": FLAGS.hidden_size, "num_heads": FLAGS.num_heads,
          "intermediate_size": FLAGS.intermediate_size, "num_labels": FLAGS.num_labels,
          "teacher_layers": FLAGS.teacher_layers, "student_layers": FLAGS.student_layers, "student_layer": student,
          "teacher_layer": teacher, "alpha": FLAGS.alpha, "temperature": FLAGS.temperature}


def tf_distill_step(bench: Bench, features, labels, frozen: bool, hidden: bool,
                    embedding_optimizer: str) -> Callable[[], object]:
  """One call = one Keras train_function step of tf_distill's Distiller (what fit runs per batch)."""
  student = bench.student()
  student.embeddings.word_embeddings.trainable = not frozen
  spec = model_spec()
  matches = [Match(spec["student_layer"], spec["teacher_layer"], "hidden_mse")] if hidden else []
  model = Distiller(student, bench.teacher, alpha=FLAGS.alpha, temperature=FLAGS.temperature, matches=matches)
  optimizer = create_optimizer(1e-4, 10000, 0.1, 0.01, embedding_optimizer.replace("_unfused", ""))
  if embedding_optimizer.endswith("_unfused"):
    optimizer.jit_compile = False
  model.compile(optimizer=optimizer)
  return train_function(model, features, labels, compile_model=False)


def timed(fn: Callable[[], object], steps: int) -> List[float]:
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    distill_bench._sync(fn())  # pylint: disable=protected-access
    times.append(time.perf_counter() - start)
  return times


def run(report: Report, bench: Bench, worker: TorchWorker) -> None:
  spec = model_spec()
  info = worker.ask(cmd="info", model=spec)
  report.add(f"- TextBrewer side: torch {info['torch']} ({info['threads']} intra-op, {info['interop_threads']} "
             f"inter-op threads, oneDNN {'on' if info['mkldnn'] else 'off'}), textbrewer {info['textbrewer']}, "
             f"transformers {info['transformers']} BertForSequenceClassification (attention: {info['attention']}), "
             "`GeneralDistiller.train` driving the steps", "")
  turns = {}  # name -> zero-argument call returning a list of step times for --steps_per_round steps
  for length in map(int, FLAGS.lengths):
    features, labels = synthetic_batch(FLAGS.batch_size, length), labels_for(FLAGS.batch_size)
    torch_batch = {"input_ids": features["input_ids"].tolist(), "attention_mask": features["input_mask"].tolist(),
                   "token_type_ids": features["segment_ids"].tolist()}
    for key, embeddings, hidden, optimizers in CASES:
      name = f"{length}/{key}/textbrewer"
      worker.ask(cmd="build", name=name, model=spec, batch=torch_batch, labels=labels.tolist(),
                 frozen=embeddings == "frozen", hidden_mse=hidden, warmup=FLAGS.warmup)
      turns[name] = lambda name=name: worker.ask(cmd="time", name=name, steps=FLAGS.steps_per_round)["times"]
      for optimizer in optimizers:
        fn = tf_distill_step(bench, features, labels, embeddings == "frozen", hidden, optimizer)
        timed(fn, FLAGS.warmup)
        turns[f"{length}/{key}/{optimizer}"] = lambda fn=fn: timed(fn, FLAGS.steps_per_round)
      logging.warning("built %s at length %d", key, length)
  times = {name: [] for name in turns}
  rounds = -(-FLAGS.steps // FLAGS.steps_per_round)
  for r in range(rounds):
    for name, turn in turns.items():
      times[name].extend(turn())
    logging.warning("round %d of %d done", r + 1, rounds)
  medians = {name: statistics.median(t[:FLAGS.steps]) for name, t in times.items()}
  report.values.update({f"{name}_s": value for name, value in medians.items()})
  report_table(report, medians)


def report_table(report: Report, medians: Dict[str, float]) -> None:
  """The table: per length and case, TextBrewer's step and tf_distill's with each embedding optimizer."""
  student, teacher = FLAGS.hidden_match.split(":")
  labels = {"kd_trained": "KD", "kd_frozen": "KD", "hidden_trained": f"KD + hidden MSE s{student}:t{teacher}"}
  batch = FLAGS.batch_size
  rows = []
  for length in map(int, FLAGS.lengths):
    for key, embeddings, _, optimizers in CASES:
      brewer = medians[f"{length}/{key}/textbrewer"]
      row = [length, embeddings, labels[key], f"{brewer:.3f} s ({batch / brewer:.1f} ex/s)"]
      for optimizer, _ in COLUMNS:
        if optimizer in optimizers:
          ours = medians[f"{length}/{key}/{optimizer}"]
          row += [f"{ours:.3f} s ({batch / ours:.1f} ex/s)", f"**{brewer / ours:.2f}x**"]
          report.values[f"ratio_{length}_{key}_{optimizer}"] = brewer / ours
        else:
          row += ["", ""]
      rows.append(row)
  header = ["length", "word embeddings", "loss", "TextBrewer step (median)"]
  for _, title in COLUMNS:
    header += [title, "tf_distill / TextBrewer"]
  report.table(header, rows)


def main(argv: Sequence[str]) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel("ERROR")
  if not FLAGS.torch_python:
    raise app.UsageError("--torch_python is required: the Python of an environment with "
                         "bench/requirements-textbrewer.txt installed (bench/textbrewer_compare.sh makes one)")
  if max(map(int, FLAGS.lengths)) > FLAGS.seq_len:
    raise app.UsageError(f"--lengths {FLAGS.lengths} exceed --seq_len={FLAGS.seq_len}, the teacher's max_seq_length")
  distill_bench.set_thread_flags()
  started, load_before = time.time(), os.getloadavg()
  report = Report()
  command = "bench/textbrewer_compare.sh " + " ".join(a for a in sys.argv[1:] if not a.startswith("--torch_python"))
  report.add(f"## tf_distill vs TextBrewer, online distillation step ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Command:", "", f"    {command.strip()}", "")
  report.add(*[f"- {k}: {v}" for k, v in machine_info().items()])
  report.add(f"- shapes: batch {FLAGS.batch_size}; teacher {FLAGS.teacher_layers} layers / hidden {FLAGS.hidden_size} / "
             f"{FLAGS.num_heads} heads / FFN {FLAGS.intermediate_size}, vocab {FLAGS.vocab_size}, random weights "
             f"(tf_distill: SavedModel teacher); student {FLAGS.student_layers} layers; alpha {FLAGS.alpha}, T "
             f"{FLAGS.temperature}; timing: median of {FLAGS.steps} steps after {FLAGS.warmup} warm-up steps, "
             f"round-robin in turns of {FLAGS.steps_per_round}")
  root = tempfile.mkdtemp(prefix="textbrewer_compare_")
  worker = TorchWorker(FLAGS.torch_python, FLAGS.torch_threads, os.path.join(root, "textbrewer_worker.log"))
  try:
    run(report, Bench(root), worker)
  finally:
    worker.close()
  shutil.rmtree(root, ignore_errors=True)  # kept when the run fails: the worker's log is in it
  load_after = os.getloadavg()
  report.add(f"Run took {time.time() - started:.0f} s; 1-minute load average {load_before[0]:.2f} before, "
             f"{load_after[0]:.2f} after on {os.cpu_count()} cores (above ~0.1: other jobs shared the CPU).", "")
  if FLAGS.output:
    with open(FLAGS.output, "a", encoding="utf-8") as f:
      f.write("\n" + "\n".join(report.lines) + "\n")


if __name__ == "__main__":
  app.run(main)

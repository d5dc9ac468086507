"""`GeneralDistillRun`: one general-distillation run, from corpus and teacher to a Hugging Face-format student.

    from tf_distill.configs import BertStudentConfig, GeneralDistillConfig
    from tf_distill.general.run import GeneralDistillRun
    GeneralDistillRun(GeneralDistillConfig(output_dir="runs/general", corpus=("my_corpus/",),
        student=BertStudentConfig(num_hidden_layers=4, hidden_size=312, num_attention_heads=12,
                                  intermediate_size=1200))).run()

The student learns only the teacher's intermediates: the `Distiller` with alpha = 0 (no logits term; every label is
-1, so the hard term is 0) and the config's matches, on the corpus's packed windows. Every `save_every_steps` steps
end a Keras epoch and a resume checkpoint (model, optimizer, data position); rerunning the same command after a kill
continues from it with the batches an uninterrupted run would see. Under `multi_worker_mirrored` every worker runs
the same command with its TF_CONFIG; each gets its part of every global batch, so N workers take one worker's steps.

Writes to `output_dir`: config.json, logs/ (TensorBoard), resume/, history.json (the loss per epoch of
`save_every_steps` steps), loss.png, and student/, the Hugging Face-format student (`tf_distill.pretrained`) that
`distill --student_init_checkpoint` and `train_teacher --init_checkpoint` load.
"""

import contextlib
import json
import os
import re
import time
from typing import Dict, Optional, Sequence

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill import console
from tf_distill.callbacks import RunProgbar, StopOnNonFiniteLoss
from tf_distill.checkpointing import RunState, SaveRunState, refuse_other_settings
from tf_distill.configs import GeneralDistillConfig, save_json
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.determinism import make_deterministic
from tf_distill.distiller import Distiller, teacher_outputs_needed
from tf_distill.distribute import is_chief, worker_output_dir
from tf_distill.general.corpus import CorpusError, WindowCorpus, check_readable, corpus_files
from tf_distill.general.teacher import PretrainedEncoderTeacher
from tf_distill.layer_map import parse_matches
from tf_distill.optimization import create_optimizer
from tf_distill.pretrained import default_pretrained_dir, save_pretrained
from tf_distill.students.bert import build_bert_student
from tf_distill.teacher import SavedModelTeacher, TeacherSource

STUDENT_DIR = "student"
_NEVER = 2 ** 62  # RunState's mid-epoch saves are off: an epoch is save_every_steps steps and ends in a save


def load_teacher(config: GeneralDistillConfig) -> TeacherSource:
  """`teacher_model` (an exported tf_distill teacher) or the pretrained directory `teacher_checkpoint` (default:
  all-MiniLM-L6-v2)."""
  if config.teacher_model:
    return SavedModelTeacher(config.teacher_model, required_outputs=())
  return PretrainedEncoderTeacher(config.teacher_checkpoint or default_pretrained_dir())


def plot_loss(history: Dict, path: str) -> None:
  """The loss per epoch (of save_every_steps steps) as a PNG."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
  figure, axes = pyplot.subplots(figsize=(6, 3.5))
  axes.plot(history["step"], history["loss"], marker="o", markersize=3)
  axes.set_xlabel("training step")
  axes.set_ylabel("feature loss (mean of each epoch)")
  axes.set_yscale("log")
  axes.grid(True, alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  pyplot.close(figure)


class GeneralDistillRun:
  """General distillation with `config` (module docstring). Construction validates the config and loads the
  teacher; `run()` trains and writes the outputs."""

  def __init__(self, config: GeneralDistillConfig, strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config.validate()
    self.strategy = strategy or tf.distribute.get_strategy()
    self.output_dir = worker_output_dir(config.output_dir)
    self.files = corpus_files(config.corpus)
    check_readable(self.files, config.corpus_format)
    self.teacher = load_teacher(config)
    teacher_config = self.teacher.bert_config
    self.matches = parse_matches(config.intermediate_matches, config.student.num_hidden_layers,
                                 int(teacher_config["num_hidden_layers"]), config.layer_map)
    outputs = teacher_outputs_needed(0.0, self.matches)
    if isinstance(self.teacher, SavedModelTeacher):
      self.teacher.require(outputs)
    self.teacher.check_outputs(outputs)
    limit = int(teacher_config["max_position_embeddings"])
    if config.max_seq_length > limit:
      raise ValueError(f"max_seq_length={config.max_seq_length} is beyond the teacher's {limit} position "
                       f"embeddings; use --max_seq_length<={limit}")
    self.tokenizer = WordPieceTokenizer(self.teacher.vocab_file, config.do_lower_case)

  def build_model(self) -> Distiller:
    """The student (the teacher's config with the student's shape, a pooled head that no loss reads, so frozen) in
    a `Distiller` with alpha 0 and the matches."""
    teacher_config = {**self.teacher.bert_config, "head": "pooled", "num_labels": 2}
    with self.strategy.scope():
      student = build_bert_student(teacher_config, self.config.student,
                                   self.teacher.variables if self.config.student.init_from_layers else None)
      student.pooler.trainable = False
      student.classifier.trainable = False
      return Distiller(student, self.teacher, alpha=0.0, matches=self.matches, labelled=False)

  def run(self, callbacks: Sequence[keras.callbacks.Callback] = ()) -> Dict:
    """Trains (resuming when `output_dir/resume` has a checkpoint) and writes the outputs; returns the summary
    written to `output_dir/history.json`. `callbacks` are added to Keras's `fit`."""
    config = self.config
    refuse_other_settings(os.path.join(self.output_dir, "config.json"), os.path.join(self.output_dir, "resume"),
                          {"general_distill": config})
    save_json(os.path.join(self.output_dir, "config.json"), general_distill=config)
    make_deterministic(config.seed)
    distiller = self.build_model()
    total = config.num_train_steps
    with self.strategy.scope():
      optimizer = create_optimizer(config.learning_rate, total, config.warmup_proportion, config.weight_decay)
      distiller.compile(optimizer=optimizer)
      optimizer.build(distiller.trainable_variables)
    state = RunState(os.path.join(self.output_dir, "resume"), distiller, optimizer, save_every_steps=_NEVER)
    epochs, steps = total // config.save_every_steps, config.save_every_steps
    if state.restore():
      console.info(f"resuming from {state.latest_checkpoint}: step {int(state.epoch) * steps} of {total}")
    first = int(state.epoch)
    corpus = WindowCorpus(self.files, config.corpus_format, self.tokenizer, config.max_seq_length, seed=config.seed,
                          shuffle_buffer=config.shuffle_buffer)
    console.phase(f"general distillation: {len(self.matches)} matches from {self.teacher}, {total} steps "
                  f"-> {self.output_dir}")
    history = LossHistory(os.path.join(self.output_dir, "history.json"), steps)
    start = time.perf_counter()
    if first < epochs:
      with _corpus_errors():
        distiller.fit(corpus.dataset(config.train_batch_size, skip_batches=first * steps),
                      initial_epoch=first, epochs=epochs, steps_per_epoch=steps,
                      callbacks=[RunProgbar(epochs), StopOnNonFiniteLoss(), history, SaveRunState(state),
                                 keras.callbacks.TensorBoard(os.path.join(self.output_dir, "logs"),
                                                             update_freq=min(50, steps)), *callbacks],
                      verbose=console.keras_verbose())
    seconds = time.perf_counter() - start
    done = (epochs - first) * steps
    tokens_per_second = done * config.train_batch_size * config.max_seq_length / seconds if done else None
    summary = {**history.read(), "seconds_this_call": round(seconds, 3), "tokens_per_second": tokens_per_second}
    history.write(summary)
    if is_chief():
      student_dir = os.path.join(self.output_dir, STUDENT_DIR)
      save_pretrained(distiller.student, student_dir, self.tokenizer.vocab_file, config.do_lower_case)
      if summary["step"]:
        plot_loss(summary, os.path.join(self.output_dir, "loss.png"))
      speed = f" ({tokens_per_second:.0f} tokens/s)" if tokens_per_second else ""
      console.info(f"student written to {student_dir}{speed}")
    return summary


@contextlib.contextmanager
def _corpus_errors():
  """A CorpusError raised in the tf.data generator reaches `fit` as an InvalidArgumentError with TensorFlow's
  traceback; it is raised again as the one CorpusError line (run_main prints it)."""
  try:
    yield
  except tf.errors.InvalidArgumentError as e:
    found = re.search(r"CorpusError: (.*)", e.message)
    if found is None:
      raise
    raise CorpusError(found.group(1)) from None


class LossHistory(keras.callbacks.Callback):
  """Keeps `path` (history.json) at {"step": [...], "loss": [...]}: the mean loss of every epoch of `steps` steps,
  written at each epoch end, so a resumed run's file holds the epochs before the kill too (an epoch redone after a
  resume replaces its entry)."""

  def __init__(self, path: str, steps: int):
    super().__init__()
    self.path = path
    self.steps = steps

  def read(self) -> Dict:
    if not os.path.isfile(self.path):
      return {"step": [], "loss": []}
    with open(self.path, encoding="utf-8") as f:
      return json.load(f)

  def write(self, values: Dict) -> None:
    with open(self.path, "w", encoding="utf-8") as f:
      json.dump(values, f, indent=2)

  def on_epoch_end(self, epoch, logs=None):
    values = self.read()
    pairs = dict(zip(values["step"], values["loss"]))
    pairs[(epoch + 1) * self.steps] = float(logs["loss"])
    steps = sorted(pairs)
    self.write({**values, "step": steps, "loss": [pairs[s] for s in steps]})

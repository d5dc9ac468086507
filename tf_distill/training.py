"""Shared pieces of a training run: data loading, the Keras fit with its callbacks, and evaluation."""

import json
import math
import os
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill import console, quantization_aware
from tf_distill.callbacks import KeepBestStudent, RecordBest, RunProgbar, StopOnNonFiniteLoss
from tf_distill.checkpointing import RunState, SaveRunState
from tf_distill.configs import DataConfig, TrainConfig
from tf_distill.data.pipeline import make_dataset
from tf_distill.data.unlabeled import epoch_rows
from tf_distill.distiller import Distiller
from tf_distill.optimization import create_optimizer
from tf_distill.run_dir import RunDir
from tf_distill.tasks import TASK_TYPES, TaskData, TaskType, task_type_of
from tf_distill.tasks.classification import accuracy  # noqa: F401  (tf_distill.training.accuracy, as before)

Features = Dict[str, np.ndarray]


def load_data(config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
              max_train_examples: Optional[int] = None) -> TaskData:
  """Reads and encodes `splits` of the configured task, as its task type does (`tf_distill.tasks`); optionally keeps
  the first N training rows."""
  return task_type_of(config.task_name).load_data(config, splits, max_train_examples=max_train_examples)


def length_buckets(max_seq_length: int) -> Tuple[int, ...]:
  """Token-count boundaries for length-bucketed training batches: 1/4, 3/8, 1/2 and 3/4 of max_seq_length."""
  return tuple(sorted({b for b in (max_seq_length // 4, 3 * max_seq_length // 8, max_seq_length // 2,
                                   3 * max_seq_length // 4) if b >= 1}))


def epoch_seed(seed: int, epoch: int) -> int:
  """The shuffle seed of epoch `epoch` (0-based): a fixed function of the run's seed, so a resumed run replays it."""
  return seed * 1_000_003 + epoch


def epoch_batches(features: Features, batch_size: int) -> int:
  """The exact number of length-bucketed batches in an epoch: each bucket ends with at most one partial batch."""
  lengths = features["input_mask"].sum(axis=1)
  bucket = np.searchsorted(length_buckets(features["input_ids"].shape[1]), lengths, side="right")
  return int(sum(math.ceil(count / batch_size) for count in np.bincount(bucket) if count))


def epoch_dataset(features: Features, config: TrainConfig, epoch: int, skip_batches: int = 0,
                  unlabeled_per_epoch: Optional[int] = None,
                  row_epochs: Optional[np.ndarray] = None) -> tf.data.Dataset:
  """Training batches of one epoch, length-bucketed, in the order `epoch_seed(config.seed, epoch)` gives; the first
  `skip_batches` batches (already trained on before a resume) are left out. Its cardinality is known, so Keras'
  progress bar shows the epoch's total. With unlabeled rows (label -1), the epoch has all labelled rows and
  `unlabeled_per_epoch` unlabeled ones drawn with the same seed, and with `row_epochs` only this epoch's
  per-epoch rows (`tf_distill.data.unlabeled.epoch_rows`)."""
  if unlabeled_per_epoch is not None or row_epochs is not None:
    rows = epoch_rows(features["label_ids"], unlabeled_per_epoch, epoch_seed(config.seed, epoch), row_epochs, epoch)
    features = {key: value[rows] for key, value in features.items()}
  buckets = length_buckets(features["input_ids"].shape[1])
  dataset = make_dataset(features, config.train_batch_size, training=True, seed=epoch_seed(config.seed, epoch),
                         length_buckets=buckets, reshuffle_each_iteration=False)
  dataset = dataset.skip(skip_batches) if skip_batches else dataset
  remaining = epoch_batches(features, config.train_batch_size) - skip_batches
  return dataset.apply(tf.data.experimental.assert_cardinality(remaining))


def steps_per_epoch(num_train: int, max_seq_length: int, batch_size: int) -> int:
  """Upper bound of the batches in an epoch: bucketing leaves at most one partial batch per bucket."""
  return math.ceil(num_train / batch_size) + len(length_buckets(max_seq_length))


def total_train_steps(data: TaskData, epochs: int, batch_size: int) -> int:
  """Upper bound of the training batches over `epochs` epochs (the LR schedule's length), epoch by epoch."""
  max_seq_length = data.features["train"]["input_ids"].shape[1]
  return sum(steps_per_epoch(data.train_examples_per_epoch(epoch), max_seq_length, batch_size)
             for epoch in range(epochs))


def fit(distiller: Distiller, data: TaskData, config: TrainConfig, run_dir: RunDir,
        callbacks: Sequence[keras.callbacks.Callback] = (), verbose: Optional[int] = None,
        first_selected_epoch: int = 0, task: Optional[TaskType] = None) -> Dict:
  """Trains with per-epoch dev evaluation, TensorBoard logs, epoch checkpoints and the best student kept.

  `task` (default classification) says which dev metric picks the best student (`TaskType.monitor`: accuracy, a
  tagger's entity F1) and adds the callbacks that compute it.

  The run is resumable: `run_dir.resume_dir` holds a checkpoint of the model, optimizer, data position and best
  dev accuracy, written every `config.save_every_steps` batches and at each epoch end; calling `fit` again with the
  same arguments after a crash or kill continues from it and ends with the weights an uninterrupted run would have.
  The best student's weights (by the dev metric, among the epochs from the 0-based `first_selected_epoch` on) are
  restored into `distiller.student` before returning.
  `verbose` is Keras's; by default a progress bar on a terminal and one line per epoch otherwise.
  Returns a summary: best epoch, best dev metric (`best_dev_accuracy`, `best_dev_f1`), the per-epoch history of this call and each epoch's wall-clock
  seconds (training and dev evaluation; the only entry that changes with machine load).
  """
  run_dir = RunDir(run_dir)
  task = task or TASK_TYPES.get("classification")
  student = distiller.student
  word_embeddings = getattr(getattr(student, "embeddings", None), "word_embeddings", None)
  word_embeddings = word_embeddings or getattr(student, "word_embeddings", None)
  if word_embeddings is not None:
    word_embeddings.trainable = not config.freeze_word_embeddings
  epochs = int(config.num_train_epochs)
  total_steps = total_train_steps(data, epochs, config.train_batch_size)
  with distiller.distribute_strategy.scope():
    optimizer = create_optimizer(config.learning_rate, total_steps, config.warmup_proportion, config.weight_decay,
                                 config.embedding_optimizer)
    distiller.compile(optimizer=optimizer)
    optimizer.build(distiller.trainable_variables)
  state = RunState(run_dir.resume_dir, distiller, optimizer, config.save_every_steps)
  if state.restore():
    print(f"resuming from {state.latest_checkpoint}: epoch {int(state.epoch) + 1}, "
          f"{int(state.step_in_epoch)} batches done")
  dev = make_dataset(data.features["dev"], config.eval_batch_size, training=False)
  # A task type that scores dev itself (a tagger's entity F1, QA's SQuAD F1) predicts dev once per epoch; Keras'
  # evaluation (val_loss, which also queries the teacher on every dev batch) is skipped for it.
  keep_best = KeepBestStudent(run_dir.best_weights, monitor=task.monitor, best=float(state.best_dev),
                              best_epoch=int(state.best_epoch) or None, first_epoch=first_selected_epoch)
  dev_callbacks = task.dev_callbacks(data, config.eval_batch_size)
  history, epoch_seconds = {}, []
  for epoch in range(int(state.epoch), epochs):
    done = int(state.step_in_epoch)
    epoch_callbacks = [
        *dev_callbacks,
        RunProgbar(epochs),
        StopOnNonFiniteLoss(first_step=done),
        keep_best,
        RecordBest(state, keep_best),
        SaveRunState(state, first_step=done),
        keras.callbacks.TensorBoard(log_dir=run_dir.logs_dir, update_freq=50),
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir.checkpoints_dir, "epoch-{epoch:02d}"),
                                        save_weights_only=True),
        *callbacks,
    ]
    start = time.perf_counter()
    result = distiller.fit(epoch_dataset(data.features["train"], config, epoch, skip_batches=done,
                                         unlabeled_per_epoch=data.unlabeled_per_epoch,
                                         row_epochs=data.row_epochs),
                           validation_data=None if dev_callbacks else dev, initial_epoch=epoch, epochs=epoch + 1,
                           callbacks=epoch_callbacks,
                           verbose=console.keras_verbose() if verbose is None else verbose)
    epoch_seconds.append(round(time.perf_counter() - start, 3))
    for key, values in result.history.items():
      history.setdefault(key, []).extend(float(x) for x in values)
  if not run_dir.has_best_weights():
    raise FileNotFoundError(f"{run_dir.path} has no best student weights; the run ended before an epoch finished")
  student.load_weights(run_dir.best_weights)
  return {"best_epoch": keep_best.best_epoch, f"best_dev_{task.metric}": keep_best.best, "history": history,
          "epoch_seconds": epoch_seconds}


def train_and_evaluate(distiller: Distiller, data: TaskData, config: TrainConfig, run_dir: RunDir,
                       do_train: bool, do_eval: bool, name: str,
                       callbacks: Sequence[keras.callbacks.Callback] = (), first_selected_epoch: int = 0,
                       task: Optional[TaskType] = None) -> Dict:
  """run_classifier's --do_train / --do_eval: fits (or loads the best weights), scores dev and test by the task
  type's metric (`TaskType.score`, default classification: `dev_accuracy`, `test_accuracy`; tagging: `dev_f1`,
  `dev_precision`, `dev_recall`, `dev_per_type`, ...), writes eval_results.json and prints one line with the dev and
  test metric. A quantisation-aware student (prepared by `tf_distill.quantization_aware`) is scored in float32, as it
  is exported, and with int8 simulated (`dev_accuracy_int8_simulated`, `test_accuracy_int8_simulated`)."""
  run_dir = RunDir(run_dir)
  task = task or TASK_TYPES.get("classification")
  summary = {}
  student = distiller.student
  if do_train:
    summary = fit(distiller, data, config, run_dir, callbacks=callbacks, first_selected_epoch=first_selected_epoch,
                  task=task)
  else:
    student.load_weights(run_dir.best_weights).expect_partial()
  if do_eval:
    regimes = [(True, "_int8_simulated"), (False, "")] if quantization_aware.is_prepared(student) else [(None, "")]
    for simulated, suffix in regimes:
      if simulated is not None:
        quantization_aware.set_simulated(student, simulated)
      logits = {split: predict_logits(student, data.features[split], config.eval_batch_size)
                for split in ("dev", "test")}
      summary.update({f"{key}{suffix}": value for key, value in task.evaluate(logits, data).items()})
    metric, title = task.metric, task.metric_title
    summary["metric"] = metric  # which test_* entry is the task's score
    simulated_line = (f" (int8 simulated: dev {summary[f'dev_{metric}_int8_simulated']:.4f}, test "
                      f"{summary[f'test_{metric}_int8_simulated']:.4f})"
                      if f"test_{metric}_int8_simulated" in summary else "")
    print(f"{name}: dev {title} {summary[f'dev_{metric}']:.4f}, test {title} {summary[f'test_{metric}']:.4f}"
          f"{simulated_line}")
  run_dir.write_eval_results(summary)
  return summary


def predict_logits(model: keras.Model, features: Features, batch_size: int) -> np.ndarray:
  """Student logits float32 [n, labels], or [n, seq, tags] for a tagger, [n, 2, seq] for a span model, for encoded
  features."""
  dataset = make_dataset(features, batch_size, training=False)
  return Distiller(model, alpha=0.0).predict(dataset, verbose=0)


def write_json(path: str, payload: Dict) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f, indent=2, sort_keys=True)

"""Resumable training state: kill a run at any step, rerun the same command, and it continues where it stopped.

A `RunState` checkpoints, every `save_every_steps` steps and at each epoch end, everything a training run depends on:
the distiller (student weights, dropout call counters, projections and any other trackables it owns), the optimizer
(slots and step, hence the learning-rate schedule), the epoch, the number of batches done in that epoch (the data
position: each epoch's order is a fixed function of seed and epoch, see `tf_distill.training.epoch_dataset`), and the
best dev accuracy so far. Checkpoints are written by `tf.train.CheckpointManager`, which writes the new files first and
then atomically replaces the `checkpoint` index, so a kill mid-save leaves the previous checkpoint in force.
A resume continues the same command: `refuse_other_settings` stops a run whose settings differ from the checkpointed
run's (its config.json) before anything is overwritten.
"""

import dataclasses
import json
import os
from typing import Any, Dict

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras


def refuse_other_settings(config_file: str, resume_dir: str, configs: Dict[str, Any]) -> None:
  """Raises ValueError, naming the first differences, when `resume_dir` holds a checkpoint and `config_file` (the
  config.json of that run: {section: fields}) differs from `configs` ({section: config dataclass}) in a field both
  have; fields that only one side has (added by another version of tf_distill) are not compared."""
  if tf.train.latest_checkpoint(resume_dir) is None or not os.path.isfile(config_file):
    return
  with open(config_file, encoding="utf-8") as f:
    recorded = _flat(json.load(f))
  now = _flat(json.loads(json.dumps({name: dataclasses.asdict(config) for name, config in configs.items()})))
  differences = [f"{key}: {recorded[key]!r} then, {now[key]!r} now" for key in sorted(recorded.keys() & now.keys())
                 if recorded[key] != now[key]]
  if differences:
    raise ValueError(f"{os.path.dirname(config_file)} holds a run with other settings ({'; '.join(differences[:3])}"
                     f"{'; ...' if len(differences) > 3 else ''}); a resume continues the same command: rerun it with "
                     f"the run's flags, or pass another --output_dir, or delete {resume_dir} to start over")


def _flat(tree: Dict, prefix: str = "") -> Dict[str, Any]:
  """{"train": {"seed": 1}, ...} -> {"train.seed": 1, ...} (nested dicts too)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


class RunState:
  """The checkpointed position of a training run in `directory` (`<output_dir>/resume`)."""

  def __init__(self, directory: str, model: keras.Model, optimizer: keras.optimizers.Optimizer,
               save_every_steps: int = 100, max_to_keep: int = 2):
    if save_every_steps < 1:
      raise ValueError(f"save_every_steps must be >= 1, got {save_every_steps}")
    self.directory = directory
    self.save_every_steps = save_every_steps
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
    self.best_dev = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_dev")
    self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="best_epoch")
    self._checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch,
                                           step_in_epoch=self.step_in_epoch, best_dev=self.best_dev,
                                           best_epoch=self.best_epoch)
    self._manager = tf.train.CheckpointManager(self._checkpoint, directory, max_to_keep=max_to_keep)

  def restore(self) -> bool:
    """Loads the latest checkpoint if there is one; returns whether it did. Every saved value must match a variable
    of the current run, so a checkpoint from a different model shape is refused with a clear error."""
    path = self._manager.latest_checkpoint
    if path is None:
      return False
    try:
      self._checkpoint.restore(path).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise ValueError(f"cannot resume from {path}: it does not match this run's model or optimizer ({e}). Use a "
                       f"new --output_dir, or delete {self.directory} to start over") from None
    return True

  def save(self) -> str:
    return self._manager.save()

  @property
  def latest_checkpoint(self):
    return self._manager.latest_checkpoint


class SaveRunState(keras.callbacks.Callback):
  """Advances `RunState`'s data position after each batch, saves every `save_every_steps` batches and at epoch end.

  `first_step` is the number of batches of this epoch that were done before this `fit` call (after a resume).
  """

  def __init__(self, state: RunState, first_step: int = 0):
    super().__init__()
    self.state = state
    self.first_step = first_step

  def on_train_batch_end(self, batch, logs=None):
    done = self.first_step + batch + 1
    self.state.step_in_epoch.assign(done)
    if done % self.state.save_every_steps == 0:
      self.state.save()

  def on_epoch_end(self, epoch, logs=None):
    self.state.epoch.assign(epoch + 1)
    self.state.step_in_epoch.assign(0)
    self.state.save()

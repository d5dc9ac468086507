"""Keras callbacks for training runs: stop on a non-finite loss, keep the best student."""

import math
import os

import tf_distill  # noqa: F401
import tf_keras as keras


class NonFiniteLossError(FloatingPointError):
  """A training loss became NaN or Inf."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
  """Raises `NonFiniteLossError` naming the step and the loss term as soon as one is NaN or Inf.

  The weights saved by `KeepBestStudent` and the epoch checkpoints are left as they were.
  """

  TERMS = ("loss", "hard_loss", "kd_loss")

  def __init__(self):
    super().__init__()
    self._epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    for term in self.TERMS:
      value = (logs or {}).get(term)
      if value is not None and not math.isfinite(float(value)):
        raise NonFiniteLossError(
            f"{term} became {value} at epoch {self._epoch + 1}, step {batch + 1}; training stopped and the last "
            "good checkpoint is kept. Lower --learning_rate, check the data for empty or corrupt rows, or raise "
            "--temperature if the teacher's logits are extreme")


class KeepBestStudent(keras.callbacks.Callback):
  """Saves `model.student`'s weights to `path` whenever the monitored dev metric improves."""

  def __init__(self, path: str, monitor: str = "val_accuracy"):
    super().__init__()
    self.path = path
    self.monitor = monitor
    self.best = -math.inf
    self.best_epoch = None

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      raise ValueError(f"KeepBestStudent monitors {self.monitor!r} but the logs have {sorted(logs or {})}; "
                     "pass validation data to fit()")
    if value > self.best:
      self.best, self.best_epoch = float(value), epoch + 1
      if os.path.dirname(self.path):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
      self.model.student.save_weights(self.path)

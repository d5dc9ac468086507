"""Keras callbacks for training runs: stop on a non-finite loss, score dev by a task's metric, keep the best student,
count epochs over the run."""

import math
import os

import tf_distill  # noqa: F401
import tf_keras as keras


class NonFiniteLossError(FloatingPointError):
  """A training loss became NaN or Inf."""


class RunProgbar(keras.callbacks.ProgbarLogger):
  """Keras's progress bar (or line per epoch), its `Epoch k/N` counting the run's N epochs: `training.fit` calls
  Keras `fit` once per epoch, so on its own Keras prints `Epoch k/k`."""

  def __init__(self, epochs: int):
    super().__init__(count_mode="steps")
    self._run_epochs = epochs

  def set_params(self, params):
    super().set_params(params)
    self.epochs = self._run_epochs


class StopOnNonFiniteLoss(keras.callbacks.Callback):
  """Raises `NonFiniteLossError` naming the step and the loss term as soon as one is NaN or Inf.

  The weights saved by `KeepBestStudent` and the epoch checkpoints are left as they were.
  """

  TERMS = ("loss", "hard_loss", "kd_loss")

  def __init__(self, first_step: int = 0):
    super().__init__()
    self._epoch = 0
    self._first_step = first_step  # batches of the epoch done before this fit call (after a resume)

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    for term in self.TERMS:
      value = (logs or {}).get(term)
      if value is not None and not math.isfinite(float(value)):
        raise NonFiniteLossError(
            f"{term} became {value} at epoch {self._epoch + 1}, step {self._first_step + batch + 1}; training "
            "stopped and the last good checkpoint is kept. Lower --learning_rate, check the data for empty or "
            "corrupt rows, or raise --temperature if the teacher's logits are extreme")


class DevScore(keras.callbacks.Callback):
  """Puts `name` (e.g. "val_f1") into each epoch's logs: `score_fn` of the model's dev predictions, for a metric that
  Keras' evaluation cannot compute batch by batch (entity F1). Must come before the callbacks that read it
  (`KeepBestStudent`, the progress bar).

  Args:
    name: the logs key.
    score_fn: predictions (float32 [n, ...], in the order of `features`) -> float.
    features: the dev features (`tf_distill.data.pipeline.make_dataset` columns).
    batch_size: the prediction batch size.
  """

  def __init__(self, name: str, score_fn, features, batch_size: int):
    super().__init__()
    self.name, self.score_fn, self.features, self.batch_size = name, score_fn, features, batch_size

  def on_epoch_end(self, epoch, logs=None):
    from tf_distill.data.pipeline import make_dataset  # pylint: disable=import-outside-toplevel
    predictions = self.model.predict(make_dataset(self.features, self.batch_size, training=False), verbose=0)
    if logs is not None:
      logs[self.name] = float(self.score_fn(predictions))


class KeepBestStudent(keras.callbacks.Callback):
  """Saves `model.student`'s weights to `path` whenever the monitored dev metric improves, from the 0-based epoch
  `first_epoch` on (a quantisation-aware run keeps a student from its qat stage)."""

  def __init__(self, path: str, monitor: str = "val_accuracy", best: float = -math.inf, best_epoch=None,
               first_epoch: int = 0):
    super().__init__()
    self.path = path
    self.monitor = monitor
    self.best = best  # a resumed run passes the best value it had reached
    self.best_epoch = best_epoch
    self.first_epoch = first_epoch

  def on_epoch_end(self, epoch, logs=None):
    if epoch < self.first_epoch:
      return
    value = (logs or {}).get(self.monitor)
    if value is None:
      raise ValueError(f"KeepBestStudent monitors {self.monitor!r} but the logs have {sorted(logs or {})}; "
                     "pass validation data to fit()")
    if value > self.best:
      self.best, self.best_epoch = float(value), epoch + 1
      if os.path.dirname(self.path):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
      self.model.student.save_weights(self.path)


class RecordBest(keras.callbacks.Callback):
  """Copies `KeepBestStudent`'s best value and epoch into a `RunState` so a resumed run keeps comparing against it.

  Must come after `KeepBestStudent` and before the callback that saves the state at epoch end."""

  def __init__(self, state, keep_best: KeepBestStudent):
    super().__init__()
    self.state = state
    self.keep_best = keep_best

  def on_epoch_end(self, epoch, logs=None):
    self.state.best_dev.assign(self.keep_best.best)
    self.state.best_epoch.assign(self.keep_best.best_epoch or 0)

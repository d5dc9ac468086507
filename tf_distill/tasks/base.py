"""What a task type supplies (`TaskType`) and what its data becomes (`TaskData`).

A task type is one kind of prediction -- a label per example (`classification`), a tag per word (`tagging`) -- and
owns everything that differs between kinds: reading and encoding a task's splits, the model's head, the metric and
the number that picks the best checkpoint. The run code (`tf_distill.run`, `tf_distill.training`), the `Distiller`
and the losses ask the task type and never test a task's name.
"""

import abc
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tf_keras as keras

from tf_distill.configs import DataConfig
from tf_distill.data.unlabeled import DRAWN, EVERY_EPOCH, row_tags

Features = Dict[str, np.ndarray]


@dataclasses.dataclass
class TaskData:
  """Encoded splits and the label list. Training rows with label -1 carry no label (unlabeled text, augmented
  variants; for per-token labels [n, seq], a row whose every position is -1). `row_epochs` (int32 [n_train],
  `tf_distill.data.unlabeled.row_tags`) says which epochs use each row: EVERY_EPOCH, DRAWN (unlabeled text:
  `unlabeled_per_epoch` of them each epoch, None: all) or one epoch e >= 0 (per-epoch augmentation variants); None:
  label -1 rows are DRAWN, the others EVERY_EPOCH."""
  features: Dict[str, Features]
  labels: List[str]
  unlabeled_per_epoch: Optional[int] = None
  row_epochs: Optional[np.ndarray] = None

  def train_examples_per_epoch(self, epoch: int = 0) -> int:
    tags = row_tags(self.features["train"]["label_ids"], self.row_epochs)
    drawn = int(np.sum(tags == DRAWN))
    per_epoch = drawn if self.unlabeled_per_epoch is None else min(self.unlabeled_per_epoch, drawn)
    return int(np.sum((tags == EVERY_EPOCH) | (tags == epoch))) + per_epoch


def check_task_labels(config: DataConfig, labels: Sequence[str]) -> None:
  """Refuses a `--labels` (config.labels) that differs from the label list the task's data gives."""
  if config.labels is not None and list(config.labels) != list(labels):
    raise ValueError(f"--labels={','.join(config.labels)} differs from the task's labels {list(labels)}")


class TaskType(abc.ABC):
  """One kind of task, registered in `tf_distill.tasks.TASK_TYPES`.

  Attributes:
    task_names: the `--task_name`s of this type.
    head: the `tf_distill.bert.HEADS` entry its BERT models end in ("pooled": logits [batch, labels]; "token":
      logits [batch, seq, labels]).
    metric: the key of its score in `score`'s result and in eval_results.json (`dev_<metric>`, `test_<metric>`);
      the dev value `val_<metric>` (`monitor`) picks the best checkpoint.
    metric_title: how the console names the metric.
    distills: whether `tf_distill.run.DistillRun` takes this type yet (the teacher side always does).
  """

  task_names: Tuple[str, ...] = ()
  head: str = "pooled"
  metric: str = "accuracy"
  metric_title: str = "accuracy"
  distills: bool = False

  @property
  def monitor(self) -> str:
    """The epoch-log key whose dev value picks the best checkpoint (`tf_distill.callbacks.KeepBestStudent`)."""
    return f"val_{self.metric}"

  @abc.abstractmethod
  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    """Reads and encodes `splits` of the configured task; optionally keeps the first N training rows."""

  @abc.abstractmethod
  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    """The metric of predictions `logits` (the model's, for `features` in order) against the features' labels:
    {metric: float, ...}; every entry is written to eval_results.json with the split's prefix."""

  def dev_callbacks(self, dev: Features, labels: Sequence[str], batch_size: int) -> Sequence[keras.callbacks.Callback]:
    """Callbacks that put `monitor` into each epoch's logs when Keras' evaluation does not (it gives
    val_accuracy and val_loss)."""
    del dev, labels, batch_size
    return ()

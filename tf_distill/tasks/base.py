"""What a task type supplies (`TaskType`) and what its data becomes (`TaskData`).

A task type is one kind of prediction -- a label per example (`classification`), a tag per word (`tagging`) -- and
owns everything that differs between kinds: reading and encoding a task's splits and transfer-set text, the model's
head, the metric and the number that picks the best checkpoint, the text signature of its exports and what export
parity compares. The run code (`tf_distill.run`, `tf_distill.training`), the `Distiller`, the losses, the teacher
cache and the exporters ask the task type and never test a task's name.
"""

import abc
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tf_keras as keras

from tf_distill.configs import DataConfig
from tf_distill.data.processors import InputExample
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.data.unlabeled import DRAWN, EVERY_EPOCH, row_tags

Features = Dict[str, np.ndarray]
Texts = Dict[str, List[str]]  # what a text signature takes: {"text": [...]} (and "text_b" for sentence pairs)


@dataclasses.dataclass
class TaskData:
  """Encoded splits and the label list. Training rows with label -1 carry no label (unlabeled text, augmented
  variants; for per-token labels [n, seq], a row whose every position is -1). `row_epochs` (int32 [n_train],
  `tf_distill.data.unlabeled.row_tags`) says which epochs use each row: EVERY_EPOCH, DRAWN (unlabeled text:
  `unlabeled_per_epoch` of them each epoch, None: all) or one epoch e >= 0 (per-epoch augmentation variants); None:
  label -1 rows are DRAWN, the others EVERY_EPOCH. `examples`: per split, what the task type's `evaluate` and dev
  callbacks read besides the (numeric) features, e.g. the questions and contexts that QA spans are decoded into;
  empty for classification and tagging."""
  features: Dict[str, Features]
  labels: List[str]
  unlabeled_per_epoch: Optional[int] = None
  row_epochs: Optional[np.ndarray] = None
  examples: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def train_examples_per_epoch(self, epoch: int = 0) -> int:
    tags = row_tags(self.features["train"]["label_ids"], self.row_epochs)
    drawn = int(np.sum(tags == DRAWN))
    per_epoch = drawn if self.unlabeled_per_epoch is None else min(self.unlabeled_per_epoch, drawn)
    return int(np.sum((tags == EVERY_EPOCH) | (tags == epoch))) + per_epoch


def sample(items: Sequence, num_examples: int, seed: Optional[int] = None) -> List:
  """The first `num_examples` of `items`, or with `seed` a random sample of them in their order
  (`np.random.default_rng(seed)`, without replacement): the examples an export measures or calibrates on."""
  if seed is None or len(items) <= num_examples:
    return list(items[:num_examples])
  chosen = np.random.default_rng(seed).choice(len(items), num_examples, replace=False)
  return [items[i] for i in sorted(chosen)]


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
    unit: what one prediction is, in the console ("examples", "words").
    scored_unit: what one row of `scored` is, in parity lines ("examples", "words", "positions").
    data_flags: the data flags (DataConfig fields) that only this type reads; given with a task of another type,
      they are refused (`tf_distill.tasks.check_data_flags`).
  """

  task_names: Tuple[str, ...] = ()
  head: str = "pooled"
  metric: str = "accuracy"
  metric_title: str = "accuracy"
  unit: str = "examples"
  scored_unit: str = "examples"
  data_flags: Tuple[str, ...] = ()

  @property
  def monitor(self) -> str:
    """The epoch-log key whose dev value picks the best checkpoint (`tf_distill.callbacks.KeepBestStudent`)."""
    return f"val_{self.metric}"

  @abc.abstractmethod
  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    """Reads and encodes `splits` of the configured task; optionally keeps the first N training rows."""

  @abc.abstractmethod
  def training_texts(self, config: DataConfig, max_train_examples: Optional[int] = None) -> List[InputExample]:
    """The (first N) training examples as text, labels left out: what augmentation makes variants of."""

  @abc.abstractmethod
  def encode_unlabeled(self, tokenizer: WordPieceTokenizer, examples: Sequence[InputExample],
                       config: DataConfig) -> Tuple[Features, np.ndarray]:
    """Text without labels (unlabeled text, augmented variants) as training rows that the teacher alone labels:
    input_ids, input_mask, segment_ids and label_ids all -1, in the training split's shapes (`config`'s
    max_seq_length and the type's own data flags); and int [rows], the index in `examples` of each row's example
    (a long sentence, a long QA context, may be several rows)."""

  @abc.abstractmethod
  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    """The metric of predictions `logits` (the model's, for `features` in order) against the features' labels:
    {metric: float, ...}; every entry is written to eval_results.json with the split's prefix."""

  def evaluate(self, logits: Dict[str, np.ndarray], data: TaskData) -> Dict:
    """The eval_results.json entries of the splits' predictions `logits` ({split: the model's logits for
    data.features[split]}, in order): by default `score` of each split, its keys prefixed "<split>_". A task type
    whose test score depends on dev (QA: the null threshold chosen on dev) overrides it."""
    return {f"{split}_{key}": value for split, split_logits in logits.items()
            for key, value in self.score(split_logits, data.features[split], data.labels).items()}

  def dev_callbacks(self, data: TaskData, batch_size: int) -> Sequence[keras.callbacks.Callback]:
    """Callbacks that put `monitor` into each epoch's logs when Keras' evaluation does not (it gives
    val_accuracy and val_loss); `data.features["dev"]` is the dev split. With any, Keras' evaluation is skipped
    (`tf_distill.training.fit`): dev is predicted once per epoch, and the logs have no val_loss."""
    del data, batch_size
    return ()

  # ------------------------------------------------------------------------------- exports (tf_distill.export)

  @abc.abstractmethod
  def export_examples(self, config: DataConfig, split: str, num_examples: int,
                      seed: Optional[int] = None) -> Tuple[Texts, Features]:
    """`num_examples` examples of `split` (the first ones, or a random sample when `seed` is set) as raw text for
    the text signature, and their features: the model inputs plus what `quality` and `scored` read."""

  @abc.abstractmethod
  def quality(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Optional[float]:
    """The figure an export must keep (within `--max_accuracy_drop` points of the Keras student): `metric_title`
    of `logits` on `features` as a fraction; None when the features carry no label."""

  def report_scores(self, logits: np.ndarray, features: Features,
                    labels: Sequence[str]) -> Tuple[Optional[float], Dict[str, float]]:
    """`quality` and the figures the report gives beside it, {column title: fraction} (QA: exact match, from the
    same decoding); by default none."""
    return self.quality(logits, features, labels), {}

  @abc.abstractmethod
  def scored(self, logits: np.ndarray, features: Features) -> np.ndarray:
    """The logits that parity compares, one row per prediction: [n, labels] (a tagger: at its scored words)."""

  def labelled(self, features: Features) -> int:
    """How many predictions of `features` have a label (what an export's figures count, in `unit`s): by default
    the rows of `scored(label_ids)` that are >= 0."""
    return int(np.sum(self.scored(features["label_ids"], features) >= 0))

  def text_inputs(self, metadata: Dict) -> Tuple[str, ...]:
    """The string inputs of the `serving_text` of an export with `metadata`: text (and text_b for sentence
    pairs)."""
    return ("text", "text_b") if metadata.get("text_pairs") else ("text",)

  def sample_inputs(self, texts: Sequence[str], texts_b: Sequence[str], metadata: Dict,
                    tokenizer: WordPieceTokenizer) -> Tuple[Texts, Features]:
    """verify-export's samples for an export with `metadata`: the inputs of its serving_text made of `texts` (and
    `texts_b`, as many), and their Python encoding (`encode_unlabeled`), what `text_parity` compares."""
    pairs = "text_b" in self.text_inputs(metadata)
    examples = [InputExample(f"sample-{i}", text, texts_b[i] if pairs else None) for i, text in enumerate(texts)]
    config = DataConfig(max_seq_length=int(metadata["max_seq_length"]))
    features, _ = self.encode_unlabeled(tokenizer, examples, config)
    return {"text": list(texts), **({"text_b": list(texts_b)} if pairs else {})}, features

  def with_export_settings(self, features: Features, metadata: Dict) -> Features:
    """`features` (from `export_examples`) scored as the export with `metadata` decodes (its data flags): by
    default unchanged; QA takes the export's null threshold and span limits."""
    del metadata
    return features

  def serving_outputs(self, logits) -> Dict:
    """serving_default's outputs besides logits and probabilities, from the logits tensor (none by default;
    question answering: start_logits and end_logits)."""
    del logits
    return {}

  @abc.abstractmethod
  def text_signature(self, serve: Callable, encoder, metadata: Dict):
    """The `serving_text` concrete function of an export (`tf_distill.export.text_signature`): raw text through
    `encoder` (a `TextEncoder`) into `serve` (serving_default's tf.function); `metadata` is the export's. None:
    the task type has no text signature (yet), and the export is written without one."""

  @abc.abstractmethod
  def text_parity(self, outputs: Dict[str, np.ndarray], features: Features,
                  logits: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(reference, candidate) [m, labels] for export parity: `logits`, serving_default's on `features`, against
    the text signature's `outputs` on the same examples' raw text (`export_examples`), where both predict."""

  @abc.abstractmethod
  def signature_outputs(self, num_labels: int) -> Dict[str, Dict[str, Tuple[str, list]]]:
    """The outputs verify-export expects: {"serving_default": {name: (dtype, shape)}, "serving_text": {...}},
    shape entries None where free (batch, sequence, words)."""

"""A teacher-labelled transfer set (Hinton's term) from an augmented set: the student's training data when the
teacher, not the labels, supervises it.

    transfer = build_transfer_set(augmenter, examples, tokenizer, max_seq_length=64, labels=teacher.labels,
                                  teacher=teacher, seed=42, cache_dir="runs/student/teacher_cache")

Rows are the originals (variant 0, their labels kept) and their variants, in `iter_augmented`'s order. Variants get
`label_ids = NO_LABEL` (-1): they carry no label of their own, so only the distillation terms may use them (the
hard-label term must be masked where label_ids < 0). The teacher labels the set once: online, in batches sorted by
length and trimmed to their longest example, or through the teacher cache (`cache_dir`, mode `cache_mode`), whose
key holds a fingerprint of the tokenised rows, so another spec, seed or epoch never reads a stale cache.
"""

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from tf_distill.augment.base import Augmenter
from tf_distill.augment.dataset import AugmentedExample, augment_examples
from tf_distill.data.processors import InputExample
from tf_distill.data.tokenization import FEATURE_KEYS, NO_LABEL, WordPieceTokenizer
from tf_distill.teacher import INDEX_KEY, TeacherSource


@dataclasses.dataclass
class TransferSet:
  """`features`: input_ids/input_mask/segment_ids int32 [n, max_seq_length], label_ids int32 [n] (NO_LABEL for
  variants), example_index int64 [n] (the row number, the teacher cache's join key); `teacher_logits`: float32
  [n, labels], the teacher's raw logits of each row; `rows`: what each row is."""
  rows: List[AugmentedExample]
  features: Dict[str, np.ndarray]
  teacher_logits: np.ndarray


def teacher_logits(teacher: Callable, features: Dict[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
  """The teacher's raw logits of every row, queried online in length-sorted batches trimmed to their longest row."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  lengths = np.maximum(features["input_mask"].sum(axis=1), 1)
  order = np.argsort(lengths, kind="stable")
  out = None
  for begin in range(0, len(order), batch_size):
    rows = order[begin:begin + batch_size]
    width = int(lengths[rows].max())
    batch = {k: tf.constant(features[k][rows, :width], tf.int32) for k in FEATURE_KEYS}
    logits = np.asarray(teacher(batch, outputs=("logits",))["logits"], np.float32)
    if out is None:
      out = np.zeros([len(order), logits.shape[1]], np.float32)
    out[rows] = logits
  return out if out is not None else np.zeros([0, 0], np.float32)


def build_transfer_set(augmenter: Augmenter, examples: Sequence[InputExample], tokenizer: WordPieceTokenizer,
                       max_seq_length: int, labels: Sequence[str], teacher: TeacherSource, seed: int, epoch: int = 0,
                       cache_dir: Optional[str] = None, cache_mode: str = "auto", batch_size: int = 64,
                       log: Callable[[str], None] = print) -> TransferSet:
  """Augments `examples` (seed, epoch), tokenises every row and has `teacher` label it (module docstring).
  With `cache_dir`, the cache is keyed by `teacher`'s files (`teacher_cache.teacher_fingerprint`)."""
  rows = augment_examples(augmenter, examples, seed, epoch, include_original=True)
  features = tokenizer.encode([row.to_input_example(epoch) for row in rows], max_seq_length, labels)
  features["label_ids"] = np.where([row.variant == 0 for row in rows], features["label_ids"], NO_LABEL).astype(
      np.int32)
  features[INDEX_KEY] = np.arange(len(rows), dtype=np.int64)
  if cache_dir is None:
    return TransferSet(rows, features, teacher_logits(teacher, features, batch_size))
  from tf_distill import teacher_cache  # pylint: disable=import-outside-toplevel
  key = teacher_cache.cache_key(teacher, tokenizer.vocab_file, max_seq_length,
                                teacher_cache.features_fingerprint(features))
  cache = teacher_cache.resolve(cache_mode, cache_dir, key, teacher, features, batch_size=batch_size, log=log)
  return TransferSet(rows, features, np.asarray(cache.logits, np.float32))

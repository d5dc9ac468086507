"""Augmented variants as rows of a distillation run's training split (`tf_distill.run.DistillRun.load_data`).

Two modes (`DistillConfig.augmentation_mode`):
- `fixed`: the variants of epoch 0, made once and used in every epoch (row tag EVERY_EPOCH). With --teacher_cache
  the teacher labels them once.
- `per_epoch`: fresh variants for every epoch e, from (seed, e, example) (`tf_distill.augment.dataset`), all made
  and encoded before training starts, so no Python generation runs between training steps; rows of epoch e are
  tagged e and only epoch e trains on them (`tf_distill.data.unlabeled.epoch_rows`). Memory grows with the epochs:
  about epochs x N x examples rows of 3 x max_seq_length int32.

Variants carry label -1 (`NO_LABEL`): the teacher's outputs are their only targets, as for unlabeled text.
"""

from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from tf_distill.augment.base import Augmenter
from tf_distill.augment.dataset import iter_augmented
from tf_distill.configs import AUGMENTATION_MODES
from tf_distill.data.processors import InputExample
from tf_distill.data.unlabeled import EVERY_EPOCH


def variant_rows(augmenter: Augmenter, examples: Sequence[InputExample], encode: Callable, seed: int, mode: str,
                 num_epochs: int) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
  """The encoded variants (originals left out: they are the labelled rows) and their row tags, int32 [rows]:
  EVERY_EPOCH for `fixed`, the epoch for `per_epoch`. Rows are in (epoch, example, variant) order.

  `encode(examples)` gives the rows of text without labels and each row's example
  (`tf_distill.tasks.TaskType.encode_unlabeled`; a tagger's long variant may be several rows)."""
  if mode not in AUGMENTATION_MODES:
    raise ValueError(f"augmentation_mode must be one of {list(AUGMENTATION_MODES)}, got {mode!r}")
  epochs = range(num_epochs) if mode == "per_epoch" else (0,)
  variants, tags = [], []
  for epoch in epochs:
    for variant in iter_augmented(augmenter, examples, seed, epoch, include_original=False):
      variants.append(variant.to_input_example(epoch))
      tags.append(epoch if mode == "per_epoch" else EVERY_EPOCH)
  if not variants:
    raise ValueError(f"augmentation ({augmenter.description}) gave no variant of the {len(examples)} training "
                     "examples (every draw repeated its original); raise n or the rule's probabilities")
  features, example_of_row = encode(variants)
  return features, np.asarray(tags, np.int32)[example_of_row]

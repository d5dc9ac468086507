"""Augmented examples, deterministic per (seed, epoch, example).

Example i of epoch e draws from its own generator, `example_rng(seed, e, i)` (numpy's PCG64 seeded by the
SeedSequence of the three numbers), so its variants depend on nothing else: not on the other examples, their order,
the batch, how many examples were augmented before it, or whether the run was killed and resumed. A fixed
augmented set is epoch 0; fresh variants each epoch use the epoch number.
"""

import dataclasses
from typing import Iterator, List, Optional, Sequence

import numpy as np

from tf_distill.augment.base import Augmenter
from tf_distill.augment.words import split_words
from tf_distill.data.processors import InputExample


@dataclasses.dataclass(frozen=True)
class AugmentedExample:
  """Variant `variant` (0 = the original example) of example `index`; `label` is the original's (the teacher's
  soft labels replace it in distillation)."""
  index: int
  variant: int
  text_a: str
  text_b: Optional[str]
  label: Optional[str]

  def to_input_example(self, epoch: int = 0) -> InputExample:
    return InputExample(guid=f"aug-{epoch}-{self.index}-{self.variant}", text_a=self.text_a, text_b=self.text_b,
                        label=self.label)


def example_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """The generator of example `index` in `epoch`; all three must be integers >= 0."""
  for name, value in (("seed", seed), ("epoch", epoch), ("index", index)):
    if not isinstance(value, (int, np.integer)) or value < 0:
      raise ValueError(f"augmentation {name} must be an integer >= 0, got {value!r}")
  return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch), int(index)])))


def augment_example(augmenter: Augmenter, example: InputExample, index: int, seed: int,
                    epoch: int) -> List[AugmentedExample]:
  """The variants of one example (without the original)."""
  pairs = augmenter.augment(example.text_a, example.text_b, example_rng(seed, epoch, index))
  return [AugmentedExample(index, v + 1, a, b, example.label) for v, (a, b) in enumerate(pairs)]


def iter_augmented(augmenter: Augmenter, examples: Sequence[InputExample], seed: int, epoch: int = 0,
                   include_original: bool = True) -> Iterator[AugmentedExample]:
  """Each example (as variant 0 when `include_original`) followed by its variants, in example order."""
  augmenter.warm([split_words(t) for e in examples for t in (e.text_a, e.text_b) if t is not None])
  for index, example in enumerate(examples):
    if include_original:
      yield AugmentedExample(index, 0, example.text_a, example.text_b, example.label)
    yield from augment_example(augmenter, example, index, seed, epoch)


def augment_examples(augmenter: Augmenter, examples: Sequence[InputExample], seed: int, epoch: int = 0,
                     include_original: bool = True) -> List[AugmentedExample]:
  return list(iter_augmented(augmenter, examples, seed, epoch, include_original))

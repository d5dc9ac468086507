"""What every augmentation rule shares: per text, `prepare` the words once (tags, candidates), then `draw` variants;
`augment` turns one example (a text or a sentence pair) into its distinct variants.

Sentence pairs follow each paper: Tang et al. (`pair_mode = "joint"`) augment both sentences of a pair in every draw;
TinyBERT (`"per_side"`, its data_augmentation.py) augments one side at a time, the other kept as it is: n draws of
the first sentence, then n of the second. Variants equal to the original or to an earlier variant are dropped, so an
example yields at most n (joint) or 2n (per side) variants.
"""

import abc
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.augment.words import join_words, split_words

Pair = Tuple[str, Optional[str]]


class Augmenter(abc.ABC):
  """A rule with its resources; `spec` is its parsed spec (`spec.n` draws per example)."""

  pair_mode = "joint"

  def __init__(self, spec):
    self.spec = spec

  @property
  @abc.abstractmethod
  def description(self) -> str:
    """One line saying what the rule uses (which tagger, which embedding space, which masked LM)."""

  def warm(self, texts: Sequence[Sequence[str]]) -> None:
    """Optional batched work before many texts are augmented (e.g. all their words' neighbours at once)."""
    del texts

  def prepare(self, words: Sequence[str]) -> Any:
    """Per-text work done once for all draws (default: none)."""
    del words
    return None

  @abc.abstractmethod
  def draw(self, words: Sequence[str], context: Any, rng: np.random.Generator) -> List[str]:
    """One random variant of `words`."""

  def augment(self, text_a: str, text_b: Optional[str], rng: np.random.Generator) -> List[Pair]:
    """The distinct variants of one example, in the order drawn; texts are words joined by single spaces."""
    sides = [split_words(text_a)] + ([split_words(text_b)] if text_b is not None else [])
    contexts = [self.prepare(words) for words in sides]
    original = tuple(join_words(words) for words in sides)
    seen, variants = {original}, []

    def keep(candidate):
      if candidate not in seen:
        seen.add(candidate)
        variants.append(candidate)

    if len(sides) == 1 or self.pair_mode == "joint":
      for _ in range(self.spec.n):
        keep(tuple(join_words(self.draw(words, context, rng)) for words, context in zip(sides, contexts)))
    else:
      for side, (words, context) in enumerate(zip(sides, contexts)):
        for _ in range(self.spec.n):
          drawn = list(original)
          drawn[side] = join_words(self.draw(words, context, rng))
          keep(tuple(drawn))
    return [(v[0], v[1] if len(v) > 1 else None) for v in variants]

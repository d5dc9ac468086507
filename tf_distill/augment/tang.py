"""Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks", section 3.3.

For each word w_i draw X_i ~ U[0, 1):
  X_i < p_mask                    w_i becomes [MASK] (the student's unknown word, BERT's mask token)
  p_mask <= X_i < p_mask + p_pos  w_i becomes another word of its part of speech (`pos.PosReplacer`), or, with no
                                  tagger, one of its k nearest embedding neighbours (`pos.NeighbourReplacer`); a word
                                  with no such replacement stays
Then, with probability p_ng, only a random n-gram survives: n ~ U{1..max_ngram} (capped at the length), start
uniform over the n-grams. Masking and replacement look at the original words; n-gram sampling at the result.
"""

from typing import Any, List, Optional, Sequence

import numpy as np

from tf_distill.augment.base import Augmenter
from tf_distill.augment.spec import TangSpec, canonical

MASK_TOKEN = "[MASK]"


class TangAugmenter(Augmenter):
  """Args: spec: the parsed `tang:` spec; replacer: a `PosReplacer` / `NeighbourReplacer`, or None when
  p_pos = 0; mask_token: what a masked word becomes."""

  pair_mode = "joint"

  def __init__(self, spec: TangSpec, replacer=None, mask_token: str = MASK_TOKEN):
    super().__init__(spec.validate())
    if replacer is None and spec.p_pos > 0:
      raise ValueError(f"tang augmentation with p_pos={spec.p_pos} needs a word replacement: a POS tagger "
                       "(pip install 'tf_distill[pos]') or an embedding space (the teacher's, or --embeddings_file)")
    self.replacer = replacer
    self.mask_token = mask_token

  @property
  def description(self) -> str:
    replacement = self.replacer.description if self.replacer is not None else "none (p_pos=0)"
    return f"{canonical(self.spec)}; replacement: {replacement}"

  def warm(self, texts: Sequence[Sequence[str]]) -> None:
    if hasattr(self.replacer, "neighbours"):
      self.replacer.neighbours.precompute(w for words in texts for w in words)

  def prepare(self, words: Sequence[str]) -> Any:
    return self.replacer.prepare(words) if self.replacer is not None else None

  def draw(self, words: Sequence[str], context: Any, rng: np.random.Generator) -> List[str]:
    spec = self.spec
    x = rng.random(len(words))
    out = []
    for i, word in enumerate(words):
      if x[i] < spec.p_mask:
        out.append(self.mask_token)
      elif x[i] < spec.p_mask + spec.p_pos:
        replacement: Optional[str] = self.replacer.replace(words, i, context, rng)
        out.append(word if replacement is None else replacement)
      else:
        out.append(word)
    if out and rng.random() < spec.p_ng:
      n = min(int(rng.integers(1, spec.max_ngram + 1)), len(out))
      start = int(rng.integers(len(out) - n + 1))
      out = out[start:start + n]
    return out

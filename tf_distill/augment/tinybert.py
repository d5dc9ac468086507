"""TinyBERT's augmentation (Jiao et al., 2020, section 3.2 and its data_augmentation.py).

Only alphabetic non-stop-words (`words.is_replaceable`) change. Each gets up to k candidates once per text:
  a word that is a single WordPiece of the masked LM's vocab, when a masked LM is given: its top-k predictions
      with the word masked (`masked_lm.MaskedLmCandidates`; the input is TinyBERT's [CLS] masked [SEP] original [SEP])
  every other word: its k nearest neighbours by cosine similarity in the embedding space (`neighbours.py`)
  a word with no candidate keeps itself as its one candidate.
Each draw then replaces every such word, independently with probability p, by a uniformly chosen candidate.
"""

from typing import Dict, List, Sequence

import numpy as np

from tf_distill.augment.base import Augmenter
from tf_distill.augment.spec import TinyBertSpec, canonical
from tf_distill.augment.words import is_replaceable


class TinyBertAugmenter(Augmenter):
  """Args: spec: the parsed `tinybert:` spec; neighbours: an `EmbeddingNeighbours` (k = spec.k) or None when a masked
  LM covers every word; masked_lm: a `MaskedLmCandidates` or None."""

  pair_mode = "per_side"

  def __init__(self, spec: TinyBertSpec, neighbours=None, masked_lm=None):
    super().__init__(spec.validate())
    if neighbours is None:
      raise ValueError("tinybert augmentation needs an embedding space for multi-piece words (and for all words "
                       "without a masked LM): the teacher's word embeddings (--teacher_model) or --embeddings_file")
    self.neighbours = neighbours
    self.masked_lm = masked_lm

  @property
  def description(self) -> str:
    mlm = f"masked LM {self.masked_lm.model_dir} for single-piece words, " if self.masked_lm else "no masked LM, "
    return f"{canonical(self.spec)}; candidates: {mlm}embedding neighbours ({self.neighbours.description})"

  def warm(self, texts: Sequence[Sequence[str]]) -> None:
    self.neighbours.precompute(w for words in texts for w in words if is_replaceable(w))

  def prepare(self, words: Sequence[str]) -> Dict[int, List[str]]:
    positions = [i for i, word in enumerate(words) if is_replaceable(word)]
    candidates: Dict[int, List[str]] = {}
    if self.masked_lm is not None:
      single = [i for i in positions if len(self.masked_lm.pieces(words[i])) == 1]
      candidates.update(self.masked_lm.candidates(words, single))
    for i in positions:
      if i not in candidates:
        candidates[i] = list(self.neighbours.neighbours(words[i]))
      if not candidates[i]:
        candidates[i] = [words[i]]
    return candidates

  def draw(self, words: Sequence[str], context: Dict[int, List[str]], rng: np.random.Generator) -> List[str]:
    out = list(words)
    for i in sorted(context):
      choice = int(rng.integers(len(context[i])))
      if rng.random() < self.spec.p:
        out[i] = context[i][choice]
    return out


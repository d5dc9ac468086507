"""Builds the augmenter a spec names from the resources it may use, refusing combinations that would be ignored.

    augmenter = build_augmenter(parse_spec("tinybert:p=0.4,k=15"), AugmentResources(teacher_model="export/teacher"))

Embedding space: `embeddings_file` (GloVe format) when given, else the teacher's input word embeddings. Tang's
replacement: a POS tagger when one is installed (`pos_tagger=auto`) or named, else embedding neighbours.
"""

import dataclasses
from typing import Optional, Sequence

from tf_distill.augment import neighbours as neighbours_lib
from tf_distill.augment import pos
from tf_distill.augment.base import Augmenter
from tf_distill.augment.masked_lm import MaskedLmCandidates
from tf_distill.augment.spec import AugmentSpec, TangSpec, TinyBertSpec
from tf_distill.augment.tang import TangAugmenter
from tf_distill.augment.tinybert import TinyBertAugmenter
from tf_distill.augment.words import split_words


@dataclasses.dataclass(frozen=True)
class AugmentResources:
  """What the rules may draw on: `teacher_model` (a tf_distill teacher export, for its word embeddings),
  `embeddings_file` (GloVe-format vectors; replaces the teacher's space), `masked_lm_dir` (HF-format BERT with its MLM
  head, TinyBERT only), `pos_tagger` (auto, spacy, nltk, none; Tang only)."""
  teacher_model: Optional[str] = None
  embeddings_file: Optional[str] = None
  masked_lm_dir: Optional[str] = None
  pos_tagger: str = "auto"

  def validate(self) -> "AugmentResources":
    if self.pos_tagger not in pos.TAGGERS:
      raise ValueError(f"pos_tagger must be one of {list(pos.TAGGERS)}, got {self.pos_tagger!r}")
    return self


def embedding_space(resources: AugmentResources, k: int,
                    teacher_variables=None) -> Optional[neighbours_lib.EmbeddingNeighbours]:
  if resources.embeddings_file:
    return neighbours_lib.from_glove(resources.embeddings_file, k=k)
  if resources.teacher_model:
    return neighbours_lib.from_teacher(resources.teacher_model, k=k, variables=teacher_variables)
  return None


def build_augmenter(spec: AugmentSpec, resources: AugmentResources, corpus: Sequence[str] = (),
                    space: Optional[neighbours_lib.EmbeddingNeighbours] = None,
                    teacher_variables=None) -> Augmenter:
  """`corpus`: the texts whose unigram counts Tang's POS replacement draws from (the training texts). `space`: an
  embedding space already built (e.g. by `neighbours.from_pretrained_dir`), used instead of the resources' one.
  `teacher_variables`: the variables of `resources.teacher_model` already loaded (read only if its space is used)."""
  resources.validate()
  if space is not None and resources.embeddings_file:
    raise ValueError("pass either an embedding space or embeddings_file, not both")
  find_space = (lambda k: space) if space is not None else (lambda k: embedding_space(resources, k, teacher_variables))
  if isinstance(spec, TangSpec):
    if resources.masked_lm_dir:
      raise ValueError("a masked LM (--masked_lm_dir) is used by tinybert augmentation only, not by tang; drop it "
                       "or use --augmentation=tinybert:...")
    replacer = None
    if spec.p_pos > 0:
      tagger = pos.find_tagger(resources.pos_tagger)
      if tagger is not None:
        replacer = pos.PosReplacer(tagger, [split_words(text) for text in corpus])
      else:
        found = find_space(spec.k)
        if found is None:
          raise ValueError("tang augmentation: no POS tagger is installed (pip install 'tf_distill[pos]'), so "
                           "replacement needs an embedding space: pass --teacher_model or --embeddings_file "
                           "(or p_pos=0)")
        reason = "--pos_tagger=none" if resources.pos_tagger == "none" else "no POS tagger installed"
        replacer = pos.NeighbourReplacer(found, reason)
    return TangAugmenter(spec, replacer)
  if isinstance(spec, TinyBertSpec):
    if resources.pos_tagger not in ("auto", "none"):
      raise ValueError(f"--pos_tagger={resources.pos_tagger} is used by tang augmentation only; tinybert uses a "
                       "masked LM and embedding neighbours")
    masked_lm = MaskedLmCandidates(resources.masked_lm_dir, k=spec.k) if resources.masked_lm_dir else None
    return TinyBertAugmenter(spec, find_space(spec.k), masked_lm)
  raise TypeError(f"not an augmentation spec: {spec!r}")

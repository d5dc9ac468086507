"""The augmentation spec: one flag value names a rule and its parameters, e.g.

    tang:n=20,p_mask=0.1,p_pos=0.1,p_ng=0.25     Tang et al. (2019): masking, POS-guided replacement, n-gram sampling
    tinybert:n=20,p=0.4,k=15                     TinyBERT (Jiao et al., 2020): masked-LM / embedding-neighbour swaps

`parse_spec("tang")` gives the paper's defaults; every parameter left out keeps its default. `canonical()` writes
the spec back with every parameter, in a fixed order, so that it can key a cache.
"""

import dataclasses
import math
from typing import Dict, Union

RULES = ("tang", "tinybert")


def _check_probability(obj, *names) -> None:
  for name in names:
    value = getattr(obj, name)
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
      raise ValueError(f"{obj.rule} augmentation: {name} must be a probability in [0, 1], got {value}")


def _check_at_least_one(obj, *names) -> None:
  for name in names:
    value = getattr(obj, name)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"{obj.rule} augmentation: {name} must be an integer >= 1, got {value}")


@dataclasses.dataclass(frozen=True)
class TangSpec:
  """Tang et al., "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks", section 3.3.

  Per word, X ~ U[0, 1): X < p_mask masks it, p_mask <= X < p_mask + p_pos replaces it by another word of the same
  part of speech (or an embedding neighbour, one of the k nearest, when no tagger is installed); then with
  probability p_ng only a random n-gram survives, n uniform in 1..max_ngram. n variants per example, duplicates
  (and copies of the original) dropped.
  """
  n: int = 20
  p_mask: float = 0.1
  p_pos: float = 0.1
  p_ng: float = 0.25
  max_ngram: int = 5
  k: int = 15
  rule: str = dataclasses.field(default="tang", init=False)

  def validate(self) -> "TangSpec":
    _check_at_least_one(self, "n", "max_ngram", "k")
    _check_probability(self, "p_mask", "p_pos", "p_ng")
    if self.p_mask + self.p_pos > 1.0:
      raise ValueError(f"tang augmentation: p_mask + p_pos must be <= 1 (masking and replacement exclude each "
                       f"other), got {self.p_mask} + {self.p_pos}")
    return self


@dataclasses.dataclass(frozen=True)
class TinyBertSpec:
  """TinyBERT (Jiao et al., 2020), appendix / data_augmentation.py: every alphabetic non-stop-word is replaced with
  probability p by one of its k candidates (masked-LM predictions for single-piece words when a masked LM is given,
  else nearest embedding neighbours); n draws per example, duplicates (and copies of the original) dropped."""
  n: int = 20
  p: float = 0.4
  k: int = 15
  rule: str = dataclasses.field(default="tinybert", init=False)

  def validate(self) -> "TinyBertSpec":
    _check_at_least_one(self, "n", "k")
    _check_probability(self, "p")
    return self


AugmentSpec = Union[TangSpec, TinyBertSpec]
_SPECS = {"tang": TangSpec, "tinybert": TinyBertSpec}


def _fields(cls) -> Dict[str, type]:
  return {f.name: f.type for f in dataclasses.fields(cls) if f.init}


def parse_spec(text: str) -> AugmentSpec:
  """Parses `rule[:key=value,...]`; raises ValueError/LookupError naming the bad part and what is allowed."""
  rule, _, params = (text or "").strip().partition(":")
  rule = rule.strip()
  if rule not in _SPECS:
    raise LookupError(f"unknown augmentation rule {rule!r} in {text!r}; known: {sorted(_SPECS)} "
                      "(e.g. tang:n=20,p_mask=0.1,p_pos=0.1,p_ng=0.25 or tinybert:p=0.4,k=15)")
  cls = _SPECS[rule]
  fields = _fields(cls)
  values = {}
  for item in filter(None, (part.strip() for part in params.split(","))):
    key, sep, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
      raise ValueError(f"augmentation spec {text!r}: expected key=value, got {item!r}")
    if key not in fields:
      raise ValueError(f"augmentation spec {text!r}: {rule} has no parameter {key!r}; it has {sorted(fields)}")
    if key in values:
      raise ValueError(f"augmentation spec {text!r}: {key} is given twice")
    kind = int if fields[key] in (int, "int") else float
    try:
      values[key] = kind(value)
    except ValueError:
      raise ValueError(f"augmentation spec {text!r}: {key} must be {'an integer' if kind is int else 'a number'}, "
                       f"got {value!r}") from None
  return cls(**values).validate()


def canonical(spec: AugmentSpec) -> str:
  """The spec with every parameter, in field order: `tang:n=20,p_mask=0.1,...`."""
  return spec.rule + ":" + ",".join(f"{name}={getattr(spec, name)}" for name in _fields(type(spec)))

"""Which student layer learns from which teacher layer, and through which feature losses.

Layers are numbered as in the papers: 1..M for the student's transformer layers, 1..N for the teacher's, and 0 for the
embedding output on either side.

Layer map (`parse_layer_map`): comma-separated tokens whose pairs are united and sorted, e.g. "0:0,uniform".

  uniform   TinyBERT (Jiao et al., 2020): student layer m learns from teacher layer g(m) = m * N / M, m = 1..M. When M
            does not divide N, g(m) is the teacher layer nearest to m * N / M, halves rounded up:
            g(m) = floor(m * N / M + 1/2), computed in integers. g(M) = N always; 4 -> 3 gives 1:1, 2:3, 3:4.
  skip      BERT-PKD's PKD-Skip (Sun et al., 2019): every k-th teacher layer, k = floor(N / M), aligned to the top:
            g(m) = N - (M - m) * k. When M divides N this is m * N / M (12 -> 6: 2, 4, ..., 12; 6 -> 3: 2, 4, 6); 7 -> 3
            gives 3, 5, 7.
  last      BERT-PKD's PKD-Last: the teacher's last M layers, g(m) = N - M + m (12 -> 6: 7, ..., 12).
  S:T       one explicit pair, student layer S from teacher layer T (e.g. "1:2,2:4,3:6"; "0:0" = embeddings).

The paper's PKD sets for 12 -> 6 ({2, 4, ..., 10} and {7, ..., 11}) leave the top layers out because the logits KD
already covers them; `skip` and `last` keep the top pair M <- N, as `uniform` does. Give explicit pairs to drop it. The
named maps need M <= N (a student at most as deep as its teacher).

Matches (`parse_matches`): items separated by ";", each one of

  LOSS[:WEIGHT][,LOSS[:WEIGHT]...]     each loss at every pair of the layer map, e.g. "hidden_mse:1,attention_kl:0.5"
  sS:tT:LOSS[:WEIGHT]                  one explicit match, e.g. "s0:t0:hidden_mse:1.0"
  sA,B:tC,D:LOSS[:WEIGHT]              an explicit match of a two-layer loss (fsp): student layers A, B; teacher C, D

WEIGHT defaults to 1 and must be a finite number > 0. LOSS must be in `FEATURE_LOSSES`. Over the layer map, attention
and relation losses skip pairs that involve layer 0 (the embeddings have no attention), so TinyBERT is the layer map
"0:0,uniform" with the matches "hidden_mse,attention_mse_scores"; a two-layer loss takes consecutive pairs of the
map, starting from 0:0 (the flow between the input and the output of each block, as in FSP):
map 1:2,2:4 gives (s0,1 : t0,2) and (s1,2 : t2,4). An explicit match that cannot apply is an error.
"""

import dataclasses
import math
import re
from typing import Iterable, List, Sequence, Tuple, Union

from tf_distill.losses.features import FEATURE_LOSSES, FeatureLoss

Layer = Union[int, Tuple[int, int]]
LayerPair = Tuple[int, int]

NAMED_MAPS = ("uniform", "skip", "last")


@dataclasses.dataclass(frozen=True)
class Match:
  """One feature-loss term: `weight * loss(teacher layer, student layer)`.

  `student_layer` and `teacher_layer` are ints (0 = embeddings), or (first, second) pairs for two-layer losses (fsp).
  `str(match)` is the explicit grammar, so `parse_matches(format_matches(matches), ...)` gives the matches back.
  """
  student_layer: Layer
  teacher_layer: Layer
  loss: str
  weight: float = 1.0

  def __str__(self) -> str:
    return f"s{_format_layer(self.student_layer)}:t{_format_layer(self.teacher_layer)}:{self.loss}:{self.weight!r}"


def _format_layer(layer: Layer) -> str:
  return f"{layer[0]},{layer[1]}" if isinstance(layer, tuple) else str(layer)


def _check_depths(student_layers: int, teacher_layers: int) -> None:
  for name, value in (("student_layers", student_layers), ("teacher_layers", teacher_layers)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def named_layer_map(name: str, student_layers: int, teacher_layers: int) -> Tuple[LayerPair, ...]:
  """The pairs (student m, teacher g(m)), m = 1..M, of `uniform`, `skip` or `last` (see the module docstring)."""
  _check_depths(student_layers, teacher_layers)
  m_total, n_total = student_layers, teacher_layers
  if name not in NAMED_MAPS:
    raise ValueError(f"unknown layer map {name!r}; use one of {list(NAMED_MAPS)} or 'student:teacher' pairs")
  if m_total > n_total:
    raise ValueError(f"layer map {name!r} needs student_layers <= teacher_layers, got a {m_total}-layer student and a "
                     f"{n_total}-layer teacher; give explicit 'student:teacher' pairs instead")
  if name == "uniform":
    teacher = [(2 * m * n_total + m_total) // (2 * m_total) for m in range(1, m_total + 1)]
  elif name == "skip":
    k = n_total // m_total
    teacher = [n_total - (m_total - m) * k for m in range(1, m_total + 1)]
  else:
    teacher = [n_total - m_total + m for m in range(1, m_total + 1)]
  return tuple(zip(range(1, m_total + 1), teacher))


def _parse_index(text: str, what: str, limit: int, context: str) -> int:
  if not re.fullmatch(r"\d+", text):
    raise ValueError(f"{context}: {what} {text!r} is not a layer number; use 0 (embeddings) to {limit}")
  value = int(text)
  if value > limit:
    raise ValueError(f"{context}: {what} {value} is out of range [0, {limit}] (0 = embeddings, 1..{limit} = "
                     "transformer layers)")
  return value


def parse_layer_map(spec: str, student_layers: int, teacher_layers: int) -> Tuple[LayerPair, ...]:
  """Parses a layer map such as "uniform", "0:0,skip" or "1:2,2:4,3:6" into sorted (student, teacher) pairs.

  Args:
    spec: comma-separated tokens: `uniform`, `skip`, `last` or `S:T` pairs (see the module docstring).
    student_layers: M, the student's number of transformer layers.
    teacher_layers: N, the teacher's.

  Returns:
    Sorted, distinct (student_layer, teacher_layer) pairs; () for an empty spec.

  Raises:
    ValueError: naming the bad token and the valid layer ranges.
  """
  _check_depths(student_layers, teacher_layers)
  pairs: List[LayerPair] = []
  for token in (t.strip() for t in spec.split(",")) if spec.strip() else ():
    if token in NAMED_MAPS:
      new = named_layer_map(token, student_layers, teacher_layers)
    elif ":" in token:
      parts = token.split(":")
      if len(parts) != 2:
        raise ValueError(f"layer map token {token!r} is not a 'student:teacher' pair such as '1:2'")
      context = f"layer map pair {token!r}"
      new = ((_parse_index(parts[0].strip(), "student layer", student_layers, context),
              _parse_index(parts[1].strip(), "teacher layer", teacher_layers, context)),)
    else:
      raise ValueError(f"layer map token {token!r} is not one of {list(NAMED_MAPS)} or a 'student:teacher' pair such "
                       f"as '1:2' (student layers 0..{student_layers}, teacher layers 0..{teacher_layers}, "
                       "0 = embeddings)")
    for pair in new:
      if pair in pairs:
        raise ValueError(f"layer map {spec!r} gives the pair {pair[0]}:{pair[1]} twice")
      pairs.append(pair)
  return tuple(sorted(pairs))


def _parse_weight(text: str, context: str) -> float:
  try:
    weight = float(text)
  except ValueError:
    raise ValueError(f"{context}: weight {text!r} is not a number") from None
  if not math.isfinite(weight) or weight <= 0:
    raise ValueError(f"{context}: weight must be a finite number > 0, got {text}; leave the loss out to disable it")
  return weight


def _lookup(name: str, context: str) -> FeatureLoss:
  if name not in FEATURE_LOSSES:
    raise ValueError(f"{context}: unknown feature loss {name!r}; known: {FEATURE_LOSSES.names()}")
  return FEATURE_LOSSES.get(name)


def _parse_layers(text: str, side: str, limit: int, count: int, loss: str, context: str) -> Layer:
  """'3' or '0,3' after the s/t prefix, as one layer or a (first, second) pair for two-layer losses."""
  parts = [p.strip() for p in text.split(",")]
  what = "student layer" if side == "s" else "teacher layer"
  if len(parts) != count:
    example = f"{side}0,1" if count == 2 else f"{side}1"
    raise ValueError(f"{context}: {loss} takes {count} {what}{'s' if count > 1 else ''}, got '{side}{text}'; write "
                     f"e.g. '{example}'")
  values = tuple(_parse_index(p, what, limit, context) for p in parts)
  return values if count == 2 else values[0]


def _explicit_match(item: str, student_layers: int, teacher_layers: int) -> Match:
  context = f"match {item!r}"
  fields = [f.strip() for f in item.split(":")]
  if len(fields) not in (3, 4) or not fields[0].startswith("s") or not fields[1].startswith("t"):
    raise ValueError(f"{context} is not 'sS:tT:LOSS[:WEIGHT]' (e.g. 's1:t2:hidden_mse:1.0', or 's0,1:t0,2:fsp' for a "
                     "two-layer loss)")
  spec = _lookup(fields[2], context)
  student = _parse_layers(fields[0][1:], "s", student_layers, spec.num_layers, fields[2], context)
  teacher = _parse_layers(fields[1][1:], "t", teacher_layers, spec.num_layers, fields[2], context)
  layers = student + teacher if spec.num_layers == 2 else (student, teacher)
  if not spec.accepts_embeddings and 0 in layers:
    raise ValueError(f"{context}: layer 0 is the embedding output, which has no {spec.outputs[0]}; {fields[2]} needs "
                     "layers >= 1")
  weight = _parse_weight(fields[3], context) if len(fields) == 4 else 1.0
  return Match(student, teacher, fields[2], weight)


def _matches_over_map(item: str, layer_map: Sequence[LayerPair]) -> List[Match]:
  matches = []
  for entry in (e.strip() for e in item.split(",")):
    context = f"match {entry!r}" if entry == item else f"match {entry!r} in {item!r}"
    fields = [f.strip() for f in entry.split(":")]
    if not entry or len(fields) > 2:
      raise ValueError(f"{context} is not 'LOSS[:WEIGHT]' (e.g. 'hidden_mse:1.0'); explicit matches look like "
                       "'s1:t2:hidden_mse:1.0' and are separated by ';'")
    spec = _lookup(fields[0], context)
    weight = _parse_weight(fields[1], context) if len(fields) == 2 else 1.0
    if not layer_map:
      raise ValueError(f"{context} applies over the layer map, but the layer map is empty; give a layer map or "
                       "explicit matches such as 's1:t2:hidden_mse:1.0'")
    if spec.num_layers == 2:
      chain = list(layer_map) if layer_map[0] == (0, 0) else [(0, 0)] + list(layer_map)
      for (s1, t1), (s2, t2) in zip(chain, chain[1:]):
        matches.append(Match((s1, s2), (t1, t2), fields[0], weight))
    else:
      for s, t in layer_map:
        if spec.accepts_embeddings or (s > 0 and t > 0):
          matches.append(Match(s, t, fields[0], weight))
  return matches


def parse_matches(spec: str, student_layers: int, teacher_layers: int,
                  layer_map: Union[str, Sequence[LayerPair]] = "uniform") -> Tuple[Match, ...]:
  """Parses feature-loss matches such as "hidden_mse:1,attention_mse_scores:1;s0:t0:hidden_mse:1".

  Args:
    spec: ";"-separated items, each a comma list of LOSS[:WEIGHT] applied over `layer_map`, or one explicit
      sS:tT:LOSS[:WEIGHT] match (see the module docstring).
    student_layers: M, the student's number of transformer layers.
    teacher_layers: N, the teacher's.
    layer_map: a layer-map spec for `parse_layer_map`, or its already parsed pairs.

  Returns:
    The matches in the order given; () for an empty spec.

  Raises:
    ValueError: naming the bad item, for malformed items, unknown losses, layers out of range, layer 0 with an
      attention loss, weights that are not > 0, and a match given twice.
  """
  _check_depths(student_layers, teacher_layers)
  if isinstance(layer_map, str):
    layer_map = parse_layer_map(layer_map, student_layers, teacher_layers)
  matches: List[Match] = []
  for item in (i.strip() for i in spec.split(";")) if spec.strip() else ():
    if not item:
      raise ValueError(f"matches {spec!r} have an empty item between ';'")
    if re.match(r"s\d", item):
      new = [_explicit_match(item, student_layers, teacher_layers)]
    else:
      new = _matches_over_map(item, layer_map)
    for match in new:
      if any((m.student_layer, m.teacher_layer, m.loss) == (match.student_layer, match.teacher_layer, match.loss)
             for m in matches):
        raise ValueError(f"matches {spec!r} give {match.loss} between student layer "
                         f"{_format_layer(match.student_layer)} and teacher layer {_format_layer(match.teacher_layer)} "
                         "twice")
      matches.append(match)
  return tuple(matches)


def format_matches(matches: Iterable[Match]) -> str:
  """The explicit form of `matches`, which `parse_matches` reads back to the same matches."""
  return ";".join(str(m) for m in matches)


def required_layers(matches: Iterable[Match], side: str = "teacher") -> Tuple[int, ...]:
  """Sorted 1-based layers >= 1 that `matches` read on `side` (layer 0, the embedding output, is not a layer)."""
  if side not in ("teacher", "student"):
    raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
  layers = set()
  for match in matches:
    layer = match.teacher_layer if side == "teacher" else match.student_layer
    layers.update(index for index in (layer if isinstance(layer, tuple) else (layer,)) if index > 0)
  return tuple(sorted(layers))


def required_outputs(matches: Iterable[Match], side: str = "teacher") -> Tuple[str, ...]:
  """Sorted model output keys that `matches` read from the teacher (or the student): what to ask the teacher for.

  Layer 0 of a hidden-state loss reads "embeddings"; layers >= 1 read the loss's `outputs`.
  """
  if side not in ("teacher", "student"):
    raise ValueError(f"side must be 'teacher' or 'student', got {side!r}")
  keys = set()
  for match in matches:
    layer = match.teacher_layer if side == "teacher" else match.student_layer
    spec = FEATURE_LOSSES.get(match.loss)
    for index in (layer if isinstance(layer, tuple) else (layer,)):
      keys.update(("embeddings",) if index == 0 else spec.outputs)
  return tuple(sorted(keys))

"""Entity-level precision, recall and F1 of IOB2 tag sequences, with CoNLL-eval (`conlleval`) semantics.

Entities are read from each sentence's tags left to right (`entities`):
  - an entity of type X starts at `B-X`, and at `I-X` after `O`, after a tag of another type or at the sentence
    start (conlleval reads a stray I- as a start; it is not dropped, nor an error);
  - it continues while the next tag is `I-X` of the same type, and ends before anything else (`O`, any `B-`, an
    `I-` of another type) or at the end of the sentence. Sentences never join: a boundary ends every entity.
An entity is (type, start, end), words[start:end]. A predicted entity is correct when an entity of the gold tags has
the same type, start and end (exact match, in the same sentence).

Over the corpus, with C correct, P predicted and G gold entities (zero division gives 0, as conlleval prints):
  precision = C / P,  recall = C / G,  F1 = 2 * precision * recall / (precision + recall)
micro-averaged over all entities; per type, the same over that type's entities, with support G of the type. Types
are the union of the gold and predicted types (a type only predicted has support 0 and recall 0).
These are the numbers of conlleval and of seqeval's default (non-strict) mode, e.g. seqeval's README example:
  gold `[[O O O B-MISC I-MISC I-MISC O] [B-PER I-PER O]]`,
  predicted `[[O O B-MISC I-MISC I-MISC I-MISC O] [B-PER I-PER O]]`
  -> C = 1 (PER), P = G = 2: precision = recall = F1 = 0.5.
"""

import collections
import dataclasses
from typing import Dict, List, Sequence, Tuple

Entity = Tuple[str, int, int]  # (type, start, end): words[start:end]


@dataclasses.dataclass(frozen=True)
class EntityScores:
  """Precision, recall and F1 of one type (or of all, micro-averaged); `support` counts the gold entities."""
  precision: float
  recall: float
  f1: float
  support: int
  predicted: int
  correct: int

  @classmethod
  def from_counts(cls, correct: int, predicted: int, support: int) -> "EntityScores":
    precision = correct / predicted if predicted else 0.0
    recall = correct / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return cls(precision=precision, recall=recall, f1=f1, support=support, predicted=predicted, correct=correct)


@dataclasses.dataclass(frozen=True)
class EntityReport:
  """`micro` over all entities; `per_type` maps each type (sorted) to its scores."""
  micro: EntityScores
  per_type: Dict[str, EntityScores]

  @property
  def f1(self) -> float:
    return self.micro.f1

  def to_dict(self) -> dict:
    """JSON-ready: {"precision", "recall", "f1", "support", "predicted", "correct", "per_type": {type: {...}}}."""
    return {**dataclasses.asdict(self.micro),
            "per_type": {name: dataclasses.asdict(scores) for name, scores in self.per_type.items()}}


def _split(tag: str, sentence: int, position: int) -> Tuple[str, str]:
  if tag == "O":
    return "O", ""
  if len(tag) > 2 and tag[:2] in ("B-", "I-"):
    return tag[0], tag[2:]
  raise ValueError(f"sentence {sentence}, word {position}: tag {tag!r} is not IOB2; tags are 'O', 'B-TYPE' or "
                   "'I-TYPE' (map tag ids to their names first)")


def entities(tags: Sequence[str], sentence: int = 0) -> List[Entity]:
  """The entities of one sentence's IOB2 tags, in order (module docstring); `sentence` only names it in errors."""
  found = []
  start, current = None, None  # The open entity's start and type.
  for position, tag in enumerate(tags):
    prefix, entity_type = _split(tag, sentence, position)
    if current is not None and (prefix != "I" or entity_type != current):
      found.append((current, start, position))
      current = None
    if prefix == "B" or (prefix == "I" and current is None):
      start, current = position, entity_type
  if current is not None:
    found.append((current, start, len(tags)))
  return found


def entity_scores(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> EntityReport:
  """Micro and per-type precision, recall and F1 of predicted tags against gold tags (module docstring).

  Args:
    y_true: gold IOB2 tags, one sequence per sentence.
    y_pred: predicted tags, the same number of sentences and of tags in each.
  """
  if len(y_true) != len(y_pred):
    raise ValueError(f"y_true has {len(y_true)} sentences but y_pred {len(y_pred)}; pass one prediction per sentence")
  gold, predicted, correct = collections.Counter(), collections.Counter(), collections.Counter()
  for index, (true_tags, pred_tags) in enumerate(zip(y_true, y_pred)):
    if len(true_tags) != len(pred_tags):
      raise ValueError(f"sentence {index}: {len(true_tags)} gold tags but {len(pred_tags)} predicted; predict one tag "
                       "per word")
    true_entities, pred_entities = set(entities(true_tags, index)), set(entities(pred_tags, index))
    gold.update(entity_type for entity_type, _, _ in true_entities)
    predicted.update(entity_type for entity_type, _, _ in pred_entities)
    correct.update(entity_type for entity_type, _, _ in true_entities & pred_entities)
  per_type = {name: EntityScores.from_counts(correct[name], predicted[name], gold[name])
              for name in sorted(set(gold) | set(predicted))}
  micro = EntityScores.from_counts(sum(correct.values()), sum(predicted.values()), sum(gold.values()))
  return EntityReport(micro=micro, per_type=per_type)

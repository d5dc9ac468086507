"""Teacher ensembles: several teacher sources served as one (`--teacher_model=a,b,c --teacher_weights=...`).

    teacher = EnsembleTeacher([SavedModelTeacher("export/t1"), SavedModelTeacher("export/t2")],
                              weights=(0.75, 0.25), intermediate_teacher=1)

The combination rule. With member logits z_i: float32 [batch, labels] and weights normalised to w_i = v_i / sum_j v_j
(default equal, as TextBrewer's multi-teacher distiller averages logits):

  logits         z = sum_i w_i * z_i                  the weighted mean of the members' logits
  probabilities  softmax(z)

so the soft targets at any temperature T are the normalised weighted geometric mean of the members' own:

  softmax(z / T)_c = prod_i softmax(z_i / T)_c ^ w_i / sum_c' prod_i softmax(z_i / T)_c' ^ w_i

(each softmax(z_i / T)_c is exp(z_ic / T) / Z_i, and the per-row factors prod_i Z_i^-w_i cancel). A member that
serves only probabilities or log-probabilities (`tf_distill.foreign_teacher`) gives z_i + c_i, its logits up to a
per-example constant c_i; the mean then shifts by sum_i w_i c_i, also a per-example constant, which softmax(z / T)
ignores, so the soft targets stay exact (raw-logit MSE does not: `DistillConfig` refuses kd_loss=mse for those kinds).

Intermediate outputs (embeddings, hidden_states, attention_*) are not averaged: they come from one member,
`intermediate_teacher` (1-based, default 1, the first). That member also gives the ensemble its `bert_config` (the
student's shape and the layer map's teacher layers), `variables` (student initialisation) and `path` (the embedding
space of augmentation). All members must share the label list (in order) and the WordPiece vocab; `fingerprint()`
identifies members, weights and intermediate member for the teacher cache, which then stores the combined outputs.
"""

import hashlib
import json
import math
from typing import Dict, Iterable, Optional, Sequence, Tuple

import tensorflow as tf

from tf_distill.export.serving import file_sha256
from tf_distill.teacher import TeacherError, TeacherSource
from tf_distill.teacher_cache.key import teacher_fingerprint

COMBINED_OUTPUTS = ("logits", "probabilities")


def check_members(num_members: int, weights: Optional[Sequence[float]], intermediate_teacher: int
                  ) -> Tuple[float, ...]:
  """The normalised weights: `weights` (default equal) divided by their sum. ValueError naming the bad value when
  there are fewer than 2 members, the weights are not one positive number per member, or `intermediate_teacher`
  (1-based) names no member."""
  if num_members < 2:
    raise ValueError(f"an ensemble needs at least 2 teachers, got {num_members}; pass one --teacher_model "
                     "without --teacher_weights/--intermediate_teacher for a single teacher")
  if not 1 <= intermediate_teacher <= num_members:
    raise ValueError(f"--intermediate_teacher={intermediate_teacher} names no teacher: --teacher_model lists "
                     f"{num_members}, numbered 1..{num_members}")
  if weights is None:
    return (1.0 / num_members,) * num_members
  if len(weights) != num_members:
    raise ValueError(f"--teacher_weights gives {len(weights)} weights {list(weights)} for {num_members} teachers in "
                     f"--teacher_model; give one weight per teacher, in the same order")
  bad = [w for w in weights if not (math.isfinite(w) and w > 0)]
  if bad:
    raise ValueError(f"--teacher_weights must be finite numbers > 0, got {list(weights)}; drop a teacher rather "
                     "than giving it weight 0")
  total = math.fsum(weights)
  return tuple(w / total for w in weights)


class EnsembleTeacher(TeacherSource):
  """Member teacher sources combined by the rule of the module docstring."""

  def __init__(self, members: Sequence[TeacherSource], weights: Optional[Sequence[float]] = None,
               intermediate_teacher: int = 1):
    self.weights = check_members(len(members), weights, intermediate_teacher)
    self.members = tuple(members)
    self.intermediate_teacher = intermediate_teacher
    self.intermediate_member = self.members[intermediate_teacher - 1]
    self.required_outputs = ("logits",)
    self._check_members_agree()

  def _check_members_agree(self) -> None:
    """Every member has the first member's label list (in order) and vocab; TeacherError naming the one that does
    not."""
    first = self.members[0]
    vocab = file_sha256(first.vocab_file)
    for number, member in enumerate(self.members[1:], start=2):
      if list(member.labels) != list(first.labels):
        raise TeacherError(f"teacher {number} of --teacher_model ({member}) has labels {list(member.labels)} but "
                           f"teacher 1 ({first}) has {list(first.labels)}; an ensemble's teachers must be trained "
                           "on the same label list in the same order")
      if file_sha256(member.vocab_file) != vocab:
        raise TeacherError(f"teacher {number} of --teacher_model ({member}) was trained with the vocab "
                           f"{member.vocab_file}, which differs from teacher 1's {first.vocab_file}; an ensemble's "
                           "teachers must share one WordPiece vocab (the inputs are tokenised once)")

  def __str__(self) -> str:
    members = ", ".join(f"{w:.4g} x {m}" for w, m in zip(self.weights, self.members))
    return (f"ensemble of {len(self.members)} teachers ({members}; intermediates from teacher "
            f"{self.intermediate_teacher})")

  @property
  def labels(self) -> Sequence[str]:
    return list(self.members[0].labels)

  @property
  def bert_config(self) -> Dict:
    return self.intermediate_member.bert_config

  @property
  def available_outputs(self) -> Tuple[str, ...]:
    combined = COMBINED_OUTPUTS if all("logits" in m.available_outputs for m in self.members) else ()
    own = (k for k in self.intermediate_member.available_outputs if k not in COMBINED_OUTPUTS)
    return tuple(sorted({*combined, *own}))

  @property
  def vocab_file(self) -> str:
    return self.intermediate_member.vocab_file

  @property
  def path(self) -> str:
    """The intermediate member's SavedModel: its word embeddings are the ensemble's (augmentation's neighbours)."""
    return self.intermediate_member.path

  @property
  def variables(self):
    return self.intermediate_member.variables

  def fingerprint(self) -> str:
    """sha256 over every member's SavedModel files, the weights and the intermediate member (the cache key)."""
    payload = {"members": [teacher_fingerprint(m) for m in self.members], "weights": [repr(w) for w in self.weights],
               "intermediate_teacher": self.intermediate_teacher}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

  def _split(self, outputs: Iterable[str]) -> Tuple[bool, Tuple[str, ...]]:
    """(whether `outputs` need the combined logits, the outputs the intermediate member serves alone)."""
    outputs = tuple(outputs)
    return any(k in COMBINED_OUTPUTS for k in outputs), tuple(k for k in outputs if k not in COMBINED_OUTPUTS)

  def check_outputs(self, outputs: Iterable[str]) -> None:
    combined, own = self._split(outputs)
    if combined:
      for member in self.members:
        member.check_outputs(("logits",))
    if own:
      self.intermediate_member.check_outputs(own)

  def require(self, required_outputs: Iterable[str]) -> "EnsembleTeacher":
    self.check_outputs(required_outputs)
    self.required_outputs = tuple(required_outputs)
    return self

  def check_compatible(self, labels: Sequence[str], vocab_file: str, max_seq_length: int) -> None:
    for member in self.members:
      member.check_compatible(labels, vocab_file, max_seq_length)

  def __call__(self, features: Dict[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict:
    outputs = tuple(outputs or self.required_outputs)
    combined, own = self._split(outputs)
    result = {}
    if own:  # the intermediate member is queried once, for its logits too when they are combined
      result = dict(self.intermediate_member(features, outputs=own + (("logits",) if combined else ())))
    if combined:
      logits = []
      for member in self.members:
        if member is self.intermediate_member and own:
          logits.append(result.pop("logits"))
        else:
          logits.append(member(features, outputs=("logits",))["logits"])
      z = tf.add_n([w * tf.cast(z_i, tf.float32) for w, z_i in zip(self.weights, logits)])
      result["logits"] = tf.stop_gradient(z)
      result["probabilities"] = tf.nn.softmax(result["logits"])
    return {k: result[k] for k in outputs}

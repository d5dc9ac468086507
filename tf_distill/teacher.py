"""The teacher: a tf_distill SavedModel queried online for soft labels and intermediates.

Loading needs only TensorFlow (no transformers, no tf_distill model code). Restored SavedModel variables come back
with `trainable=True`, so this class is a plain Python object (Keras does not track it) and every output goes through
`tf.stop_gradient`: no gradient or optimizer update can reach the teacher, and checkpoints of the student never
contain it.
"""

import os
from typing import Dict, Iterable, Optional, Sequence

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.export.serving import SERVING_OUTPUTS, file_sha256, latest_version_dir, read_metadata


class TeacherError(ValueError):
  """The teacher SavedModel cannot serve this distillation run."""


class SavedModelTeacher:
  """Wraps the `serving_default` and `distill` signatures of a teacher export."""

  def __init__(self, path: str, required_outputs: Iterable[str] = ("logits",)):
    if not path:
      raise TeacherError("no teacher given: pass --teacher_model=DIR, a SavedModel written by "
                         "scripts/export_teacher.sh (e.g. export/teacher)")
    self.path = latest_version_dir(path)
    if not os.path.isdir(self.path):
      raise TeacherError(f"teacher model {path!r} does not exist; pass the directory written by "
                         "scripts/export_teacher.sh (export/teacher or export/teacher/<version>)")
    if not os.path.isfile(os.path.join(self.path, "saved_model.pb")):
      raise TeacherError(f"teacher model {path!r} is not a SavedModel (no saved_model.pb in {self.path}; found "
                         f"{sorted(os.listdir(self.path))[:10]}); pass a version directory written by "
                         "scripts/export_teacher.sh")
    try:
      self.metadata = read_metadata(self.path)
    except FileNotFoundError as e:
      raise TeacherError(str(e)) from e
    self._loaded = tf.saved_model.load(self.path)
    self.require(required_outputs)

  def require(self, required_outputs: Iterable[str]) -> "SavedModelTeacher":
    """Selects the signature that serves `required_outputs` (serving_default for logits alone, else distill)."""
    signatures = self._loaded.signatures
    self.required_outputs = tuple(required_outputs)
    needs_distill = any(k not in SERVING_OUTPUTS for k in self.required_outputs)
    name = "distill" if needs_distill else "serving_default"
    if name not in signatures:
      raise TeacherError(f"teacher {self.path} has no {name!r} signature (it has {sorted(signatures)}); re-export "
                         "it with scripts/export_teacher.sh, which writes serving_default and distill")
    self._signature = signatures[name]
    available = set(self._signature.structured_outputs)
    missing = [k for k in self.required_outputs if k not in available]
    if missing:
      raise TeacherError(f"teacher signature {name!r} of {self.path} lacks outputs {missing} that the chosen "
                         f"losses need; it has {sorted(available)}. Re-export the teacher with this tf_distill")
    return self

  @property
  def num_labels(self) -> int:
    return int(self.metadata["num_labels"])

  @property
  def labels(self) -> Sequence[str]:
    return list(self.metadata["labels"])

  @property
  def max_seq_length(self) -> int:
    return int(self.metadata["max_seq_length"])

  @property
  def bert_config(self) -> Dict:
    return dict(self.metadata["bert_config"])

  @property
  def variables(self):
    return self._loaded.model.variables

  def check_compatible(self, labels: Sequence[str], vocab_file: str, max_seq_length: int) -> None:
    """Raises TeacherError when the student's data setup differs from what the teacher was trained with."""
    if list(labels) != self.labels:
      raise TeacherError(f"label mismatch: the data has {len(labels)} labels {list(labels)} but the teacher "
                         f"{self.path} was trained on {self.num_labels} labels {self.labels}; use the teacher's "
                         "task and label list (--labels)")
    if file_sha256(vocab_file) != self.metadata["vocab_sha256"]:
      raise TeacherError(f"vocab mismatch: {vocab_file} differs from the vocab the teacher was trained with; use "
                         f"{os.path.join(self.path, 'assets.extra', 'vocab.txt')} as --vocab_file")
    limit = int(self.bert_config["max_position_embeddings"])
    if max_seq_length > limit:
      raise TeacherError(f"max_seq_length={max_seq_length} is beyond the teacher's {limit} position embeddings; "
                         f"use --max_seq_length<={limit}")

  def __call__(self, features: Dict[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict[str, tf.Tensor]:
    """Teacher outputs for a batch, with gradients stopped. `outputs` defaults to `required_outputs`."""
    result = self._signature(input_ids=features["input_ids"], input_mask=features["input_mask"],
                             segment_ids=features["segment_ids"])
    return {k: tf.stop_gradient(result[k]) for k in (outputs or self.required_outputs)}

"""Teachers: the one `TeacherSource` interface, and the tf_distill SavedModel queried online for soft labels and
intermediates.

Every source of teacher outputs (this online SavedModel, the cache in `tf_distill.teacher_cache`, a foreign export in
`tf_distill.foreign_teacher`, an ensemble in `tf_distill.ensemble`) answers `source(features, outputs)` with the same
dict for a batch, so the distiller cannot tell them apart:

  features  input_ids, input_mask, segment_ids: int32 [batch, seq] (seq: the batch's longest real sequence), and
            example_index: int64 [batch] where the training data carries it (a cache looks examples up by it)
  returns   exactly the requested outputs, gradient-stopped, float32:
              logits, probabilities                      [batch, labels]
              embeddings                                 [batch, seq, hidden]
              hidden_states, attention_queries/keys/values   list over teacher layers (0-based), each [batch, seq, hidden]
              attention_scores, attention_probs          list over teacher layers, each [batch, heads, seq, seq]
            Per-layer lists may hold None at layers a source was not asked to keep (the cache stores only the layers
            the matches read). This is the layout of the student's own outputs, which `FeatureLoss.select` reads.

Loading needs only TensorFlow (no transformers, no tf_distill model code). Restored SavedModel variables come back
with `trainable=True`, so this class is a plain Python object (Keras does not track it) and every output goes through
`tf.stop_gradient`: no gradient or optimizer update can reach the teacher, and checkpoints of the student never
contain it.
"""

import abc
import os
from typing import Dict, Iterable, Optional, Sequence, Tuple

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import LAYER_OUTPUTS
from tf_distill.export.serving import SERVING_OUTPUTS, file_sha256, latest_version_dir, read_metadata


INDEX_KEY = "example_index"  # the feature column that numbers training examples (a cache's join key)


class TeacherError(ValueError):
  """The teacher SavedModel cannot serve this distillation run."""


class TeacherSource(abc.ABC):
  """Where a distillation run gets its teacher outputs from (module docstring: the call contract)."""

  # Whether batches must carry `example_index` (a cache looks examples up by it; an online teacher computes).
  needs_example_index = False

  @property
  @abc.abstractmethod
  def labels(self) -> Sequence[str]:
    """The label list, in logit order."""

  @property
  def num_labels(self) -> int:
    return len(self.labels)

  @property
  @abc.abstractmethod
  def bert_config(self) -> Dict:
    """The teacher's BERT shape (BertConfig fields): students are shaped from it."""

  @property
  @abc.abstractmethod
  def available_outputs(self) -> Tuple[str, ...]:
    """The output names this source can serve."""

  @abc.abstractmethod
  def __call__(self, features: Dict[str, tf.Tensor], outputs: Sequence[str]) -> Dict:
    """The requested outputs for one batch, in the layout of the module docstring."""

  def check_outputs(self, outputs: Iterable[str]) -> None:
    """Raises TeacherError naming what is missing when this source cannot serve `outputs`."""
    missing = [k for k in outputs if k not in self.available_outputs]
    if missing:
      raise TeacherError(f"the teacher ({self}) lacks outputs {missing} that the chosen losses need; it has "
                         f"{sorted(self.available_outputs)}")


class SavedModelTeacher(TeacherSource):
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

  def _signature_for(self, outputs: Sequence[str]):
    """The signature that serves `outputs`: serving_default for logits/probabilities alone, else distill."""
    signatures = self._loaded.signatures
    name = "distill" if any(k not in SERVING_OUTPUTS for k in outputs) else "serving_default"
    if name not in signatures:
      raise TeacherError(f"teacher {self.path} has no {name!r} signature (it has {sorted(signatures)}); re-export "
                         "it with scripts/export_teacher.sh, which writes serving_default and distill")
    available = set(signatures[name].structured_outputs)
    missing = [k for k in outputs if k not in available]
    if missing:
      raise TeacherError(f"teacher signature {name!r} of {self.path} lacks outputs {missing} that the chosen "
                         f"losses need; it has {sorted(available)}. Re-export the teacher with this tf_distill")
    return signatures[name]

  def require(self, required_outputs: Iterable[str]) -> "SavedModelTeacher":
    """Checks that `required_outputs` can be served and makes them the default of `__call__`."""
    self.required_outputs = tuple(required_outputs)
    self._signature_for(self.required_outputs)
    return self

  def check_outputs(self, outputs: Iterable[str]) -> None:
    self._signature_for(tuple(outputs))

  def __str__(self) -> str:
    return f"SavedModel {self.path}"

  @property
  def labels(self) -> Sequence[str]:
    return list(self.metadata["labels"])

  @property
  def available_outputs(self) -> Tuple[str, ...]:
    signatures = self._loaded.signatures
    return tuple(sorted({k for name in ("serving_default", "distill") if name in signatures
                         for k in signatures[name].structured_outputs}))

  @property
  def vocab_file(self) -> str:
    """The vocab the teacher was trained with (exported next to it)."""
    return os.path.join(self.path, "assets.extra", "vocab.txt")

  @property
  def max_seq_length(self) -> int:
    return int(self.metadata["max_seq_length"])

  @property
  def bert_config(self) -> Dict:
    if self.metadata.get("model_type", "bert") != "bert":
      raise TeacherError(f"teacher {self.path} is a {self.metadata['model_type']} model; students are shaped from a "
                         "BERT teacher: pass a BERT teacher export as --teacher_model")
    return dict(self.metadata.get("model_config") or self.metadata["bert_config"])

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

  def __call__(self, features: Dict[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict:
    """Teacher outputs for a batch, gradient-stopped; per-layer outputs (stacked [layers, ...] in the `distill`
    signature) come back as lists over layers. `outputs` defaults to `required_outputs`."""
    outputs = tuple(outputs or self.required_outputs)
    result = self._signature_for(outputs)(input_ids=features["input_ids"], input_mask=features["input_mask"],
                                          segment_ids=features["segment_ids"])
    out = {}
    for k in outputs:
      value = tf.stop_gradient(result[k])
      out[k] = tf.unstack(value) if k in LAYER_OUTPUTS else value
    return out

"""A pretrained encoder as a `TeacherSource`: the teacher of general distillation.

General distillation reads only the teacher's intermediates (embeddings, hidden states, attention, Q/K/V), so the
teacher is a pretrained BERT as it comes, a Hugging Face-format directory (default all-MiniLM-L6-v2), run in-process
by `tf_distill.bert.BertClassifier` with the weights `tf_distill.pretrained` loads. Its pooled head has no trained
weights and no loss reads its logits. An exported tf_distill teacher (`--teacher_model`) serves as well, through
`tf_distill.teacher.SavedModelTeacher`'s `distill` signature.
"""

import os
from typing import Dict, Iterable, Optional, Sequence, Tuple

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import LAYER_OUTPUTS, OUTPUT_KEYS
from tf_distill.pretrained import build_pretrained_classifier, check_pretrained_dir
from tf_distill.teacher import TeacherSource


class PretrainedEncoderTeacher(TeacherSource):
  """The encoder in the Hugging Face-format directory `path` (config.json, model.safetensors, vocab.txt), frozen.

  A plain Python object, so Keras never tracks, trains or saves it; every output is gradient-stopped."""

  def __init__(self, path: str):
    check_pretrained_dir(path)
    self.path = path
    # Dropout is off (training=False) and the pooled head's random classifier is never read.
    self.model = build_pretrained_classifier(path, num_labels=2)
    self.model.trainable = False

  def __str__(self) -> str:
    return f"pretrained encoder {self.path}"

  @property
  def labels(self) -> Sequence[str]:
    return ()

  @property
  def bert_config(self) -> Dict:
    return self.model.config.to_dict()

  @property
  def available_outputs(self) -> Tuple[str, ...]:
    return tuple(key for key in OUTPUT_KEYS if key != "logits")

  @property
  def vocab_file(self) -> str:
    return os.path.join(self.path, "vocab.txt")

  @property
  def variables(self):
    return self.model.weights

  def __call__(self, features: Dict[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict:
    outputs = tuple(outputs or self.available_outputs)
    self.check_outputs(outputs)
    result = self.model({k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False)
    return {k: [tf.stop_gradient(x) for x in result[k]] if k in LAYER_OUTPUTS else tf.stop_gradient(result[k])
            for k in outputs}

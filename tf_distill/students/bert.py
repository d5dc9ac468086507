"""BERT students: a smaller `BertClassifier` shaped from the teacher, optionally initialised from teacher layers.

Initialising student layer i from teacher layer `init_from_layers[i]` (1-based, as in `tf_distill.layer_map`; plus
the embeddings, pooler and classifier) is the recipe of BERT-PKD and DistilBERT. The weights are read from the teacher
SavedModel's variables by name, so no teacher Python code is needed.
"""

import re
from typing import Dict

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import BertClassifier, BertConfig
from tf_distill.configs import BertStudentConfig
from tf_distill.students.base import STUDENTS, StudentType


def student_bert_config(teacher_config: Dict, student: BertStudentConfig) -> BertConfig:
  """The teacher's config with the student's layer count and, where given, width, heads and FFN size."""
  overrides = {"num_hidden_layers": student.num_hidden_layers}
  for name in ("hidden_size", "num_attention_heads", "intermediate_size"):
    if getattr(student, name) is not None:
      overrides[name] = getattr(student, name)
  return BertConfig.from_dict({**teacher_config, **overrides})


def _variable_key(name: str) -> str:
  """'bert_classifier/layer_3/query/kernel:0' -> 'layer_3/query/kernel' (drops the model scope and ':0')."""
  return re.sub(r":\d+$", "", name.split("/", 1)[1] if "/" in name else name)


def init_from_teacher(student: BertClassifier, teacher_variables, init_from_layers) -> None:
  """Copies embeddings, pooler, classifier and teacher layer `init_from_layers[i]` (1..N) into student layer i."""
  teacher = {_variable_key(v.name): v for v in teacher_variables}
  # Variable scopes count encoder layers from 0 (layer_0 is layer 1 in tf_distill's numbering).
  num_teacher_layers = len({m.group(1) for k in teacher for m in [re.match(r"layer_(\d+)/", k)] if m})
  for layer in init_from_layers:
    if not 1 <= layer <= num_teacher_layers:
      raise ValueError(f"student_init_from_layers names teacher layer {layer}, but the teacher has layers "
                       f"1..{num_teacher_layers}")
  layer_of = {f"layer_{i}/": f"layer_{t - 1}/" for i, t in enumerate(init_from_layers)}
  for variable in student.weights:
    key = _variable_key(variable.name)
    if key.endswith("/calls"):
      continue  # dropout call counters (tf_distill.dropout) start at zero
    for student_prefix, teacher_prefix in layer_of.items():
      if key.startswith(student_prefix):
        key = teacher_prefix + key[len(student_prefix):]
        break
    if key not in teacher:
      raise ValueError(f"the teacher has no variable {key!r} to initialise the student's {variable.name}")
    source = teacher[key]
    if source.shape != variable.shape:
      raise ValueError(f"cannot initialise student {variable.name} {variable.shape} from teacher {key} "
                       f"{source.shape}: initialising from teacher layers needs the teacher's hidden_size, heads "
                       "and intermediate_size; drop --student_init_from_layers or the student width flags")
    variable.assign(tf.convert_to_tensor(source))


def build_bert_student(teacher_config: Dict, student: BertStudentConfig, teacher_variables=None) -> BertClassifier:
  model = BertClassifier(student_bert_config(teacher_config, student.validate())).build_weights()
  if student.init_from_layers is not None:
    if teacher_variables is None:
      raise ValueError("student_init_from_layers needs the teacher's variables")
    init_from_teacher(model, teacher_variables, student.init_from_layers)
  return model


STUDENTS.register("bert")(StudentType(
    # Only an initialised student reads the teacher's variables: a foreign teacher has none to offer.
    build=lambda config, teacher: build_bert_student(
        teacher.bert_config, config, teacher.variables if config.init_from_layers is not None else None),
    from_model_config=lambda values: BertClassifier(BertConfig.from_dict(values)).build_weights(),
    intermediate_outputs=True, mixed_precision=True))

"""BERT students: a smaller `BertClassifier` shaped from the teacher, optionally initialised from teacher layers
or from a pretrained (general-distilled) directory.

Initialising student layer i from teacher layer `init_from_layers[i]` (1-based, as in `tf_distill.layer_map`; plus
the embeddings, pooler and classifier) is the recipe of BERT-PKD and DistilBERT. The weights are read from the teacher
SavedModel's variables by name, so no teacher Python code is needed. `init_checkpoint` is TinyBERT's and MiniLM's
second step: a Hugging Face-format student (`tf_distill general_distill`'s output) gives the shape and the encoder and
pooler weights; the classifier starts fresh.
"""

import os
import re
from typing import Dict, Optional

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import BertClassifier, BertConfig
from tf_distill.configs import BertStudentConfig
from tf_distill.export.serving import file_sha256
from tf_distill.pretrained import assign_weights, check_pretrained_dir, load_state_dict
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


def checkpoint_student_config(teacher_config: Dict, student: BertStudentConfig,
                              teacher_vocab_file: Optional[str] = None) -> BertConfig:
  """The shape of the pretrained directory `student.init_checkpoint` with the teacher's head and labels. ValueError
  when a student field contradicts the checkpoint, or its vocabulary is not the teacher's (the student reads the
  teacher's word pieces)."""
  path = student.init_checkpoint
  if not os.path.isdir(path):
    raise FileNotFoundError(f"--student_init_checkpoint={path} does not exist; write it with "
                            "scripts/general_distill.sh (its --output_dir/student), or pass "
                            "--student_init_checkpoint= to start from random weights")
  check_pretrained_dir(path)
  theirs = BertConfig.from_json_file(os.path.join(path, "config.json"))
  asked = {"student_num_layers": ("num_hidden_layers", student.num_hidden_layers),
           "student_hidden_size": ("hidden_size", student.hidden_size),
           "student_num_heads": ("num_attention_heads", student.num_attention_heads),
           "student_intermediate_size": ("intermediate_size", student.intermediate_size)}
  differ = [f"--{flag}={value} (it has {getattr(theirs, field)})" for flag, (field, value) in asked.items()
            if value is not None and value != getattr(theirs, field)]
  if differ:
    shape = " ".join(f"--{flag}={getattr(theirs, field)}" for flag, (field, _) in asked.items())
    raise ValueError(f"--student_init_checkpoint={path} holds another student shape than {', '.join(differ)}; "
                     f"pass its shape ({shape}) or leave the width flags unset")
  if theirs.vocab_size != int(teacher_config["vocab_size"]) or (
      teacher_vocab_file and file_sha256(teacher_vocab_file) != file_sha256(os.path.join(path, "vocab.txt"))):
    raise ValueError(f"--student_init_checkpoint={path} has another vocabulary than the teacher ({path}/vocab.txt vs "
                     f"{teacher_vocab_file or 'the teacher'}'s); general-distil it from this teacher's encoder")
  return BertConfig.from_dict({**theirs.to_dict(), "num_labels": teacher_config["num_labels"],
                               "head": teacher_config.get("head", "pooled")})


def build_bert_student(teacher_config: Dict, student: BertStudentConfig, teacher_variables=None,
                       teacher_vocab_file: Optional[str] = None) -> BertClassifier:
  student.validate()
  if student.init_checkpoint:
    model = BertClassifier(checkpoint_student_config(teacher_config, student, teacher_vocab_file)).build_weights()
    assign_weights(model, load_state_dict(student.init_checkpoint),
                   f"{student.init_checkpoint}/model.safetensors", "config.json")
    return model
  model = BertClassifier(student_bert_config(teacher_config, student)).build_weights()
  if student.init_from_layers is not None:
    if teacher_variables is None:
      raise ValueError("student_init_from_layers needs the teacher's variables")
    init_from_teacher(model, teacher_variables, student.init_from_layers)
  return model


STUDENTS.register("bert")(StudentType(
    # Only an initialised student reads the teacher's variables: a foreign teacher has none to offer.
    build=lambda config, teacher: build_bert_student(
        teacher.bert_config, config, teacher.variables if config.init_from_layers is not None else None,
        getattr(teacher, "vocab_file", None)),
    from_model_config=lambda values: BertClassifier(BertConfig.from_dict(values)).build_weights(),
    intermediate_outputs=True, mixed_precision=True))

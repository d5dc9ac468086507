"""A teacher SavedModel that tf_distill did not export: Google BERT's `run_classifier.py` export (inputs `input_ids`,
`input_mask`, `segment_ids`, often a dummy `label_ids`; output `probabilities` only), a TF2/Keras export (inputs
`input_word_ids`, `input_mask`, `input_type_ids`), or anything else whose signature takes token ids.

    teacher = ForeignSavedModelTeacher(ForeignTeacherConfig(
        path="bert_export/1577", signature="serving_default", output="probabilities",
        output_kind="probabilities"), labels=("0", "1"), vocab_file="vocab.txt", bert_config_file="bert_config.json")

It serves `logits` (and `probabilities`) in the `tf_distill.teacher` layout, so it is used for logits distillation
only. What the signature returns becomes logits as follows (the distiller then takes softmax(logits / T)):

  output_kind=logits             z                   the logits themselves
  output_kind=log_probabilities  log p = z - lse(z)  softmax(log p / T) = softmax(z / T): the lse(z) shift cancels
  output_kind=probabilities      log max(p, 1e-30)   the same, up to probabilities below 1e-30 (float32 underflow)

A per-example shift does not change soft targets, but it does change raw-logit MSE, so `kd_loss=mse` is refused for
the two probability kinds. The export carries no label list, vocab or BERT shape: they come from the run's --labels,
--vocab_file and --teacher_bert_config_file (the latter only to shape a BERT/BiLSTM student).
"""

import json
import os
from typing import Dict, Iterable, Optional, Sequence, Tuple

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.configs import ForeignTeacherConfig
from tf_distill.export.serving import file_sha256, latest_version_dir
from tf_distill.teacher import TeacherError, TeacherSource

OUR_INPUTS = ("input_ids", "input_mask", "segment_ids")
# Input names other exports use for ours, tried when --teacher_input_map leaves one out.
KNOWN_ALIASES = {"input_ids": ("input_ids", "input_word_ids"), "input_mask": ("input_mask", "attention_mask"),
                 "segment_ids": ("segment_ids", "input_type_ids", "token_type_ids")}
MIN_PROBABILITY = 1e-30


def parse_input_map(spec: str) -> Dict[str, str]:
  """"input_ids=input_word_ids,segment_ids=input_type_ids" -> {ours: theirs}."""
  mapping = {}
  for item in filter(None, (s.strip() for s in spec.split(","))):
    ours, sep, theirs = item.partition("=")
    if not sep or ours not in OUR_INPUTS or not theirs:
      raise TeacherError(f"--teacher_input_map item {item!r} is not OURS=THEIRS with OURS one of {list(OUR_INPUTS)}, "
                         "e.g. input_ids=input_word_ids,segment_ids=input_type_ids")
    mapping[ours] = theirs
  return mapping


class ForeignSavedModelTeacher(TeacherSource):
  """Logits (and probabilities) from one signature of a SavedModel without tf_distill metadata."""

  def __init__(self, config: ForeignTeacherConfig, path: str, labels: Optional[Sequence[str]],
               vocab_file: Optional[str], bert_config_file: Optional[str] = None):
    config.validate()
    self.config = config
    self.path = latest_version_dir(path)
    if not os.path.isfile(os.path.join(self.path, "saved_model.pb")):
      raise TeacherError(f"teacher model {path!r} is not a SavedModel (no saved_model.pb in {self.path})")
    if not labels:
      raise TeacherError(f"the teacher {self.path} carries no tf_distill metadata, so its label list must come "
                         "from --labels (in the order of its outputs), e.g. --labels=0,1")
    if not vocab_file:
      raise TeacherError(f"the teacher {self.path} carries no tf_distill metadata, so its WordPiece vocab must come "
                         "from --vocab_file (the vocab.txt it was trained with)")
    self._labels = list(labels)
    self.vocab_file = vocab_file
    self.bert_config_file = bert_config_file
    self._loaded = tf.saved_model.load(self.path)
    signatures = self._loaded.signatures
    if config.signature not in signatures:
      raise TeacherError(f"teacher {self.path} has no signature {config.signature!r}; it has {sorted(signatures)}: "
                         "pass one as --teacher_signature")
    self._fn = signatures[config.signature]
    self._specs = self._fn.structured_input_signature[1]
    self._input_names = self._resolve_inputs(parse_input_map(config.input_map))
    self._output = self._resolve_output()
    self.required_outputs = ("logits",)

  def _resolve_inputs(self, mapping: Dict[str, str]) -> Dict[str, str]:
    names = {}
    for ours in OUR_INPUTS:
      candidates = (mapping[ours],) if ours in mapping else KNOWN_ALIASES[ours]
      found = [c for c in candidates if c in self._specs]
      if not found:
        raise TeacherError(f"signature {self.config.signature!r} of {self.path} has no input for {ours} (tried "
                           f"{list(candidates)}; its inputs are {sorted(self._specs)}): map it with "
                           f"--teacher_input_map={ours}=NAME")
      names[ours] = found[0]
    extra = [n for n in self._specs if n not in names.values()]
    bad = [n for n in extra if self._specs[n].shape.rank != 1]
    if bad:
      raise TeacherError(f"signature {self.config.signature!r} of {self.path} also takes inputs {bad}, which are not "
                         "token ids and cannot be fed with zeros (only [batch]-shaped ones such as label_ids can); "
                         "map them with --teacher_input_map or use another signature")
    return names

  def _resolve_output(self) -> str:
    outputs = sorted(self._fn.structured_outputs)
    name = self.config.output or (outputs[0] if len(outputs) == 1 else self.config.output_kind)
    if name not in outputs:
      raise TeacherError(f"signature {self.config.signature!r} of {self.path} has no output {name!r}; it has "
                         f"{outputs}: pass one as --teacher_output (and its kind as --teacher_output_kind)")
    return name

  def __str__(self) -> str:
    return f"foreign SavedModel {self.path} ({self.config.signature}:{self._output} as {self.config.output_kind})"

  @property
  def labels(self) -> Sequence[str]:
    return list(self._labels)

  @property
  def available_outputs(self) -> Tuple[str, ...]:
    return ("logits", "probabilities")

  def check_outputs(self, outputs: Iterable[str]) -> None:
    missing = [k for k in outputs if k not in self.available_outputs]
    if missing:
      raise TeacherError(f"the {self} serves logits only; the chosen intermediate losses need {missing}, which only "
                         "a tf_distill teacher export has (its distill signature): drop --intermediate_matches, or "
                         "turn the fine-tuned checkpoint into a tf_distill teacher with export_teacher")

  def require(self, required_outputs: Iterable[str]) -> "ForeignSavedModelTeacher":
    self.check_outputs(required_outputs)
    self.required_outputs = tuple(required_outputs)
    return self

  @property
  def bert_config(self) -> Dict:
    if not self.bert_config_file:
      raise TeacherError(f"the {self} carries no BERT shape to build the student from: pass its bert_config.json "
                         "(or a Hugging Face config.json) as --teacher_bert_config_file")
    with open(self.bert_config_file, encoding="utf-8") as f:
      values = json.load(f)
    return {k: values[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "max_position_embeddings", "type_vocab_size")
            if k in values}

  @property
  def variables(self):
    raise TeacherError(f"the {self} has no tf_distill variable names to initialise a student from: drop "
                       "--student_init_from_layers, or turn the checkpoint into a tf_distill teacher with "
                       "export_teacher")

  def check_compatible(self, labels: Sequence[str], vocab_file: str, max_seq_length: int) -> None:
    if list(labels) != self._labels:
      raise TeacherError(f"label mismatch: the data has labels {list(labels)} but --labels gives the teacher "
                         f"{self.path} the labels {self._labels}")
    if file_sha256(vocab_file) != file_sha256(self.vocab_file):
      raise TeacherError(f"vocab mismatch: the data is tokenised with {vocab_file}, the teacher {self.path} was "
                         f"given {self.vocab_file}")
    seq = self._specs[self._input_names["input_ids"]].shape
    if seq.rank == 2 and seq[1] is not None and max_seq_length > seq[1]:
      raise TeacherError(f"max_seq_length={max_seq_length} is beyond the teacher's fixed input length {seq[1]}; use "
                         f"--max_seq_length<={seq[1]}")

  def _feed(self, features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    batch = tf.shape(features["input_ids"])[0]
    feed = {}
    for ours, theirs in self._input_names.items():
      spec = self._specs[theirs]
      value = tf.cast(features[ours], spec.dtype)
      if spec.shape.rank == 2 and spec.shape[1] is not None:  # a fixed-length graph export: pad batches to it
        value = tf.pad(value, [[0, 0], [0, spec.shape[1] - tf.shape(value)[1]]])
      feed[theirs] = value
    for name, spec in self._specs.items():
      if name not in feed:
        feed[name] = tf.zeros([batch], spec.dtype)  # a dummy such as run_classifier's label_ids
    return feed

  def __call__(self, features: Dict[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict:
    outputs = tuple(outputs or self.required_outputs)
    self.check_outputs(outputs)
    value = tf.cast(self._fn(**self._feed(features))[self._output], tf.float32)
    kind = self.config.output_kind
    logits = tf.math.log(tf.maximum(value, MIN_PROBABILITY)) if kind == "probabilities" else value
    logits = tf.stop_gradient(logits)
    result = {"logits": logits, "probabilities": tf.nn.softmax(logits)}
    return {k: result[k] for k in outputs}

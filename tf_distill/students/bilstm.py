"""The BiLSTM student of Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks".

  word embeddings [batch, seq, embedding_size]
  -> bidirectional LSTM over the real tokens (lstm_units per direction)
  -> head "pooled": [final forward state; final backward state]  [batch, 2 * lstm_units]  (the paper's sentence vector)
     head "token":  [forward state at t; backward state at t]    [batch, seq, 2 * lstm_units]  (a tagger)
  -> Dense(hidden_units, ReLU) -> Dense(num_labels) = logits [batch, num_labels] or [batch, seq, num_labels]

`call` takes the BERT inputs (`input_ids`, `input_mask`, `segment_ids`: int32 [batch, seq]) and returns
`{"logits": ..., "embeddings": [batch, seq, embedding_size]}`; the paper trains it with an MSE between student and
teacher logits. The head is the teacher's (`BILSTM_HEADS` of `tf_distill.bert.HEADS`), as for the BERT student.
`segment_ids` are not used: a sentence pair is read as the one sequence
`[CLS] a [SEP] b [SEP]` (the paper's siamese pair model is not implemented).

Masking. Padding must not change the result, and the recurrence must convert to TFLite builtins with a free batch
size and sequence length. Keras' `LSTM` does not do both: the converter fuses it into UNIDIRECTIONAL_SEQUENCE_LSTM
only with a static batch size (TF Serving needs a free one), the fused op ignores Keras masks
(tensorflow/tensorflow#49936) and `go_backwards` prevents fusion (tensorflow/tensorflow#35551); without fusion the
converter fails on `TensorListReserve` ("requires element_shape to be static"). So `BidirectionalLstm` writes the
recurrence out as one `tf.while_loop` that carries only the states (no TensorArray). Step t advances the forward
direction on token t and the backward direction on token seq-1-t; where `input_mask` is 0 a direction keeps its
state, so each direction ends exactly where Keras' masked `Bidirectional(LSTM)` ends, for any batch, any length and
any padding. In TFLite this is one WHILE op whose body holds FULLY_CONNECTED, LOGISTIC, TANH, MUL, ADD, GATHER.
For the token head the loop also carries each direction's states at every position, [seq, batch, units], and adds
step t's state at its position through a one-hot mask (EQUAL, CAST, MUL, ADD: a TensorArray would need a static
element shape, and a tensor grown by CONCATENATION comes out wrong from TFLite's WHILE); padding positions get the
state carried through them, which no loss or metric reads. The input projections of all steps and both directions
are computed before the loop as one matrix product.
"""

import dataclasses
from typing import Dict, Iterable, Optional

import numpy as np

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from tf_distill.dropout import ResumableDropout
from tf_distill.quantization_aware import (TANH_RANGE, UNIT_RANGE, Int8Dense, Int8Embedding, activation as int8,
                                          fixed_range, is_simulated, per_channel_weights)
from tf_distill.students.base import STUDENTS, StudentType

MODEL_TYPE = "bilstm"


# The int8 quantisation points of one direction's LSTM step: where TFLite's full-int8 WHILE body requantises.
STEP_POINTS = ("h_in", "c_in", "recurrent", "z", "fc", "ig", "c", "h", "h_out", "c_out")
BILSTM_HEADS = ("pooled", "token")  # the span head (extractive QA) is the BERT student's only (issue 34)


@dataclasses.dataclass(frozen=True)
class BiLstmConfig:
  """Shape of the BiLSTM student. Defaults follow Tang et al. (2019): 300-d embeddings, 300 units per direction,
  a 400-unit ReLU layer."""
  vocab_size: int = 30522
  embedding_size: int = 300
  lstm_units: int = 300
  hidden_units: int = 400
  num_labels: int = 2
  dropout: float = 0.1
  model_type: str = MODEL_TYPE
  head: str = "pooled"  # tf_distill.bert.HEADS: the teacher's

  def validate(self) -> "BiLstmConfig":
    if self.model_type != MODEL_TYPE:
      raise ValueError(f"model_type must be {MODEL_TYPE!r} for a BiLstmConfig, got {self.model_type!r}")
    for name in ("vocab_size", "embedding_size", "lstm_units", "hidden_units", "num_labels"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
    if self.head not in BILSTM_HEADS:
      raise ValueError(f"head {self.head!r} is not supported by the bilstm student (heads {list(BILSTM_HEADS)}); "
                       "distil a span teacher into --student_type=bert")
    return self

  @classmethod
  def from_dict(cls, values: Dict) -> "BiLstmConfig":
    """Builds a validated config from `to_dict()` output; unknown keys are an error (they are likely a typo or the
    config of another model type)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
      raise ValueError(f"unknown BiLstmConfig keys {unknown}; known: {sorted(fields)}")
    return cls(**values).validate()

  def to_dict(self) -> Dict:
    """The fields as a dict; `head` only when it is not the default "pooled" (as `BertConfig.to_dict`)."""
    values = dataclasses.asdict(self)
    if values["head"] == "pooled":
      del values["head"]
    return values


class BidirectionalLstm(keras.layers.Layer):
  """A masked bidirectional LSTM that returns the final state of each direction, or (`return_sequences`) the states
  at every position.

  Same cell and gate order (input, forget, cell, output) and initialisers as `keras.layers.LSTM` (glorot-uniform
  kernel, orthogonal recurrent kernel, forget-gate bias 1), so Keras LSTM weights can be copied in:

    z_t = x_t W + h_{t-1} U + b;  i, f, o = sigmoid(z_i, z_f, z_o);  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g;    h_t = o * tanh(c_t)
    where mask_t = 0:             h_t, c_t = h_{t-1}, c_{t-1}

  inputs: float32 [batch, seq, features]; mask: [batch, seq] (1 for tokens, 0 for padding, any dtype; None: all 1).
  Returns float32 [batch, 2 * units]: [forward state after the last token; backward state after the first token];
  with `return_sequences`, [batch, seq, 2 * units]: at position t, [forward state after token t; backward state
  after token t] (Keras' `Bidirectional(LSTM(return_sequences=True))` at the real tokens).
  """

  simulates_int8 = True  # the input projection and every step of the recurrence (TFLite's WHILE body is int8)

  def __init__(self, units: int, return_sequences: bool = False, **kwargs):
    super().__init__(**kwargs)
    if units < 1:
      raise ValueError(f"units must be >= 1, got {units}")
    self.units = units
    self.return_sequences = return_sequences

  def build(self, input_shape):
    features = input_shape[-1]
    if features is None:
      raise ValueError(f"BidirectionalLstm needs a known feature size, got input shape {input_shape}")
    units = self.units

    def bias_initializer(shape, dtype=None):
      del shape
      forget_gate_ones = np.concatenate([np.zeros(units), np.ones(units), np.zeros(2 * units)])
      return tf.constant(forget_gate_ones, dtype=dtype or tf.float32)

    for direction in ("forward", "backward"):
      setattr(self, f"{direction}_kernel", self.add_weight(
          name=f"{direction}_kernel", shape=[features, 4 * units], initializer=keras.initializers.GlorotUniform()))
      setattr(self, f"{direction}_recurrent_kernel", self.add_weight(
          name=f"{direction}_recurrent_kernel", shape=[units, 4 * units],
          initializer=keras.initializers.Orthogonal()))
      setattr(self, f"{direction}_bias", self.add_weight(
          name=f"{direction}_bias", shape=[4 * units], initializer=bias_initializer))
    super().build(input_shape)

  def _step(self, projected, h, c, recurrent_kernel, mask, point=None):
    """One masked LSTM step. projected: [batch, 4u] (x_t W + b); h, c: [batch, u]; mask: [batch, 1] float.
    point(name, x): x at the step's int8 quantisation point `name` (`STEP_POINTS`) while int8 is simulated (then the
    gates are also read on TFLite's fixed LOGISTIC and TANH ranges); None: float32 throughout."""
    if point is None:
      point, sigmoid, tanh = (lambda name, x: x), tf.sigmoid, tf.tanh
    else:
      sigmoid = lambda x: fixed_range(tf.sigmoid(x), *UNIT_RANGE)
      tanh = lambda x: fixed_range(tf.tanh(x), *TANH_RANGE)
    h, c = point("h_in", h), point("c_in", c)
    z = point("z", projected + point("recurrent", tf.matmul(h, recurrent_kernel)))
    u = self.units
    i, f, g, o = sigmoid(z[:, :u]), sigmoid(z[:, u:2 * u]), tanh(z[:, 2 * u:3 * u]), sigmoid(z[:, 3 * u:])
    new_c = point("c", point("fc", f * c) + point("ig", i * g))
    new_h = point("h", o * tanh(new_c))
    # Exact for a 0/1 mask: padding steps keep the previous state.
    return point("h_out", mask * new_h + (1.0 - mask) * h), point("c_out", mask * new_c + (1.0 - mask) * c)

  def call(self, inputs, mask=None, training=None):
    u = self.units
    if mask is None:
      mask = tf.ones(tf.shape(inputs)[:2], inputs.dtype)
    batch, seq_len = tf.shape(inputs)[0], tf.shape(inputs)[1]
    kernel = tf.concat([self.forward_kernel, self.backward_kernel], 1)  # [features, 8u]
    recurrent = {"forward": self.forward_recurrent_kernel, "backward": self.backward_recurrent_kernel}
    simulated = is_simulated(self)
    if simulated:
      kernel = per_channel_weights(kernel)
      recurrent = {direction: per_channel_weights(k) for direction, k in recurrent.items()}
    bias = tf.concat([self.forward_bias, self.backward_bias], 0)  # [8u]
    projected = int8(self, "projected", tf.matmul(tf.reshape(inputs, [-1, inputs.shape[-1]]), kernel) + bias,
                     training)  # [batch * seq, 8u]
    projected = tf.transpose(tf.reshape(projected, [batch, seq_len, 8 * u]), [1, 0, 2])  # [seq, batch, 8u]
    step_mask = tf.expand_dims(tf.transpose(tf.cast(mask, inputs.dtype)), -1)  # [seq, batch, 1]
    zeros = tf.zeros_like(projected[0, :, :u])  # [batch, u]; zeros_like keeps the batch size dynamic
    # While training under simulation: each step point's (min, max) over the steps so far, moved into its range
    # after the loop (evaluation reads the ranges and tracks nothing).
    observing = simulated and bool(training)
    keys = [f"{direction}_{name}" for direction in recurrent for name in STEP_POINTS] if observing else []
    extremes = {key: (tf.constant(0.0), tf.constant(0.0)) for key in keys}

    positions = tf.range(seq_len)

    def body(t, h_f, c_f, h_b, c_b, extremes, *seen):
      back = seq_len - 1 - t
      extremes = dict(extremes)

      def point_of(direction):
        if not simulated:
          return None

        def point(name, x):
          key = f"{direction}_{name}"
          if observing:
            low, high = extremes[key]
            value = tf.stop_gradient(x)
            extremes[key] = (tf.minimum(low, tf.reduce_min(value)), tf.maximum(high, tf.reduce_max(value)))
          return self.int8_ranges.fake_quant(key, x)
        return point

      h_f, c_f = self._step(tf.gather(projected, t)[:, :4 * u], h_f, c_f, recurrent["forward"],
                            tf.gather(step_mask, t), point_of("forward"))
      h_b, c_b = self._step(tf.gather(projected, back)[:, 4 * u:], h_b, c_b, recurrent["backward"],
                            tf.gather(step_mask, back), point_of("backward"))
      if seen:  # each direction's states [seq, batch, u]: this step's written at its position
        at = lambda position: tf.cast(tf.equal(positions, position), h_f.dtype)[:, None, None]
        seen = (seen[0] + at(t) * h_f[None], seen[1] + at(back) * h_b[None])
      return (t + 1, h_f, c_f, h_b, c_b, extremes) + tuple(seen)

    states = (tf.constant(0), zeros, zeros, zeros, zeros, extremes)
    if self.return_sequences:
      states += (tf.zeros_like(projected[:, :, :u]),) * 2
    _, h_f, _, h_b, _, extremes, *seen = tf.while_loop(lambda t, *_: t < seq_len, body, states)
    for key, (low, high) in extremes.items():
      self.int8_ranges.observe(key, low, high)
    if self.return_sequences:
      return tf.transpose(tf.concat(seen, -1), [1, 0, 2])  # [batch, seq, 2u]
    return tf.concat([h_f, h_b], -1)

  def get_config(self):
    return {**super().get_config(), "units": self.units, "return_sequences": self.return_sequences}


class BiLstmClassifier(keras.Model):
  """Embedding -> masked BiLSTM -> [h_forward; h_backward] -> ReLU MLP -> logits (see the module docstring)."""

  def __init__(self, config: BiLstmConfig, **kwargs):
    kwargs.setdefault("name", "bilstm_classifier")
    super().__init__(**kwargs)
    self.config = config.validate()
    self.word_embeddings = Int8Embedding(config.vocab_size, config.embedding_size, name="word_embeddings")
    self.embedding_dropout = ResumableDropout(config.dropout)
    self.bilstm = BidirectionalLstm(config.lstm_units, return_sequences=config.head == "token", name="bilstm")
    self.hidden = Int8Dense(config.hidden_units, activation="relu", name="hidden")
    self.hidden_dropout = ResumableDropout(config.dropout)
    self.classifier = Int8Dense(config.num_labels, name="classifier")

  def call(self, inputs, training=None, logits_only=False):
    """inputs: int32 [batch, seq] `input_ids` and `input_mask` (`segment_ids` is ignored).

    Returns logits float32 [batch, num_labels] ([batch, seq, num_labels] for the token head) and (unless
    `logits_only`) embeddings float32 [batch, seq, embedding_size].
    """
    embeddings = self.embedding_dropout(self.word_embeddings(inputs["input_ids"]), training=training)
    states = self.bilstm(embeddings, mask=inputs["input_mask"], training=training)  # [batch, (seq,) 2 * lstm_units]
    states = int8(self.bilstm, "states", states, training)
    hidden = self.hidden_dropout(self.hidden(states, training=training), training=training)
    logits = self.classifier(hidden, training=training)
    return {"logits": logits} if logits_only else {"logits": logits, "embeddings": embeddings}

  def dummy_inputs(self, batch_size: int = 1, seq_len: int = 8) -> Dict[str, tf.Tensor]:
    ids = tf.ones([batch_size, seq_len], tf.int32)
    return {"input_ids": ids, "input_mask": ids, "segment_ids": tf.zeros_like(ids)}

  def build_weights(self) -> "BiLstmClassifier":
    """Creates all variables by running one dummy batch."""
    self(self.dummy_inputs(), training=False)
    return self

  def init_embeddings_from(self, matrix: np.ndarray) -> "BiLstmClassifier":
    """Initialises the word embeddings from a teacher's word-embedding matrix float [vocab_size, teacher_hidden].

    - teacher_hidden == embedding_size: copied.
    - teacher_hidden > embedding_size: PCA. Row v becomes (v - mean) P, with P the top `embedding_size` principal
      axes of the rows: the linear projection that keeps the most variance, so the distances between words
      change least. A truncation would keep arbitrary coordinates instead.
    - teacher_hidden < embedding_size: copied into the first teacher_hidden columns; the rest start at 0 (the
      teacher's geometry exactly; the LSTM kernel is random, so the extra columns still get gradients).
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != self.config.vocab_size:
      raise ValueError(f"the embedding matrix must be [vocab_size={self.config.vocab_size}, hidden], got shape "
                       f"{matrix.shape}; use the teacher's vocab (its word_embeddings) for the student")
    if not np.all(np.isfinite(matrix)):
      raise ValueError("the embedding matrix has non-finite values")
    size = self.config.embedding_size
    if matrix.shape[1] == size:
      values = matrix
    elif matrix.shape[1] > size:
      values = pca_project(matrix, size)
    else:
      values = np.concatenate([matrix, np.zeros([matrix.shape[0], size - matrix.shape[1]])], 1)
    if not self.word_embeddings.built:
      self.build_weights()
    self.word_embeddings.embeddings.assign(values.astype(np.float32))
    return self

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(BiLstmConfig.from_dict(config["config"]), name=config.get("name"))


def pca_project(matrix: np.ndarray, size: int) -> np.ndarray:
  """Rows of `matrix` [n, d] centred and projected on its top `size` principal axes: float64 [n, size].

  The axes are the eigenvectors of the covariance with the largest eigenvalues, each signed so that its largest
  component is positive (the result is deterministic).
  """
  matrix = np.asarray(matrix, np.float64)
  if not 1 <= size <= matrix.shape[1]:
    raise ValueError(f"size must be in [1, {matrix.shape[1]}], got {size}")
  centred = matrix - matrix.mean(axis=0)
  eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
  axes = eigenvectors[:, np.argsort(eigenvalues)[::-1][:size]]  # [d, size]
  axes *= np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(size)])
  return centred @ axes


def teacher_word_embeddings(teacher_variables: Iterable[tf.Variable]) -> np.ndarray:
  """The word-embedding matrix [vocab, hidden] among a tf_distill BERT's variables, e.g.
  `SavedModelTeacher.variables`."""
  variables = list(teacher_variables)
  for variable in variables:
    if variable.name.split(":")[0].endswith("embeddings/word_embeddings/embeddings"):
      return variable.numpy()
  raise ValueError(f"no '.../embeddings/word_embeddings/embeddings' among the {len(variables)} teacher variables "
                   f"({sorted(v.name for v in variables)[:5]}...); is this a tf_distill BERT teacher?")


def build_bilstm_student(config: BiLstmConfig, word_embeddings: Optional[np.ndarray] = None) -> BiLstmClassifier:
  """A built BiLSTM student, with its embeddings initialised from `word_embeddings` [vocab, hidden] when given."""
  model = BiLstmClassifier(config.validate()).build_weights()
  if word_embeddings is not None:
    model.init_embeddings_from(word_embeddings)
  return model


def _build_from_teacher(config, teacher) -> BiLstmClassifier:
  """The `bilstm` student type: shaped by `config` (a `tf_distill.configs.BiLstmStudentConfig`), with the teacher's
  vocabulary, labels and (PCA-projected where narrower) word embeddings."""
  shape = BiLstmConfig(vocab_size=int(teacher.bert_config["vocab_size"]), num_labels=teacher.num_labels,
                       embedding_size=config.embedding_size, lstm_units=config.lstm_units,
                       hidden_units=config.hidden_units, head=teacher.bert_config.get("head", "pooled"))
  return build_bilstm_student(shape, teacher_word_embeddings(teacher.variables))


STUDENTS.register(MODEL_TYPE)(StudentType(
    build=_build_from_teacher,
    from_model_config=lambda values: BiLstmClassifier(BiLstmConfig.from_dict(values)).build_weights(),
    intermediate_outputs=False, mixed_precision=False))

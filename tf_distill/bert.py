"""A BERT text classifier or token tagger in Keras 2, used for both the teacher and BERT students.

The encoder follows Devlin et al. (2019) and Google's `modeling.py`, with weight names that mirror the Hugging Face
layout so that real pretrained weights load without torch (`tf_distill.pretrained`). Like Model Garden's
`BertEncoderV2`, `call` returns a dict with fixed keys, which is what the distillation losses consume:

  logits:            float32 [batch, num_labels] (head "pooled", a classifier), [batch, seq_len, num_labels]
                     (head "token", a tagger) or [batch, 2, seq_len] (head "span", extractive QA: the start and
                     the end logits of every position, padding at `MASKED_LOGIT`)
  embeddings:        float32 [batch, seq_len, hidden]            (output of the embedding LayerNorm)
  hidden_states:     list of num_layers float32 [batch, seq_len, hidden]
  attention_scores:  list of num_layers float32 [batch, heads, seq_len, seq_len]   (q.k/sqrt(d), before the mask)
  attention_probs:   list of num_layers float32 [batch, heads, seq_len, seq_len]   (softmax over masked scores)
  attention_queries / attention_keys / attention_values:
                     list of num_layers float32 [batch, seq_len, hidden]  (the Q, K, V projections, heads concatenated;
                     relation losses split them into as many heads as they need)
"""

import dataclasses
import json
import os
import random
from typing import Dict, Optional

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from tf_distill.dropout import ResumableDropout
from tf_distill.quantization_aware import (UNIT_RANGE, Int8Dense, Int8Embedding, activation as int8, fixed_range,
                                          is_simulated)

LAYER_OUTPUTS = ("hidden_states", "attention_scores", "attention_probs", "attention_queries", "attention_keys",
                  "attention_values")
OUTPUT_KEYS = ("logits", "embeddings") + LAYER_OUTPUTS


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Shape of a BERT classifier. Field names follow BERT's / Hugging Face's `config.json`."""
  vocab_size: int = 30522
  hidden_size: int = 384
  num_hidden_layers: int = 6
  num_attention_heads: int = 12
  intermediate_size: int = 1536
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  initializer_range: float = 0.02
  layer_norm_eps: float = 1e-12
  num_labels: int = 2
  model_type: str = "bert"
  head: str = "pooled"  # HEADS; chosen by the task type (tf_distill.tasks)

  def validate(self) -> "BertConfig":
    if self.model_type != "bert":
      raise ValueError(f"model_type must be 'bert' for a BertConfig, got {self.model_type!r}")
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings", "type_vocab_size", "num_labels"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                       f"({self.num_attention_heads})")
    if self.head not in HEADS:
      raise ValueError(f"head {self.head!r} is not supported; use one of {list(HEADS)}")
    if self.head == "span" and self.num_labels != 2:
      raise ValueError(f"the span head gives a start and an end logit per position: num_labels must be 2, got "
                       f"{self.num_labels}")
    if self.hidden_act not in _ACTIVATIONS:
      raise ValueError(f"hidden_act {self.hidden_act!r} is not supported; use one of {sorted(_ACTIVATIONS)}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
    return self

  @classmethod
  def from_dict(cls, values: Dict) -> "BertConfig":
    """Builds a config from a dict such as a Hugging Face `config.json`, ignoring keys BERT does not use."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in fields}).validate()

  @classmethod
  def from_json_file(cls, path: str) -> "BertConfig":
    if not os.path.isfile(path):
      raise FileNotFoundError(f"BERT config file {path!r} does not exist; pass the config.json that came with "
                              "the pretrained weights (--bert_config_file)")
    with open(path, encoding="utf-8") as f:
      return cls.from_dict(json.load(f))

  def to_dict(self) -> Dict:
    """The fields as a dict; `head` only when it is not the default "pooled", so a classifier's model_config.json
    and export metadata are what they were before heads existed (and older files read back the same)."""
    values = dataclasses.asdict(self)
    if values["head"] == "pooled":
      del values["head"]
    return values


# What the classifier reads (`BertClassifier`):
#   pooled: tanh(W [CLS] + b), the pooler over the last layer's [CLS] -> logits [batch, num_labels] (run_classifier);
#   token:  the last layer's hidden state of every position -> logits [batch, seq_len, num_labels] (a tagger, as
#           Hugging Face's BertForTokenClassification; no pooler);
#   span:   a Dense(2) over every position's last hidden state, transposed to logits [batch, 2, seq_len]: row 0 the
#           start logits, row 1 the end logits (run_squad's start/end logits, Hugging Face's BertForQuestionAnswering
#           `qa_outputs`; num_labels is 2, no pooler). Padding positions (input_mask 0) get MASKED_LOGIT in float32,
#           so a softmax over the last axis (the hard CE, the KD terms at any temperature T <= 100) gives them no
#           probability: exp(-10000 / T - max) underflows to 0.
HEADS = ("pooled", "token", "span")

# The span head's logit at padding positions (see HEADS).
MASKED_LOGIT = -10000.0


@dataclasses.dataclass(frozen=True)
class LogitsLayout:
  """Where a head's logits run over the input positions, which the task-agnostic code (`Distiller.predict_step`,
  the teacher cache) needs when inputs are cut to the batch's longest sequence and padded back.

  sequence_axis: the axis of the batched logits that has the inputs' length: None for "pooled" ([batch, labels]),
    1 for "token" ([batch, seq, labels]), 2 for "span" ([batch, 2, seq]).
  padding_logit: the logit a padding position has (what logits padded back to full length get): 0.0, or
    MASKED_LOGIT for the span head, so that padded predictions equal the model's at full length.
  """
  sequence_axis: Optional[int] = None
  padding_logit: float = 0.0


LOGITS_LAYOUTS = {"pooled": LogitsLayout(), "token": LogitsLayout(1), "span": LogitsLayout(2, MASKED_LOGIT)}


def logits_layout(head: Optional[str]) -> LogitsLayout:
  """The `LogitsLayout` of `head` (None: "pooled", a model from before heads existed)."""
  head = head or "pooled"
  if head not in LOGITS_LAYOUTS:
    raise ValueError(f"head {head!r} is not supported; use one of {list(HEADS)}")
  return LOGITS_LAYOUTS[head]


_ACTIVATIONS = {
    "gelu": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: tf.nn.gelu(x, approximate=True),
    "relu": tf.nn.relu,
}


def _initializer(config: BertConfig) -> keras.initializers.Initializer:
  """A fresh, seeded initializer per variable. The seed comes from Python's generator (seeded by
  `keras.utils.set_random_seed`), so the initial weights depend only on the run's seed -- not on how many random ops
  TensorFlow created before, which differs under a `tf.distribute` strategy."""
  return keras.initializers.TruncatedNormal(stddev=config.initializer_range, seed=random.randrange(2**31))


def _dense(units: int, config: BertConfig, name: str, activation=None) -> Int8Dense:
  return Int8Dense(units, activation=activation, name=name, kernel_initializer=_initializer(config))


# How far below a row's lowest score masked keys are put: e^-20 ~ 2e-9, so 512 masked keys move a softmax by
# less than 1e-6, as good as BERT's additive -10000 in float32.
MASK_MARGIN = 20.0


def masked_scores(scores, key_mask):
  """The attention scores with masked keys replaced by `MASK_MARGIN` below the row's lowest score.

      masked = scores * mask + (min_k scores - MASK_MARGIN) * (1 - mask)

  scores: float [batch, heads, queries, keys]; key_mask: [batch, 1, 1, keys], 1 for tokens and 0 for padding.
  softmax(masked) equals the softmax over the real keys to within 1e-6, like BERT's `scores + (1 - mask) * -10000`,
  but the tensor keeps the scores' own range (plus MASK_MARGIN) instead of spanning 10000: with the additive bias,
  a full-integer TFLite model calibrated on padded examples quantises the scores in steps of ~40, every real score
  rounds to the same value and attention becomes uniform (the demo student lost 22.7 points).
  """
  # The floor is a constant offset for the masked keys, whose softmax weights are ~e^-20: no gradient flows into
  # it (as none flows through BERT's constant bias), which spares the backward pass three passes over the scores.
  floor = tf.stop_gradient(tf.reduce_min(scores, axis=-1, keepdims=True) - MASK_MARGIN)
  return scores * key_mask + floor * (1.0 - key_mask)


# Where the outlier-safe LayerNorm splits each token's values: at OUTLIER_SPLIT times their mean |x - mean|.
OUTLIER_SPLIT = 3.0


class LayerNorm(keras.layers.LayerNormalization):
  """Keras' LayerNormalization over the last axis (same variables, same maths), written out as

      y = (x - mean) * rsqrt(mean((x - mean)^2) + epsilon) * gamma + beta

  with a subtraction and a multiplication where Keras uses SquaredDifference, for which TFLite's 16x8 quantisation
  (int16 activations) has no kernel. 16-bit inputs are normalised in float32, as Keras does.

  With `outlier_safe` (student exports, `use_outlier_safe_layer_norm`; and whenever int8 is simulated) the same
  function is computed in steps that full-int8 TFLite can represent. In int8 every op's output has one range per
  tensor, and the squares above span the square of the inputs' range: a hidden state with an outlier 20x its
  typical value makes the squares span 400x, the typical squares round to 0 and the variance goes wrong (the demo
  student's full-int8 file lost 1.37 points, mostly there, as TFLite's quantization debugger showed). So:

      c = x - mean(x);  s = mean(|c|);  u = c * rsqrt(s^2 + epsilon)     (mean |u| = 1 in every token)
      i = clip(u, -k, k) with k = OUTLIER_SPLIT, written as u - relu(u - k) + relu(-k - u)
      variance = mean(i * i) + mean((u - i) * (u + i))                  (= mean(u^2): typical and outlier parts)
      y = u * rsqrt(variance + epsilon) * gamma + beta

  which equals the formula above to float32 rounding. Every tensor has a range that fits all tokens, and the
  outliers' squares get a tensor of their own. The float path stays the short one for training and for teachers.
  While int8 is simulated (`tf_distill.quantization_aware`) every step's output is quantised, as TFLite quantises
  each op's output.
  """

  simulates_int8 = True
  outlier_safe = False

  def call(self, inputs, training=None):
    x = tf.cast(inputs, tf.float32) if inputs.dtype in (tf.float16, tf.bfloat16) else inputs
    centered = int8(self, "centered", x - tf.reduce_mean(x, axis=-1, keepdims=True), training)
    if self.outlier_safe or is_simulated(self):
      normalized = self._outlier_safe_normalize(centered, training)
    else:
      variance = tf.reduce_mean(centered * centered, axis=-1, keepdims=True)
      normalized = centered * tf.math.rsqrt(variance + self.epsilon)
    outputs = int8(self, "output", normalized * tf.cast(self.gamma, x.dtype) + tf.cast(self.beta, x.dtype),
                   training)
    return tf.cast(outputs, inputs.dtype)

  def _outlier_safe_normalize(self, centered, training):
    """(x - mean) / std in int8-representable steps (class docstring)."""
    step = lambda point, t: int8(self, point, t, training)
    mean = lambda t: tf.reduce_mean(t, axis=-1, keepdims=True)
    scale = step("scale", mean(tf.abs(centered)))
    u = step("scaled", centered * step("inverse_scale", tf.math.rsqrt(scale * scale + self.epsilon)))
    # clip(u, -k, k) as two ReLUs (u keeps its own int8 range; a clip would give u the clip's), no NEG (not int8)
    inliers = step("inliers", u - tf.nn.relu(u - OUTLIER_SPLIT) + tf.nn.relu((-OUTLIER_SPLIT) - u))
    variance = step("variance", step("inlier_variance", mean(step("inlier_squares", inliers * inliers))) +
                    step("outlier_variance", mean(step("outlier_squares", (u - inliers) * (u + inliers)))))
    return step("normalized", u * step("inverse_std", tf.math.rsqrt(variance + self.epsilon)))


def use_outlier_safe_layer_norm(model: keras.Model) -> keras.Model:
  """Makes every `LayerNorm` of `model` compute in its outlier-safe steps (for a model about to be exported for
  TFLite); the outputs are the same to float32 rounding. Returns `model`."""
  for layer in model.submodules:
    if isinstance(layer, LayerNorm):
      layer.outlier_safe = True
  return model


def _layer_norm(config: BertConfig, name: str) -> LayerNorm:
  return LayerNorm(epsilon=config.layer_norm_eps, name=name)


class BertEmbeddings(keras.layers.Layer):
  """Word + position + token-type embeddings, LayerNorm, dropout."""

  simulates_int8 = True

  def __init__(self, config: BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    def embedding(rows, name):
      return Int8Embedding(rows, config.hidden_size, embeddings_initializer=_initializer(config), name=name)
    self.word_embeddings = embedding(config.vocab_size, "word_embeddings")
    self.position_embeddings = embedding(config.max_position_embeddings, "position_embeddings")
    self.token_type_embeddings = embedding(config.type_vocab_size, "token_type_embeddings")
    self.layer_norm = _layer_norm(config, "LayerNorm")
    self.dropout = ResumableDropout(config.hidden_dropout_prob, name="dropout")

  def call(self, input_ids, segment_ids, training=None):
    seq_len = tf.shape(input_ids)[1]
    positions = tf.expand_dims(self.position_embeddings(tf.range(seq_len)), 0)
    x = int8(self, "sum", self.word_embeddings(input_ids) + positions + self.token_type_embeddings(segment_ids),
             training)
    return self.dropout(self.layer_norm(x, training=training), training=training)


class BertLayer(keras.layers.Layer):
  """One post-LN transformer block: self-attention, add & norm, feed-forward, add & norm."""

  simulates_int8 = True

  def __init__(self, config: BertConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.num_heads = config.num_attention_heads
    self.head_size = config.hidden_size // config.num_attention_heads
    self.query = _dense(config.hidden_size, config, "query")
    self.key = _dense(config.hidden_size, config, "key")
    self.value = _dense(config.hidden_size, config, "value")
    self.attention_output = _dense(config.hidden_size, config, "attention_output")
    self.attention_layer_norm = _layer_norm(config, "attention_LayerNorm")
    self.intermediate = _dense(config.intermediate_size, config, "intermediate",
                               activation=_ACTIVATIONS[config.hidden_act])
    self.output_dense = _dense(config.hidden_size, config, "output")
    self.output_layer_norm = _layer_norm(config, "output_LayerNorm")
    self.attention_dropout = ResumableDropout(config.attention_probs_dropout_prob, name="attention_dropout")
    self.hidden_dropout = ResumableDropout(config.hidden_dropout_prob, name="hidden_dropout")

  def _split_heads(self, x, batch, seq):
    """[batch * seq, hidden] -> [batch, heads, seq, head_size]."""
    x = tf.reshape(x, [batch, seq, self.num_heads, self.head_size])
    return tf.transpose(x, [0, 2, 1, 3])

  def call(self, x, key_mask, training=None, first_token_only=False):
    """x: [batch, seq, hidden]; key_mask: [batch, 1, 1, seq] in x's dtype, 1 for tokens and 0 for padding.

    With `first_token_only` only position 0 ([CLS]) attends and goes through the feed-forward block: every output
    then has 1 in place of the query sequence axis (keys and values still cover the whole sequence). The [CLS]
    output is the same as in the full computation.

    The dense layers see [batch * seq, hidden] matrices: on a rank-3 input Keras' Dense reshapes between its
    MatMul and its BiasAdd, which keeps TensorFlow's CPU graph rewrite from fusing the bias and the activation
    into the matmul (oneDNN's fused MatMul); in two dimensions they fuse, the same arithmetic.
    """
    batch, seq, width = tf.shape(x)[0], tf.shape(x)[1], self.config.hidden_size
    query_seq = 1 if first_token_only else seq
    flat = tf.reshape(x, [batch * seq, width])
    query_input = x[:, 0] if first_token_only else flat
    dense = lambda layer, t: layer(t, training=training)
    queries, keys, values = dense(self.query, query_input), dense(self.key, flat), dense(self.value, flat)
    # Scaling q ([batch * seq, hidden]) rather than the scores ([batch, heads, seq, seq]) is the same product with
    # fewer multiplies: 4x fewer at 12 heads and length 128.
    q = self._split_heads(int8(self, "scaled_queries", queries * (self.head_size ** -0.5), training), batch,
                          query_seq)
    k, v = self._split_heads(keys, batch, seq), self._split_heads(values, batch, seq)
    scores = int8(self, "scores", tf.matmul(q, k, transpose_b=True), training)
    probs = tf.nn.softmax(int8(self, "masked_scores", masked_scores(scores, key_mask), training), axis=-1)
    if is_simulated(self):
      probs = fixed_range(probs, *UNIT_RANGE)  # TFLite's int8 SOFTMAX output: scale 1/256, zero point -128
    context = int8(self, "context", tf.matmul(self.attention_dropout(probs, training=training), v), training)
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * query_seq, width])
    attended = self.attention_layer_norm(int8(
        self, "attention_residual",
        query_input + self.hidden_dropout(dense(self.attention_output, context), training=training), training),
        training=training)
    ffn = self.hidden_dropout(dense(self.output_dense, dense(self.intermediate, attended)), training=training)
    out = self.output_layer_norm(int8(self, "output_residual", attended + ffn, training), training=training)
    unflatten = lambda t, length: tf.reshape(t, [batch, length, width])
    return {"hidden_states": unflatten(out, query_seq), "attention_scores": scores, "attention_probs": probs,
            "attention_queries": unflatten(queries, query_seq), "attention_keys": unflatten(keys, seq),
            "attention_values": unflatten(values, seq)}


class BertClassifier(keras.Model):
  """BERT encoder + a head (`HEADS`: tanh pooler over [CLS], or every position) + linear classifier; returns the dict
  described in the module docstring."""

  def __init__(self, config: BertConfig, **kwargs):
    kwargs.setdefault("name", "bert_classifier")
    super().__init__(**kwargs)
    self.config = config.validate()
    self.embeddings = BertEmbeddings(config, name="embeddings")
    self.encoder_layers = [BertLayer(config, name=f"layer_{i}") for i in range(config.num_hidden_layers)]
    self.pooler = (_dense(config.hidden_size, config, "pooler", activation="tanh") if config.head == "pooled"
                   else None)
    self.classifier_dropout = ResumableDropout(config.hidden_dropout_prob, name="classifier_dropout")
    self.classifier = _dense(config.num_labels, config, "classifier")

  def call(self, inputs, training=None, logits_only=False, mask_padding=True):
    """The output dict of the module docstring; with `logits_only`, {"logits": ...} alone.

    `mask_padding=False` leaves the span head's padding positions at their computed logits instead of MASKED_LOGIT
    (what TFLite files are converted from: `tf_distill.export.serving`).

    `logits_only` skips the work the logits do not depend on: with the pooled head, in the last layer only [CLS]
    attends and goes through the feed-forward block (for 2 layers at sequence length 128 that is ~40% of the forward
    FLOPs). Serving, dev evaluation and training steps without intermediate losses use it; the logits are the same.
    The token head reads every position, so it computes the last layer in full.
    """
    input_ids = inputs["input_ids"]
    x = self.embeddings(input_ids, inputs["segment_ids"], training=training)
    mask = tf.cast(inputs["input_mask"], x.dtype)  # x.dtype: the compute dtype (float16/bfloat16 under mixed precision)
    key_mask = tf.expand_dims(tf.expand_dims(mask, 1), 1)  # [batch, 1, 1, seq]
    outputs = {"embeddings": x, **{key: [] for key in LAYER_OUTPUTS}}
    last = len(self.encoder_layers) - 1 if self.pooler is not None else None  # the token head reads every position
    for i, layer in enumerate(self.encoder_layers):
      layer_outputs = layer(x, key_mask, training=training, first_token_only=logits_only and i == last)
      for key in LAYER_OUTPUTS:
        outputs[key].append(layer_outputs[key])
      x = layer_outputs["hidden_states"]
    logits = self._head_logits(x, training, inputs["input_mask"] if mask_padding else None)
    outputs = {"logits": logits} if logits_only else {**outputs, "logits": logits}
    # Under a mixed-precision policy the layers compute in float16/bfloat16; every output leaves as float32, so the
    # losses (and a float32 teacher's outputs they compare with) need no casts.
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs) if x.dtype != tf.float32 else outputs

  def _head_logits(self, x, training, input_mask=None):
    """The classifier over the head's features (`HEADS`): [batch, num_labels], [batch, seq, num_labels], or for the
    span head float32 [batch, 2, seq] with MASKED_LOGIT where `input_mask` (int [batch, seq]) is 0:

        logits[b, k, s] = W_k . h[b, s] + c_k  if input_mask[b, s] else MASKED_LOGIT     (k = 0 start, 1 end)

    (input_mask None: W_k . h[b, s] + c_k everywhere.)
    """
    classify = lambda t: self.classifier(self.classifier_dropout(t, training=training), training=training)
    if self.pooler is not None:
      return classify(self.pooler(x[:, 0], training=training))
    batch, seq = tf.shape(x)[0], tf.shape(x)[1]  # Dense on [batch * seq, hidden] matrices, as in BertLayer
    logits = classify(tf.reshape(x, [batch * seq, self.config.hidden_size]))
    logits = tf.reshape(logits, [batch, seq, self.config.num_labels])
    if self.config.head != "span":
      return logits
    logits = tf.transpose(tf.cast(logits, tf.float32), [0, 2, 1])  # [batch, 2, seq]
    if input_mask is None:
      return logits
    real = tf.reshape(tf.cast(input_mask, tf.bool), [batch, 1, seq])  # TFLite has no bool [:, None, :] slice
    return tf.where(real, logits, tf.constant(MASKED_LOGIT, tf.float32))

  def dummy_inputs(self, batch_size: int = 1, seq_len: int = 8) -> Dict[str, tf.Tensor]:
    ids = tf.ones([batch_size, seq_len], tf.int32)
    return {"input_ids": ids, "input_mask": ids, "segment_ids": tf.zeros_like(ids)}

  def build_weights(self) -> "BertClassifier":
    """Creates all variables by running one dummy batch."""
    self(self.dummy_inputs(), training=False)
    return self

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(BertConfig.from_dict(config["config"]), name=config.get("name"))


def input_signature(max_seq_length: Optional[int] = None) -> Dict[str, tf.TensorSpec]:
  """The `serving_default` inputs shared by teacher and student: int32 [batch, seq]."""
  return {name: tf.TensorSpec([None, max_seq_length], tf.int32, name=name)
          for name in ("input_ids", "input_mask", "segment_ids")}

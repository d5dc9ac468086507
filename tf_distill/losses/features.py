"""Intermediate-layer distillation losses: hidden states, attention maps and self-attention relations.

Every loss is a plain function `(teacher, student, mask=None, **options) -> float32 scalar`, differentiable in
`student`, usable inside `tf.function` with a dynamic batch size and sequence length. `FEATURE_LOSSES` maps each name to
a `FeatureLoss`, which also says which model outputs the loss reads, so the distiller asks the teacher only for those.

Shapes, per matched layer, as returned by `tf_distill.bert` (teacher and student may differ in width and head count):

  hidden:  float32 [batch, seq, hidden]          (`hidden_states[l - 1]`, or `embeddings` for layer 0)
  scores:  float32 [batch, heads, seq, seq]      (`attention_scores`: q.k / sqrt(d_head), before the mask)
  probs:   float32 [batch, heads, seq, seq]      (`attention_probs`: softmax over the masked scores)
  q, k, v: float32 [batch, seq, hidden]          (`attention_queries/keys/values`: projections, heads concatenated)
  mask:    int32 or float [batch, seq]           (`input_mask`: 1 for real tokens, 0 for padding; None = all real)

Notation: m_bi is the mask of token i in example b, n = sum_bi m_bi the number of real tokens in the batch. "Mean over
real tokens" is one mean over all real tokens of the batch (token-weighted, as TinyBERT and TextBrewer compute it), so
padding never counts, in a sum or in a denominator. Padded keys are removed from every softmax (their logit is set to
-1e9 before it, so they get probability exactly 0), and padded query rows are left out of every mean.
"""

import dataclasses
import math
from typing import Any, Callable, Mapping, Optional, Tuple, Union

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from tf_distill.registry import Registry

_MASKED_LOGIT = -1e9
_NORM_EPSILON = 1e-12  # on squared norms, as tf.math.l2_normalize


@dataclasses.dataclass(frozen=True)
class FeatureLoss:
  """A registered feature loss and what it needs from the models.

  Attributes:
    fn: `(teacher, student, mask=None, **options) -> float32 scalar`.
    outputs: model output keys the loss reads at a matched layer (`tf_distill.bert.OUTPUT_KEYS`). With one key `fn`
      gets that tensor; with several (qkv_relation) it gets a tuple in this order.
    needs_projection: the loss compares teacher and student vectors unit by unit, so the student's width must equal the
      teacher's; when they differ the caller maps each student tensor through a `Projection(teacher_width)` first.
    num_layers: 1, or 2 for losses between two layers of each model (fsp): `fn` then gets `(first, second)` pairs and a
      match names two layers on each side.
    options: keyword options `fn` requires that only the caller knows (e.g. `num_heads` from the student's config).
  """
  fn: Callable[..., tf.Tensor]
  outputs: Tuple[str, ...]
  needs_projection: bool
  num_layers: int = 1
  options: Tuple[str, ...] = ()

  @property
  def accepts_embeddings(self) -> bool:
    """Whether layer 0 (the embedding output) is valid: only for losses on hidden states."""
    return self.outputs == ("hidden_states",)

  def select(self, model_outputs: Mapping[str, Any], layer: Union[int, Tuple[int, int]]):
    """Picks this loss's input from a model's output dict at `layer` (1-based; 0 = embeddings).

    Works for the student's dict of per-layer lists and for the teacher's `distill` signature, whose per-layer outputs
    are stacked as [layers, ...]. Returns a tensor, or a tuple for several outputs or two layers.
    """
    if self.num_layers == 2:
      first, second = layer
      return (self._select_one(model_outputs, first), self._select_one(model_outputs, second))
    return self._select_one(model_outputs, layer)

  def _select_one(self, model_outputs, layer):
    tensors = tuple(_layer_output(model_outputs, key, layer) for key in self.outputs)
    return tensors[0] if len(tensors) == 1 else tensors


def _layer_output(model_outputs: Mapping[str, Any], key: str, layer: int):
  if layer == 0:
    if key != "hidden_states":
      raise ValueError(f"layer 0 is the embedding output, which has no {key!r}; use layers >= 1 for attention losses")
    return model_outputs["embeddings"]
  if layer < 0:
    raise ValueError(f"layers are 1-based (0 = embeddings), got layer {layer}")
  return model_outputs[key][layer - 1]


FEATURE_LOSSES = Registry("feature loss")


def feature_loss(name: str) -> FeatureLoss:
  """The registry entry for `name`; LookupError listing the known names on a miss."""
  return FEATURE_LOSSES.get(name)


def feature_loss_fn(name: str) -> Callable[..., tf.Tensor]:
  """The loss function registered as `name`; LookupError listing the known names on a miss."""
  return FEATURE_LOSSES.get(name).fn


class Projection(keras.layers.Layer):
  """TinyBERT's learnable map from the student's width to the teacher's: h_s W_h + b.

  W_h: [student_hidden, units], b: [units] (TinyBERT's `fit_dense` is an `nn.Linear`, so it has a bias). Maps
  float32 [..., student_hidden] -> [..., units]; apply it to the student's states before a loss with
  `needs_projection` whenever the widths differ. It is trained with the student and dropped after distillation.
  """

  def __init__(self, units: int, use_bias: bool = True, initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    if units < 1:
      raise ValueError(f"Projection units must be >= 1, got {units}")
    self.units = int(units)
    self.use_bias = bool(use_bias)
    self.initializer_range = float(initializer_range)

  def build(self, input_shape):
    width = tf.TensorShape(input_shape)[-1]
    if width is None:
      raise ValueError(f"Projection needs a known input width, got input shape {input_shape}")
    self.kernel = self.add_weight("kernel", shape=[int(width), self.units],
                                  initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range))
    self.bias = self.add_weight("bias", shape=[self.units], initializer="zeros") if self.use_bias else None
    super().build(input_shape)

  def call(self, inputs):
    # One 2-D matmul over all positions. (tf.einsum("...i,ij->...j") took ~1 s per call on a [32, 64, 312] batch on
    # CPU, most of a TinyBERT step.)
    shape = tf.shape(inputs)
    flat = tf.matmul(tf.reshape(inputs, [-1, shape[-1]]), self.kernel)
    outputs = tf.reshape(flat, tf.concat([shape[:-1], [self.units]], axis=0))
    return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs

  def get_config(self):
    return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
            "initializer_range": self.initializer_range}


# ---------------------------------------------------------------------------------------------------------- helpers


def _float(x) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(x), tf.float32)


def _token_mask(mask, batch_size, seq_len) -> tf.Tensor:
  """float32 [batch, seq]: the mask, or ones when there is none."""
  if mask is None:
    return tf.ones(tf.stack([batch_size, seq_len]), tf.float32)
  return tf.cast(mask, tf.float32)


def _check_equal_widths(teacher: tf.Tensor, student: tf.Tensor, loss: str) -> None:
  t, s = teacher.shape[-1], student.shape[-1]
  if t is not None and s is not None and t != s:
    raise ValueError(f"{loss} compares teacher and student unit by unit but their widths differ (teacher {t}, "
                     f"student {s}); map the student through Projection({t}) first")


def _check_equal_heads(teacher: tf.Tensor, student: tf.Tensor, loss: str) -> None:
  if teacher.shape.rank != 4 or student.shape.rank != 4:
    raise ValueError(f"{loss} takes attention maps [batch, heads, seq, seq]; got teacher shape {teacher.shape} and "
                     f"student shape {student.shape}")
  t, s = teacher.shape[1], student.shape[1]
  if t is not None and s is not None and t != s:
    raise ValueError(f"{loss} compares attention maps head by head, so it needs equal head counts; the teacher has "
                     f"{t} heads and the student {s}. Use qkv_relation, which works for any head counts")


def _masked_log_softmax(logits: tf.Tensor, key_mask: tf.Tensor) -> tf.Tensor:
  """log softmax over the last axis with padded keys removed; key_mask is bool [batch, 1, 1, seq]."""
  return tf.nn.log_softmax(tf.where(key_mask, logits, _MASKED_LOGIT), axis=-1)


def _row_kl(teacher_logits: tf.Tensor, student_logits: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
  """mean over heads and real query rows of KL(softmax(teacher row) || softmax(student row)), keys masked.

  teacher_logits, student_logits: [batch, heads, seq, seq]; m: float32 [batch, seq].
  """
  key_mask = m[:, tf.newaxis, tf.newaxis, :] > 0
  log_p = _masked_log_softmax(teacher_logits, key_mask)
  log_q = _masked_log_softmax(student_logits, key_mask)
  kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)  # [batch, heads, seq]; padded keys have p = 0
  heads = tf.cast(tf.shape(kl)[1], tf.float32)
  return tf.math.divide_no_nan(tf.reduce_sum(kl * m[:, tf.newaxis, :]), heads * tf.reduce_sum(m))


def _split_heads(x: tf.Tensor, num_heads: int) -> tf.Tensor:
  """[batch, seq, hidden] -> [batch, num_heads, seq, hidden / num_heads]; hidden is the heads concatenated."""
  shape = tf.shape(x)
  x = tf.reshape(x, tf.stack([shape[0], shape[1], num_heads, x.shape[-1] // num_heads]))
  return tf.transpose(x, [0, 2, 1, 3])


def _relation_logits(x: tf.Tensor, num_heads: int) -> tf.Tensor:
  """X_r X_r^T / sqrt(d_r) per relation head r: [batch, seq, hidden] -> [batch, num_heads, seq, seq]."""
  heads = _split_heads(x, num_heads)
  return tf.matmul(heads, heads, transpose_b=True) / math.sqrt(x.shape[-1] // num_heads)


def _check_relation_heads(teacher: tf.Tensor, student: tf.Tensor, num_heads: Optional[int], loss: str,
                          option: str) -> int:
  if num_heads is None:
    raise ValueError(f"{loss} needs {option}=<int>, the number of heads to split both models' vectors into (e.g. the "
                     "student's num_attention_heads)")
  if int(num_heads) != num_heads or num_heads < 1:
    raise ValueError(f"{loss}: {option} must be a positive integer, got {num_heads!r}")
  for side, x in (("teacher", teacher), ("student", student)):
    if x.shape.rank != 3 or x.shape[-1] is None:
      raise ValueError(f"{loss} takes [batch, seq, hidden] with a known hidden size; the {side}'s shape is {x.shape}")
    if x.shape[-1] % num_heads:
      raise ValueError(f"{loss}: {option}={num_heads} must divide the {side}'s hidden size {x.shape[-1]} (teacher "
                       f"{teacher.shape[-1]}, student {student.shape[-1]}); pick a common divisor")
  return int(num_heads)


def _relation_kl(teacher: tf.Tensor, student: tf.Tensor, mask, num_heads: int) -> tf.Tensor:
  m = _token_mask(mask, tf.shape(teacher)[0], tf.shape(teacher)[1])
  return _row_kl(_relation_logits(teacher, num_heads), _relation_logits(student, num_heads), m)


def _masked_token_mean(per_token: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
  """sum_bi m_bi x_bi / n for per_token [batch, seq]."""
  return tf.math.divide_no_nan(tf.reduce_sum(per_token * m), tf.reduce_sum(m))


# ---------------------------------------------------------------------------------------------------- hidden states


def hidden_mse(teacher, student, mask=None):
  """TinyBERT hidden-state / embedding loss (Jiao et al., 2020) on already projected student states.

    L = 1 / (n * d) * sum_{b,i} m_bi * sum_k (H^T_bik - H^S_bik)^2,     H^S = student states after W_h (`Projection`)

  Args:
    teacher: float32 [batch, seq, d].
    student: float32 [batch, seq, d], the student's states mapped to the teacher's width d.
    mask: [batch, seq] or None.
  """
  t, s = _float(teacher), _float(student)
  _check_equal_widths(t, s, "hidden_mse")
  m = _token_mask(mask, tf.shape(t)[0], tf.shape(t)[1])
  per_token = tf.reduce_mean(tf.math.squared_difference(t, s), axis=-1)  # [batch, seq]
  return _masked_token_mean(per_token, m)


def pkd_cls(teacher, student, mask=None):
  """BERT-PKD patient loss (Sun et al., 2019) on the [CLS] vector (position 0) of one matched layer.

    L = 1 / batch * sum_b || h^T_b0 / ||h^T_b0||_2 - h^S_b0 / ||h^S_b0||_2 ||_2^2

  The squared distance is summed over hidden units as in the paper's L_PT (and TextBrewer), so L is in [0, 4]. [CLS] is
  always a real token, so `mask` is not needed.

  Args:
    teacher: float32 [batch, seq, d] (or [batch, d], taken as the [CLS] vectors).
    student: float32 [batch, seq, d] (or [batch, d]), the same width as the teacher (project first if not).
    mask: unused.
  """
  del mask
  t, s = _float(teacher), _float(student)
  _check_equal_widths(t, s, "pkd_cls")
  t_cls = t[:, 0] if t.shape.rank == 3 else t
  s_cls = s[:, 0] if s.shape.rank == 3 else s
  t_cls = tf.math.l2_normalize(t_cls, axis=-1, epsilon=_NORM_EPSILON)
  s_cls = tf.math.l2_normalize(s_cls, axis=-1, epsilon=_NORM_EPSILON)
  return tf.reduce_mean(tf.reduce_sum(tf.math.squared_difference(t_cls, s_cls), axis=-1))


def cosine(teacher, student, mask=None):
  """DistilBERT cosine embedding loss (Sanh et al., 2019) on hidden states.

    L = 1 / n * sum_{b,i} m_bi * (1 - <h^T_bi, h^S_bi> / (||h^T_bi|| ||h^S_bi||))

  Args:
    teacher: float32 [batch, seq, d].
    student: float32 [batch, seq, d], the same width as the teacher (project first if not).
    mask: [batch, seq] or None.
  """
  t, s = _float(teacher), _float(student)
  _check_equal_widths(t, s, "cosine")
  m = _token_mask(mask, tf.shape(t)[0], tf.shape(t)[1])
  cos = tf.reduce_sum(tf.math.l2_normalize(t, axis=-1, epsilon=_NORM_EPSILON) *
                      tf.math.l2_normalize(s, axis=-1, epsilon=_NORM_EPSILON), axis=-1)  # [batch, seq]
  return _masked_token_mean(1.0 - cos, m)


def mobilebert_fmt(teacher, student, mask=None, hidden_weight=100.0, mean_weight=5000.0, variance_weight=5.0,
                   epsilon=1e-12):
  """MobileBERT feature-map transfer (Sun et al., 2020) with the mean / variance terms of its released code.

  The paper's FMT is the MSE between feature maps. The released layer-wise recipe (google-research `mobilebert`
  run_pretraining.py and Model Garden's MobileBERT distillation) computes that MSE between per-token layer-normalised
  maps (no learned scale/shift) and adds two terms matching each token's mean and variance over hidden units:

    mu_bi = 1/d sum_k H_bik,   var_bi = 1/d sum_k (H_bik - mu_bi)^2,   LN(H)_bik = (H_bik - mu_bi) / sqrt(var_bi + eps)
    L = hidden_weight   * 1 / (n * d) * sum_{b,i} m_bi sum_k (LN(H^T)_bik - LN(H^S)_bik)^2
      + mean_weight     * 1 / n       * sum_{b,i} m_bi (mu^T_bi - mu^S_bi)^2
      + variance_weight * 1 / n       * sum_{b,i} m_bi |var^T_bi - var^S_bi|

  The default weights are that recipe's `hidden_distill_factor=100`, `beta_distill_factor=5000` and
  `gamma_distill_factor=5` (its attention KL has weight 1), so `mobilebert_fmt:1,attention_kl:1` is its layer-wise
  objective; `mean_weight=variance_weight=0, hidden_weight=1` leaves a plain MSE of normalised feature maps. Unlike the
  released code, padded tokens are excluded.

  Args:
    teacher: float32 [batch, seq, d].
    student: float32 [batch, seq, d], the same width as the teacher (project first if not).
    mask: [batch, seq] or None.
  """
  t, s = _float(teacher), _float(student)
  _check_equal_widths(t, s, "mobilebert_fmt")
  m = _token_mask(mask, tf.shape(t)[0], tf.shape(t)[1])
  t_mean, t_var = tf.nn.moments(t, axes=[-1], keepdims=True)
  s_mean, s_var = tf.nn.moments(s, axes=[-1], keepdims=True)
  t_norm = (t - t_mean) * tf.math.rsqrt(t_var + epsilon)
  s_norm = (s - s_mean) * tf.math.rsqrt(s_var + epsilon)
  feature = _masked_token_mean(tf.reduce_mean(tf.math.squared_difference(t_norm, s_norm), axis=-1), m)
  mean = _masked_token_mean(tf.math.squared_difference(t_mean, s_mean)[..., 0], m)
  variance = _masked_token_mean(tf.abs(t_var - s_var)[..., 0], m)
  return hidden_weight * feature + mean_weight * mean + variance_weight * variance


def fsp(teacher, student, mask=None):
  """FSP / Gram-matrix loss between two layers (Yim et al., 2017; TextBrewer's `fsp`).

    G(X1, X2)_b = 1 / n_b * sum_i m_bi X1_bi^T X2_bi          [batch, d1, d2],   n_b = sum_i m_bi
    L = 1 / (batch * d1 * d2) * sum_{b,k,l} (G(T1, T2)_bkl - G(S1, S2)_bkl)^2

  Args:
    teacher: (T1, T2), two layers' float32 [batch, seq, d1] and [batch, seq, d2] (the "flow" from T1 to T2).
    student: (S1, S2) of the same widths as the teacher's (project both first if not).
    mask: [batch, seq] or None.
  """
  if len(teacher) != 2 or len(student) != 2:
    raise ValueError(f"fsp takes two layers from each model, (first, second); got {len(teacher)} teacher and "
                     f"{len(student)} student tensors")
  t1, t2 = _float(teacher[0]), _float(teacher[1])
  s1, s2 = _float(student[0]), _float(student[1])
  _check_equal_widths(t1, s1, "fsp (first layer)")
  _check_equal_widths(t2, s2, "fsp (second layer)")
  m = _token_mask(mask, tf.shape(t1)[0], tf.shape(t1)[1])[..., tf.newaxis]  # [batch, seq, 1]
  length = tf.reduce_sum(m, axis=1, keepdims=True)  # [batch, 1, 1]

  def gram(x1, x2):
    return tf.math.divide_no_nan(tf.matmul(x1 * m, x2 * m, transpose_a=True), length)

  return tf.reduce_mean(tf.math.squared_difference(gram(t1, t2), gram(s1, s2)))


def mmd(teacher, student, mask=None):
  """Neuron selectivity transfer (Huang & Wang, 2017): MMD^2 with the polynomial kernel k(x, y) = (x^T y)^2 (d=2, c=0).

  Each hidden unit c of a model gives one sample: its activations over the real tokens of an example,
  f_c = m * H[:, c] / ||m * H[:, c]||_2  (a vector over tokens, padding zeroed). Per example b, with C_T and C_S units,

    MMD^2_b = 1/C_T^2 sum_{c,c'} k(f^T_c, f^T_c') + 1/C_S^2 sum_{c,c'} k(f^S_c, f^S_c')
              - 2/(C_T C_S) sum_{c,c'} k(f^T_c, f^S_c')
            = || F^T F^T' / C_T - F^S F^S' / C_S ||_F^2       (F = [f_1 .. f_C]: [seq, C]; F F': [seq, seq])
    L = 1 / batch * sum_b MMD^2_b

  The samples live in token space, so teacher and student may have different widths (no projection). TextBrewer's
  `mmd` is a different, unnormalised variant (an MSE between two layers' token-similarity matrices); this is the
  paper's.

  Args:
    teacher: float32 [batch, seq, C_T].
    student: float32 [batch, seq, C_S].
    mask: [batch, seq] or None.
  """
  t, s = _float(teacher), _float(student)
  m = _token_mask(mask, tf.shape(t)[0], tf.shape(t)[1])[..., tf.newaxis]

  def mean_embedding(x):  # (1/C) sum_c f_c f_c^T : [batch, seq, seq]
    f = tf.math.l2_normalize(x * m, axis=1, epsilon=_NORM_EPSILON)
    return tf.matmul(f, f, transpose_b=True) / tf.cast(tf.shape(x)[-1], tf.float32)

  return tf.reduce_mean(tf.reduce_sum(tf.math.squared_difference(mean_embedding(t), mean_embedding(s)), axis=[1, 2]))


# -------------------------------------------------------------------------------------------------------- attention


def _attention_mse(teacher, student, mask, loss):
  t, s = _float(teacher), _float(student)
  _check_equal_heads(t, s, loss)
  m = _token_mask(mask, tf.shape(t)[0], tf.shape(t)[2])
  pairs = m[:, tf.newaxis, :, tf.newaxis] * m[:, tf.newaxis, tf.newaxis, :]  # [batch, 1, seq, seq]
  heads = tf.cast(tf.shape(t)[1], tf.float32)
  return tf.math.divide_no_nan(tf.reduce_sum(tf.math.squared_difference(t, s) * pairs), heads * tf.reduce_sum(pairs))


def attention_mse_scores(teacher, student, mask=None):
  """TinyBERT attention loss (Jiao et al., 2020) on the raw scores q.k / sqrt(d_head), before masking and softmax.

    P_bij = m_bi m_bj   (query i and key j both real)
    L = 1 / (heads * sum_bij P_bij) * sum_{b,a,i,j} P_bij (A^T_baij - A^S_baij)^2

  Args:
    teacher: float32 [batch, heads, seq, seq].
    student: float32 [batch, heads, seq, seq]; the same head count (ValueError naming both otherwise).
    mask: [batch, seq] or None.
  """
  return _attention_mse(teacher, student, mask, "attention_mse_scores")


def attention_mse_probs(teacher, student, mask=None):
  """`attention_mse_scores` on the attention probabilities (softmax over the masked scores).

    L = 1 / (heads * sum_bij P_bij) * sum_{b,a,i,j} P_bij (p^T_baij - p^S_baij)^2,   P_bij = m_bi m_bj

  Args:
    teacher: float32 [batch, heads, seq, seq].
    student: float32 [batch, heads, seq, seq]; the same head count.
    mask: [batch, seq] or None.
  """
  return _attention_mse(teacher, student, mask, "attention_mse_probs")


def attention_kl(teacher, student, mask=None):
  """Attention-transfer KL (MobileBERT, Sun et al., 2020; MiniLM's attention distributions, Wang et al., 2020).

  Computed from the raw scores, so the distributions are exactly the models' attention probabilities (softmax over
  real keys) and the logs are exact:

    p_baij = softmax_{j: m_bj = 1}(A^T_bai.)_j,   q_baij = the same for the student
    L = 1 / (heads * n) * sum_{b,a,i} m_bi * sum_j p_baij (log p_baij - log q_baij)

  Args:
    teacher: float32 [batch, heads, seq, seq] attention scores.
    student: float32 [batch, heads, seq, seq] attention scores; the same head count.
    mask: [batch, seq] or None.
  """
  t, s = _float(teacher), _float(student)
  _check_equal_heads(t, s, "attention_kl")
  return _row_kl(t, s, _token_mask(mask, tf.shape(t)[0], tf.shape(t)[2]))


# -------------------------------------------------------------------------------------------------------- relations


def value_relation(teacher, student, mask=None, num_heads=None):
  """MiniLM value-relation transfer (Wang et al., 2020).

  V is split into `num_heads` heads of d_a = hidden / num_heads (each model with its own d_a), and per head

    VR_ba = softmax_{j: m_bj = 1}(V_ba V_ba^T / sqrt(d_a))            [seq, seq], padded keys removed
    L = 1 / (num_heads * n) * sum_{b,a,i} m_bi KL(VR^T_bai. || VR^S_bai.)

  Args:
    teacher: float32 [batch, seq, hidden_T] value projections (heads concatenated).
    student: float32 [batch, seq, hidden_S].
    mask: [batch, seq] or None.
    num_heads: heads to split both into (MiniLM: the attention head count); must divide hidden_T and hidden_S.
  """
  t, s = _float(teacher), _float(student)
  heads = _check_relation_heads(t, s, num_heads, "value_relation", "num_heads")
  return _relation_kl(t, s, mask, heads)


def qkv_relation(teacher, student, mask=None, num_relation_heads=None):
  """MiniLMv2 multi-head self-attention relation transfer (Wang et al., 2021), for any head counts and widths.

  Each of Q, K, V (heads concatenated) of both models is re-split into R = `num_relation_heads` relation heads of
  d_r = hidden / R (each model with its own d_r), and for X in {Q, K, V}

    R^X_br = softmax_{j: m_bj = 1}(X_br X_br^T / sqrt(d_r))          [seq, seq], padded keys removed
    L = sum_{X in Q,K,V} 1 / (R * n) * sum_{b,r,i} m_bi KL(R^X,T_bri. || R^X,S_bri.)

  Args:
    teacher: (Q, K, V) of the teacher, each float32 [batch, seq, hidden_T].
    student: (Q, K, V) of the student, each float32 [batch, seq, hidden_S].
    mask: [batch, seq] or None.
    num_relation_heads: R; must divide hidden_T and hidden_S (e.g. the student's head count).
  """
  if len(teacher) != 3 or len(student) != 3:
    raise ValueError(f"qkv_relation takes (queries, keys, values) from each model; got {len(teacher)} teacher and "
                     f"{len(student)} student tensors")
  total = tf.constant(0.0)
  for t, s in zip(teacher, student):
    t, s = _float(t), _float(s)
    heads = _check_relation_heads(t, s, num_relation_heads, "qkv_relation", "num_relation_heads")
    total += _relation_kl(t, s, mask, heads)
  return total


_HIDDEN = ("hidden_states",)
_QKV = ("attention_queries", "attention_keys", "attention_values")

for _name, _entry in (
    ("hidden_mse", FeatureLoss(hidden_mse, _HIDDEN, needs_projection=True)),
    ("pkd_cls", FeatureLoss(pkd_cls, _HIDDEN, needs_projection=True)),
    ("cosine", FeatureLoss(cosine, _HIDDEN, needs_projection=True)),
    ("mobilebert_fmt", FeatureLoss(mobilebert_fmt, _HIDDEN, needs_projection=True)),
    ("fsp", FeatureLoss(fsp, _HIDDEN, needs_projection=True, num_layers=2)),
    ("mmd", FeatureLoss(mmd, _HIDDEN, needs_projection=False)),
    ("attention_mse_scores", FeatureLoss(attention_mse_scores, ("attention_scores",), needs_projection=False)),
    ("attention_mse_probs", FeatureLoss(attention_mse_probs, ("attention_probs",), needs_projection=False)),
    ("attention_kl", FeatureLoss(attention_kl, ("attention_scores",), needs_projection=False)),
    ("value_relation", FeatureLoss(value_relation, ("attention_values",), needs_projection=False,
                                   options=("num_heads",))),
    ("qkv_relation", FeatureLoss(qkv_relation, _QKV, needs_projection=False, options=("num_relation_heads",))),
):
  FEATURE_LOSSES.register(_name)(_entry)
del _name, _entry


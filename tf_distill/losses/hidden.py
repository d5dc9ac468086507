"""Feature losses on hidden states (and the embedding output, layer 0): float32 [batch, seq, hidden] per layer.

hidden_mse (TinyBERT), pkd_cls (BERT-PKD), cosine (DistilBERT), mobilebert_fmt (MobileBERT), fsp (two layers per
model) and mmd (neuron selectivity transfer). Shapes and notation: `tf_distill.losses.features`.
"""

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from tf_distill.losses.base import register_feature_loss
from tf_distill.losses.masking import masked_token_mean, to_float, token_mask

_NORM_EPSILON = 1e-12  # on squared norms, as tf.math.l2_normalize


def _check_equal_widths(teacher: tf.Tensor, student: tf.Tensor, loss: str) -> None:
  t, s = teacher.shape[-1], student.shape[-1]
  if t is not None and s is not None and t != s:
    raise ValueError(f"{loss} compares teacher and student unit by unit but their widths differ (teacher {t}, "
                     f"student {s}); map the student through Projection({t}) first")


def _same_width(teacher, student, mask, loss: str):
  """(teacher, student, m): both as float32 after checking their widths are equal, and m float32 [batch, seq]."""
  t, s = to_float(teacher), to_float(student)
  _check_equal_widths(t, s, loss)
  return t, s, token_mask(mask, tf.shape(t)[0], tf.shape(t)[1])


@register_feature_loss("hidden_mse", outputs=("hidden_states",), needs_projection=True)
def hidden_mse(teacher, student, mask=None):
  """TinyBERT hidden-state / embedding loss (Jiao et al., 2020) on already projected student states.

    L = 1 / (n * d) * sum_{b,i} m_bi * sum_k (H^T_bik - H^S_bik)^2,     H^S = student states after W_h (`Projection`)

  Args:
    teacher: float32 [batch, seq, d].
    student: float32 [batch, seq, d], the student's states mapped to the teacher's width d.
    mask: [batch, seq] or None.
  """
  t, s, m = _same_width(teacher, student, mask, "hidden_mse")
  per_token = tf.reduce_mean(tf.math.squared_difference(t, s), axis=-1)  # [batch, seq]
  return masked_token_mean(per_token, m)


@register_feature_loss("pkd_cls", outputs=("hidden_states",), needs_projection=True)
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
  t, s = to_float(teacher), to_float(student)
  _check_equal_widths(t, s, "pkd_cls")
  t_cls = t[:, 0] if t.shape.rank == 3 else t
  s_cls = s[:, 0] if s.shape.rank == 3 else s
  t_cls = tf.math.l2_normalize(t_cls, axis=-1, epsilon=_NORM_EPSILON)
  s_cls = tf.math.l2_normalize(s_cls, axis=-1, epsilon=_NORM_EPSILON)
  return tf.reduce_mean(tf.reduce_sum(tf.math.squared_difference(t_cls, s_cls), axis=-1))


@register_feature_loss("cosine", outputs=("hidden_states",), needs_projection=True)
def cosine(teacher, student, mask=None):
  """DistilBERT cosine embedding loss (Sanh et al., 2019) on hidden states.

    L = 1 / n * sum_{b,i} m_bi * (1 - <h^T_bi, h^S_bi> / (||h^T_bi|| ||h^S_bi||))

  Args:
    teacher: float32 [batch, seq, d].
    student: float32 [batch, seq, d], the same width as the teacher (project first if not).
    mask: [batch, seq] or None.
  """
  t, s, m = _same_width(teacher, student, mask, "cosine")
  cos = tf.reduce_sum(tf.math.l2_normalize(t, axis=-1, epsilon=_NORM_EPSILON) *
                      tf.math.l2_normalize(s, axis=-1, epsilon=_NORM_EPSILON), axis=-1)  # [batch, seq]
  return masked_token_mean(1.0 - cos, m)


@register_feature_loss("mobilebert_fmt", outputs=("hidden_states",), needs_projection=True)
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
  t, s, m = _same_width(teacher, student, mask, "mobilebert_fmt")
  t_mean, t_var = tf.nn.moments(t, axes=[-1], keepdims=True)
  s_mean, s_var = tf.nn.moments(s, axes=[-1], keepdims=True)
  t_norm = (t - t_mean) * tf.math.rsqrt(t_var + epsilon)
  s_norm = (s - s_mean) * tf.math.rsqrt(s_var + epsilon)
  feature = masked_token_mean(tf.reduce_mean(tf.math.squared_difference(t_norm, s_norm), axis=-1), m)
  mean = masked_token_mean(tf.math.squared_difference(t_mean, s_mean)[..., 0], m)
  variance = masked_token_mean(tf.abs(t_var - s_var)[..., 0], m)
  return hidden_weight * feature + mean_weight * mean + variance_weight * variance


@register_feature_loss("fsp", outputs=("hidden_states",), needs_projection=True, num_layers=2)
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
  t1, t2 = to_float(teacher[0]), to_float(teacher[1])
  s1, s2 = to_float(student[0]), to_float(student[1])
  _check_equal_widths(t1, s1, "fsp (first layer)")
  _check_equal_widths(t2, s2, "fsp (second layer)")
  m = token_mask(mask, tf.shape(t1)[0], tf.shape(t1)[1])[..., tf.newaxis]  # [batch, seq, 1]
  length = tf.reduce_sum(m, axis=1, keepdims=True)  # [batch, 1, 1]

  def gram(x1, x2):
    return tf.math.divide_no_nan(tf.matmul(x1 * m, x2 * m, transpose_a=True), length)

  return tf.reduce_mean(tf.math.squared_difference(gram(t1, t2), gram(s1, s2)))


@register_feature_loss("mmd", outputs=("hidden_states",), needs_projection=False)
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
  t, s = to_float(teacher), to_float(student)
  m = token_mask(mask, tf.shape(t)[0], tf.shape(t)[1])[..., tf.newaxis]

  def mean_embedding(x):  # (1/C) sum_c f_c f_c^T : [batch, seq, seq]
    f = tf.math.l2_normalize(x * m, axis=1, epsilon=_NORM_EPSILON)
    return tf.matmul(f, f, transpose_b=True) / tf.cast(tf.shape(x)[-1], tf.float32)

  return tf.reduce_mean(tf.reduce_sum(tf.math.squared_difference(mean_embedding(t), mean_embedding(s)), axis=[1, 2]))

"""Feature losses on attention maps, head by head: float32 [batch, heads, seq, seq] per layer, equal head counts.

attention_mse_scores and attention_mse_probs (TinyBERT) and attention_kl (MobileBERT, MiniLM). For different head
counts use `tf_distill.losses.relations.qkv_relation`. Shapes and notation: `tf_distill.losses.features`.
"""

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from tf_distill.losses.base import register_feature_loss
from tf_distill.losses.masking import row_kl, to_float, token_mask


def _check_equal_heads(teacher: tf.Tensor, student: tf.Tensor, loss: str) -> None:
  if teacher.shape.rank != 4 or student.shape.rank != 4:
    raise ValueError(f"{loss} takes attention maps [batch, heads, seq, seq]; got teacher shape {teacher.shape} and "
                     f"student shape {student.shape}")
  t, s = teacher.shape[1], student.shape[1]
  if t is not None and s is not None and t != s:
    raise ValueError(f"{loss} compares attention maps head by head, so it needs equal head counts; the teacher has "
                     f"{t} heads and the student {s}. Use qkv_relation, which works for any head counts")


def _attention_mse(teacher, student, mask, loss):
  t, s = to_float(teacher), to_float(student)
  _check_equal_heads(t, s, loss)
  m = token_mask(mask, tf.shape(t)[0], tf.shape(t)[2])
  pairs = m[:, tf.newaxis, :, tf.newaxis] * m[:, tf.newaxis, tf.newaxis, :]  # [batch, 1, seq, seq]
  heads = tf.cast(tf.shape(t)[1], tf.float32)
  return tf.math.divide_no_nan(tf.reduce_sum(tf.math.squared_difference(t, s) * pairs), heads * tf.reduce_sum(pairs))


@register_feature_loss("attention_mse_scores", outputs=("attention_scores",), needs_projection=False)
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


@register_feature_loss("attention_mse_probs", outputs=("attention_probs",), needs_projection=False)
def attention_mse_probs(teacher, student, mask=None):
  """`attention_mse_scores` on the attention probabilities (softmax over the masked scores).

    L = 1 / (heads * sum_bij P_bij) * sum_{b,a,i,j} P_bij (p^T_baij - p^S_baij)^2,   P_bij = m_bi m_bj

  Args:
    teacher: float32 [batch, heads, seq, seq].
    student: float32 [batch, heads, seq, seq]; the same head count.
    mask: [batch, seq] or None.
  """
  return _attention_mse(teacher, student, mask, "attention_mse_probs")


@register_feature_loss("attention_kl", outputs=("attention_scores",), needs_projection=False)
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
  t, s = to_float(teacher), to_float(student)
  _check_equal_heads(t, s, "attention_kl")
  return row_kl(t, s, token_mask(mask, tf.shape(t)[0], tf.shape(t)[2]))

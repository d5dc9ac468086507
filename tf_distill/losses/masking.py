"""Masked reductions the feature losses share (notation in `tf_distill.losses.features`).

m_bi is the mask of token i in example b and n = sum_bi m_bi. Padded keys are removed from every softmax (their logit
is set to -1e9 first, so they get probability exactly 0) and padded query rows are left out of every mean.
"""

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

MASKED_LOGIT = -1e9


def to_float(x) -> tf.Tensor:
  return tf.cast(tf.convert_to_tensor(x), tf.float32)


def token_mask(mask, batch_size, seq_len) -> tf.Tensor:
  """float32 [batch, seq]: the mask, or ones when there is none."""
  if mask is None:
    return tf.ones(tf.stack([batch_size, seq_len]), tf.float32)
  return tf.cast(mask, tf.float32)


def masked_token_mean(per_token: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
  """sum_bi m_bi x_bi / n for per_token [batch, seq]."""
  return tf.math.divide_no_nan(tf.reduce_sum(per_token * m), tf.reduce_sum(m))


def _masked_log_softmax(logits: tf.Tensor, key_mask: tf.Tensor) -> tf.Tensor:
  """log softmax over the last axis with padded keys removed; key_mask is bool [batch, 1, 1, seq]."""
  return tf.nn.log_softmax(tf.where(key_mask, logits, MASKED_LOGIT), axis=-1)


def row_kl(teacher_logits: tf.Tensor, student_logits: tf.Tensor, m: tf.Tensor) -> tf.Tensor:
  """mean over heads and real query rows of KL(softmax(teacher row) || softmax(student row)), keys masked.

  teacher_logits, student_logits: [batch, heads, seq, seq]; m: float32 [batch, seq].
  """
  key_mask = m[:, tf.newaxis, tf.newaxis, :] > 0
  log_p = _masked_log_softmax(teacher_logits, key_mask)
  log_q = _masked_log_softmax(student_logits, key_mask)
  kl = tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)  # [batch, heads, seq]; padded keys have p = 0
  heads = tf.cast(tf.shape(kl)[1], tf.float32)
  return tf.math.divide_no_nan(tf.reduce_sum(kl * m[:, tf.newaxis, :]), heads * tf.reduce_sum(m))

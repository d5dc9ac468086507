"""Feature losses on self-attention relations (MiniLM, MiniLMv2): softmax(X X^T / sqrt(d)) of the query, key or value
projections (float32 [batch, seq, hidden] per layer, heads concatenated), re-split into heads, so the two models may
differ in width and head count. Shapes and notation: `tf_distill.losses.features`.
"""

import math
from typing import Optional

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from tf_distill.losses.base import register_feature_loss
from tf_distill.losses.masking import row_kl, to_float, token_mask


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
  m = token_mask(mask, tf.shape(teacher)[0], tf.shape(teacher)[1])
  return row_kl(_relation_logits(teacher, num_heads), _relation_logits(student, num_heads), m)


@register_feature_loss("value_relation", outputs=("attention_values",), needs_projection=False,
                       options=("num_heads",))
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
  t, s = to_float(teacher), to_float(student)
  heads = _check_relation_heads(t, s, num_heads, "value_relation", "num_heads")
  return _relation_kl(t, s, mask, heads)


@register_feature_loss("qkv_relation", outputs=("attention_queries", "attention_keys", "attention_values"),
                       needs_projection=False, options=("num_relation_heads",))
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
    t, s = to_float(t), to_float(s)
    heads = _check_relation_heads(t, s, num_relation_heads, "qkv_relation", "num_relation_heads")
    total += _relation_kl(t, s, mask, heads)
  return total

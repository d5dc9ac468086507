"""Losses on logits: hard-label CE and the knowledge-distillation terms, for logits of any rank.

A position p is what one label belongs to: an example for a classifier, a token for a tagger. The rank of the labels
says which; the code is the same for both.

    classification  labels int32 [batch]        logits float32 [batch, num_labels]       p = b
    token tagging   labels int32 [batch, seq]   logits float32 [batch, seq, num_tags]    p = (b, s)
    span (QA)       labels int32 [batch, 2]     logits float32 [batch, 2, seq]           p = (b, k), k = start, end

In the span layout the classes of each softmax are the sequence positions (the head puts padding at
`tf_distill.bert.MASKED_LOGIT`, so it gets no probability) and every position p counts: the terms are the means of
the start and the end terms over the batch, (CE_start + CE_end) / 2 as in run_squad.

`mask` m: float32 with the labels' shape, 1 at the positions the terms read (`position_mask`: every example, or the
real tokens, input_mask = 1); None reads every position. `temperature` T: a scalar, float32 [batch] (one per example,
as TextBrewer's flsw/cwsm schedules give for a classifier) or float32 [batch, seq] (one per position, what they give
for per-token logits); it broadcasts over the positions and labels it lacks. Every term is a mean over the masked
positions of the batch,

    term = sum_p m_p * l_p / sum_p m_p        (the plain mean over the batch when mask is None),

so a classifier's terms are the batch means they always were, and a tagger's are means over its real tokens. Under
tf.distribute each replica takes this mean over its own positions, and `tf_distill.distiller.replica_share` scales it
by the replica's share of the global batch's positions (sum_p m_p here / over all replicas), so the summed gradients
are those of the mean over the global batch's positions: its examples for a classifier, its real tokens for a tagger.

The distillation objective built from these (Hinton et al., 2015) is

    L = (1 - alpha) * CE(y, softmax(z_s)) + alpha * KD(z_t, z_s, T)

where the soft terms below already carry the T^2 factor that keeps their gradients on the scale of the hard term.
"""

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.registry import Registry

KD_LOSSES = Registry("kd loss")


def position_mask(labels, input_mask, sequence_axis=1):
  """m, the positions the logits terms average over: float32 with the labels' shape.

  Args:
    labels: int32 [batch] (one label per example), [batch, seq] (one per token) or [batch, 2] (span positions).
    input_mask: int32 [batch, seq'] with seq' >= seq, 1 on real tokens ([CLS] and [SEP] included), 0 on padding.
    sequence_axis: the logits' axis over the input positions (`tf_distill.bert.LogitsLayout`): 1, per-token logits
      [batch, seq, tags] whose labels [batch, seq] run over the tokens (the default); 2, span logits [batch, 2, seq]
      whose labels [batch, 2] are two positions per example; None, one prediction per example.

  Returns:
    ones with the labels' shape, unless the labels run over the tokens (rank 2 and sequence_axis 1): every example
    (and both span rows) counts, whatever its length. For per-token labels [batch, seq], the input mask's first seq
    positions: every real token counts, padding never.
  """
  labels = tf.convert_to_tensor(labels)
  if labels.shape.rank == 1 or sequence_axis != 1:
    return tf.ones_like(labels, tf.float32)
  return tf.cast(input_mask[:, :tf.shape(labels)[1]], tf.float32)


def masked_mean(values, mask=None):
  """sum_i m_i v_i / sum_i m_i over all elements i of `values`, the mask broadcast over the trailing axes it lacks.

  Args:
    values: float32 [batch, ...]; its leading axes are the mask's.
    mask: float32 [batch] or [batch, seq] (the positions), or None: the plain mean, tf.reduce_mean(values).

  Returns:
    float32 scalar, 0 when the mask is all 0.
  """
  if mask is None:
    return tf.reduce_mean(values)
  m = tf.cast(mask, values.dtype)
  trailing = tf.ones([values.shape.rank - m.shape.rank], tf.int32)
  m = tf.broadcast_to(tf.reshape(m, tf.concat([tf.shape(m), trailing], 0)), tf.shape(values))
  return tf.math.divide_no_nan(tf.reduce_sum(values * m), tf.reduce_sum(m))


def hard_cross_entropy(labels, student_logits, mask=None):
  """CE(y, p) = sum_p m_p [y_p >= 0] * -log softmax(z_s)[p, y_p] / sum_p m_p.

  Args:
    labels: int32 [batch] or [batch, seq]; -1 (`tf_distill.data.tokenization.NO_LABEL`) where there is no label.
    student_logits: float32 [batch, num_labels] or [batch, seq, num_labels].
    mask: float32 with the labels' shape (`position_mask`), or None for every position.

  A position with label -1 contributes 0 and still counts in the denominator, so each position's hard loss is
  weighted 1 / sum m like its distillation terms, and the per-replica terms sum to the global mean under
  tf.distribute. For a classifier (mask None or ones) that is mean_b [y_b >= 0] CE_b: an unlabeled transfer-set
  example counts 0. For a tagger it is the CE of the tagged positions (first word pieces) over the number of real
  tokens: [CLS], [SEP], later word pieces and teacher-labelled rows (all -1) count 0, padding (m = 0) not at all.
  """
  labels = tf.cast(labels, tf.int32)
  per_position = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=student_logits)
  return masked_mean(tf.where(labels >= 0, per_position, tf.zeros_like(per_position)), mask)


def probability_shift(teacher_logits, labels):
  """TextBrewer's probability shift: per position, the teacher's largest logit and the true label's logit trade
  places, so the soft targets rank the true label first (positions the teacher gets right, and those with label -1,
  are unchanged).

  Args:
    teacher_logits: float32 [batch, num_labels] or [batch, seq, num_labels].
    labels: int32 [batch] or [batch, seq], the teacher logits' leading axes.
  """
  num_labels = tf.shape(teacher_logits)[-1]
  labels = tf.cast(labels, tf.int32)
  top_value = tf.reduce_max(teacher_logits, axis=-1, keepdims=True)
  label_value = tf.gather(teacher_logits, tf.maximum(labels, 0)[..., None], batch_dims=labels.shape.rank)
  is_label = tf.one_hot(labels, num_labels, on_value=True, off_value=False)
  is_top = tf.one_hot(tf.argmax(teacher_logits, axis=-1, output_type=tf.int32), num_labels, on_value=True,
                      off_value=False)
  shifted = tf.where(is_label, top_value, tf.where(is_top, label_value, teacher_logits))
  return tf.where(labels[..., None] >= 0, shifted, teacher_logits)


def _broadcast_temperature(temperature, logits):
  """T (a scalar, [batch] or [batch, seq]) as float32 with trailing axes of size 1 up to the logits' rank, so it
  broadcasts over the positions and labels it lacks: [batch] over [batch, seq, num_tags] is [batch, 1, 1]."""
  t = tf.cast(temperature, tf.float32)
  missing = len(logits.shape) - t.shape.rank
  if missing < 1:
    raise ValueError(f"temperature must be a scalar or one per example or position (at most the logits' leading "
                     f"axes, shape {logits.shape[:-1]}); got shape {t.shape}")
  return tf.reshape(t, tf.concat([tf.shape(t), tf.ones([missing], tf.int32)], 0))


@KD_LOSSES.register("ce")
def soft_cross_entropy(teacher_logits, student_logits, temperature, mask=None):
  """KD = sum_p m_p T_p^2 * sum_c -softmax(z_t,p / T_p)_c * log softmax(z_s,p / T_p)_c / sum_p m_p  (Hinton et al.).

  Args:
    teacher_logits, student_logits: float32 [batch, num_labels] or [batch, seq, num_labels].
    temperature: a scalar, float32 [batch] or [batch, seq]; T_p is the temperature of position p's example (or of p).
    mask: float32 [batch] or [batch, seq] (`position_mask`), or None for every position.

  For a classifier with mask None: T^2 * mean_b CE_b. For a tagger: T^2 * sum_{b,s} m_{b,s} CE_{b,s} / sum m.
  """
  t = _broadcast_temperature(temperature, student_logits)
  targets = tf.nn.softmax(teacher_logits / t, axis=-1)
  log_probs = tf.nn.log_softmax(student_logits / t, axis=-1)
  return masked_mean(tf.squeeze(t, -1) ** 2 * -tf.reduce_sum(targets * log_probs, axis=-1), mask)


@KD_LOSSES.register("kl")
def kl_divergence(teacher_logits, student_logits, temperature, mask=None):
  """KD = sum_p m_p T_p^2 * KL(softmax(z_t,p / T_p) || softmax(z_s,p / T_p)) / sum_p m_p; equals "ce" minus the
  teacher's entropy (same gradient). Shapes as `soft_cross_entropy`."""
  t = _broadcast_temperature(temperature, student_logits)
  log_targets = tf.nn.log_softmax(teacher_logits / t, axis=-1)
  log_probs = tf.nn.log_softmax(student_logits / t, axis=-1)
  kl = tf.reduce_sum(tf.exp(log_targets) * (log_targets - log_probs), axis=-1)
  return masked_mean(tf.squeeze(t, -1) ** 2 * kl, mask)


@KD_LOSSES.register("mse")
def logits_mse(teacher_logits, student_logits, temperature, mask=None):
  """KD = sum_p m_p * mean_c (z_t,pc - z_s,pc)^2 / sum_p m_p on raw logits (Tang et al., 2019, Distilled BiLSTM);
  `temperature` must be 1. Shapes as `soft_cross_entropy`; with mask None, mean_b mean_c (z_t - z_s)^2."""
  if not isinstance(temperature, (int, float)) or temperature != 1.0:
    raise ValueError(f"kd_loss 'mse' matches raw logits and takes no temperature; got temperature={temperature}, "
                     "use --temperature=1")
  return masked_mean(tf.math.squared_difference(teacher_logits, student_logits), mask)


def kd_loss_fn(name: str):
  return KD_LOSSES.get(name)

"""Losses on classifier logits: hard-label CE and the knowledge-distillation terms.

Shapes: `labels` int32 [batch]; `teacher_logits`, `student_logits` float32 [batch, num_labels]; `temperature` a
scalar or float32 [batch] (one temperature per example, as TextBrewer's flsw/cwsm schedulers give). Every function
returns a scalar averaged over the batch.

The distillation objective built from these (Hinton et al., 2015) is

    L = (1 - alpha) * CE(y, softmax(z_s)) + alpha * KD(z_t, z_s, T)

where the soft terms below already carry the T^2 factor that keeps their gradients on the scale of the hard term.
"""

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.registry import Registry

KD_LOSSES = Registry("kd loss")


def hard_cross_entropy(labels, student_logits):
  """CE(y, p) = mean_b [y_b >= 0] * -log softmax(z_s)[b, y_b].

  An example with label -1 (`tf_distill.data.tokenization.NO_LABEL`: unlabeled transfer-set text) contributes 0, and
  the mean is still over the whole batch, so each example's loss is weighted 1 / batch size like its distillation
  terms and the per-replica terms sum to the global batch mean under tf.distribute.
  """
  labels = tf.cast(labels, tf.int32)
  per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0), logits=student_logits)
  return tf.reduce_mean(tf.where(labels >= 0, per_example, tf.zeros_like(per_example)))


def probability_shift(teacher_logits, labels):
  """TextBrewer's probability shift: per example, the teacher's largest logit and the true label's logit trade places,
  so the soft targets rank the true label first (rows the teacher gets right, and unlabeled rows with label -1, are
  unchanged)."""
  num_labels = tf.shape(teacher_logits)[-1]
  labels = tf.cast(labels, tf.int32)
  top_value = tf.reduce_max(teacher_logits, axis=-1, keepdims=True)
  label_value = tf.gather(teacher_logits, tf.maximum(labels, 0)[:, None], batch_dims=1)
  is_label = tf.one_hot(labels, num_labels, on_value=True, off_value=False)
  is_top = tf.one_hot(tf.argmax(teacher_logits, axis=-1, output_type=tf.int32), num_labels, on_value=True,
                      off_value=False)
  shifted = tf.where(is_label, top_value, tf.where(is_top, label_value, teacher_logits))
  return tf.where(labels[:, None] >= 0, shifted, teacher_logits)


def _per_example(temperature):
  """A scalar or [batch] temperature as float32 [batch or 1, 1], to broadcast over the label axis."""
  return tf.reshape(tf.cast(temperature, tf.float32), [-1, 1])


@KD_LOSSES.register("ce")
def soft_cross_entropy(teacher_logits, student_logits, temperature):
  """T^2 * mean_b sum_c -softmax(z_t / T)_c * log softmax(z_s / T)_c  (Hinton et al., 2015)."""
  t = _per_example(temperature)
  targets = tf.nn.softmax(teacher_logits / t, axis=-1)
  log_probs = tf.nn.log_softmax(student_logits / t, axis=-1)
  return tf.reduce_mean(tf.squeeze(t, -1) ** 2 * -tf.reduce_sum(targets * log_probs, axis=-1))


@KD_LOSSES.register("kl")
def kl_divergence(teacher_logits, student_logits, temperature):
  """T^2 * mean_b KL(softmax(z_t / T) || softmax(z_s / T)); equals "ce" minus the teacher's entropy (same gradient)."""
  t = _per_example(temperature)
  log_targets = tf.nn.log_softmax(teacher_logits / t, axis=-1)
  log_probs = tf.nn.log_softmax(student_logits / t, axis=-1)
  kl = tf.reduce_sum(tf.exp(log_targets) * (log_targets - log_probs), axis=-1)
  return tf.reduce_mean(tf.squeeze(t, -1) ** 2 * kl)


@KD_LOSSES.register("mse")
def logits_mse(teacher_logits, student_logits, temperature):
  """mean_b mean_c (z_t - z_s)^2 on raw logits (Tang et al., 2019, Distilled BiLSTM); `temperature` must be 1."""
  if not isinstance(temperature, (int, float)) or temperature != 1.0:
    raise ValueError(f"kd_loss 'mse' matches raw logits and takes no temperature; got temperature={temperature}, "
                     "use --temperature=1")
  return tf.reduce_mean(tf.math.squared_difference(teacher_logits, student_logits))


def kd_loss_fn(name: str):
  return KD_LOSSES.get(name)

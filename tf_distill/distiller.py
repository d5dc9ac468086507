"""`Distiller`: the Keras model whose `train_step` queries the teacher online and trains the student.

    L = (1 - alpha) * CE(y, softmax(z_s)) + alpha * KD(z_t, z_s, T)

KD is a registered logits loss (`tf_distill.losses.logits.KD_LOSSES`; "ce" and "kl" include the T^2 factor). With
`alpha == 0` and no teacher the same loop fine-tunes a teacher or trains the no-distillation baseline, so every model
in a report is trained by one piece of code. The teacher is called outside the gradient tape and its outputs are
gradient-stopped; only `student.trainable_variables` are updated.
"""

from typing import Optional

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill.data.tokenization import FEATURE_KEYS
from tf_distill.losses.logits import hard_cross_entropy, kd_loss_fn
from tf_distill.teacher import SavedModelTeacher


def trim_padding(features):
  """Cuts the [batch, seq] model inputs to the longest real sequence in the batch (dynamic padding).

  Padding positions are masked out of attention, so logits do not change; compute drops with the padding. Other
  columns (such as cached `teacher_logits`) are left out of the result.
  """
  length = tf.reduce_max(tf.reduce_sum(tf.cast(features["input_mask"], tf.int32), axis=1))
  length = tf.maximum(length, 1)
  return {k: features[k][:, :length] for k in FEATURE_KEYS}


def replica_share(labels):
  """This replica's share of the global batch, local / global examples: float32 scalar (1.0 on one device).

  Keras' optimizer sums gradients over replicas, so a per-replica mean loss scaled by its share gives the gradient
  of the mean over the global batch -- also for the uneven last batch (compare TF issue 48817).
  """
  local = tf.cast(tf.shape(labels)[0], tf.float32)
  context = tf.distribute.get_replica_context()
  total = context.all_reduce(tf.distribute.ReduceOp.SUM, local) if context else local
  return local / tf.maximum(total, 1.0), local


class Distiller(keras.Model):
  """Trains `student` against labels and (when alpha > 0) the teacher's soft labels."""

  def __init__(self, student: keras.Model, teacher: Optional[SavedModelTeacher] = None, alpha: float = 0.5,
               temperature: float = 2.0, kd_loss: str = "ce", **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= alpha <= 1.0:
      raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {temperature}")
    if alpha > 0 and teacher is None:
      raise ValueError(f"alpha={alpha} needs a teacher; pass one or set alpha=0 for hard labels only")
    self.student = student
    self._teacher = [teacher]  # a list of a plain object: hidden from Keras tracking, so never saved or trained
    self.alpha = float(alpha)
    self.temperature = float(temperature)
    self.kd_loss = kd_loss
    self._kd_fn = kd_loss_fn(kd_loss)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.hard_loss_tracker = keras.metrics.Mean(name="hard_loss")
    self.kd_loss_tracker = keras.metrics.Mean(name="kd_loss")
    self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

  @property
  def teacher(self) -> Optional[SavedModelTeacher]:
    return self._teacher[0]

  @property
  def metrics(self):
    return [self.loss_tracker, self.hard_loss_tracker, self.kd_loss_tracker, self.accuracy]

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)

  def compute_losses(self, labels, student_logits, teacher_logits):
    """Returns (total, hard, kd) scalars for one batch."""
    hard = hard_cross_entropy(labels, student_logits)
    if teacher_logits is None:
      kd = tf.zeros_like(hard)
    else:
      kd = self._kd_fn(teacher_logits, student_logits, self.temperature)
    return (1.0 - self.alpha) * hard + self.alpha * kd, hard, kd

  def teacher_logits(self, features):
    """Raw teacher logits [batch, labels]: the cached column when the dataset carries one, else an online query."""
    if "teacher_logits" in features:
      return tf.stop_gradient(features["teacher_logits"])
    return self.teacher(trim_padding(features), outputs=("logits",))["logits"]

  def train_step(self, data):
    features, labels = data
    teacher_logits = self.teacher_logits(features) if self.alpha > 0 else None
    inputs = trim_padding(features)
    share, local = replica_share(labels)
    with tf.GradientTape() as tape:
      student_logits = self.student(inputs, training=True)["logits"]
      # A replica can get no examples of the last, partial batch: its mean losses are NaN, its share is 0.
      loss, hard, kd = (tf.where(local > 0, x, 0.0)
                        for x in self.compute_losses(labels, student_logits, teacher_logits))
      scaled_loss = loss * share
    variables = self.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    if self.distribute_strategy.num_replicas_in_sync > 1:
      # Embedding gradients are IndexedSlices with one row per token; replicas with different token counts cannot
      # all-reduce them as slices (collective shape mismatch), so they are summed dense.
      gradients = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]
    self.optimizer.apply_gradients(zip(gradients, variables))
    return self._update_metrics(labels, student_logits, loss, hard, kd, weight=local)

  def test_step(self, data):
    """Dev evaluation scores the student alone: labels only, no teacher query."""
    features, labels = data
    student_logits = self.student(trim_padding(features), training=False)["logits"]
    local = tf.shape(labels)[0]
    hard = tf.where(local > 0, hard_cross_entropy(labels, student_logits), 0.0)
    return self._update_metrics(labels, student_logits, hard, hard, tf.zeros_like(hard),
                                weight=tf.cast(local, tf.float32))

  def predict_step(self, data):
    features = data[0] if isinstance(data, tuple) else data
    return self.student(trim_padding(features), training=False)["logits"]

  def _update_metrics(self, labels, logits, loss, hard, kd, weight=None):
    """Loss metrics are example-weighted means, so across replicas they report the global batch mean."""
    self.loss_tracker.update_state(loss, sample_weight=weight)
    self.hard_loss_tracker.update_state(hard, sample_weight=weight)
    self.kd_loss_tracker.update_state(kd, sample_weight=weight)
    self.accuracy.update_state(labels, logits)
    return {m.name: m.result() for m in self.metrics}

  def get_config(self):
    return {"alpha": self.alpha, "temperature": self.temperature, "kd_loss": self.kd_loss}

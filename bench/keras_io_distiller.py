"""A plain Keras distiller in the shape of the keras.io "Knowledge Distillation" example, as a speed baseline.

The example's recipe, written out here for the benchmark (not tf_distill code):

    compile(optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha, temperature)
    train_step: teacher forward (training=False), then under a GradientTape the student forward and
        L = alpha * student_loss_fn(y, z_s)
            + (1 - alpha) * T^2 * distillation_loss_fn(softmax(z_t / T), softmax(z_s / T))
    with `distillation_loss_fn = keras.losses.KLDivergence()`.

Note that alpha weighs the hard-label term here, the opposite of tf_distill's alpha. There is no padding trim: every
batch is computed at its full padded length. `teacher` and `student` are Keras models that return logits
float32 [batch, labels]; `LogitsOnly` and `SavedModelLogits` adapt tf_distill's dict-returning student and the
teacher SavedModel.
"""

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras


class KerasIoDistiller(keras.Model):
  """Student trained on hard labels and the teacher's softened distribution, keras.io style."""

  def __init__(self, student: keras.Model, teacher: keras.Model):
    super().__init__()
    self.student = student
    self.teacher = teacher
    self.student_loss_fn = None
    self.distillation_loss_fn = None
    self.alpha = 0.1
    self.temperature = 3.0

  def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn, alpha=0.1, temperature=3.0,
              **kwargs):
    super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
    self.student_loss_fn = student_loss_fn
    self.distillation_loss_fn = distillation_loss_fn
    self.alpha = alpha
    self.temperature = temperature

  def train_step(self, data):
    x, y = data
    teacher_logits = self.teacher(x, training=False)
    with tf.GradientTape() as tape:
      student_logits = self.student(x, training=True)
      student_loss = self.student_loss_fn(y, student_logits)
      distillation_loss = self.distillation_loss_fn(
          tf.nn.softmax(teacher_logits / self.temperature, axis=1),
          tf.nn.softmax(student_logits / self.temperature, axis=1)) * self.temperature ** 2
      loss = self.alpha * student_loss + (1.0 - self.alpha) * distillation_loss
    variables = self.student.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    self.compiled_metrics.update_state(y, student_logits)
    results = {m.name: m.result() for m in self.metrics}
    results.update({"student_loss": student_loss, "distillation_loss": distillation_loss})
    return results

  def test_step(self, data):
    x, y = data
    y_prediction = self.student(x, training=False)
    student_loss = self.student_loss_fn(y, y_prediction)
    self.compiled_metrics.update_state(y, y_prediction)
    results = {m.name: m.result() for m in self.metrics}
    results.update({"student_loss": student_loss})
    return results

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)


class LogitsOnly(keras.Model):
  """Wraps a tf_distill `BertClassifier` (which returns a dict) as a model that returns its logits."""

  def __init__(self, model: keras.Model):
    super().__init__()
    self.model = model

  def call(self, inputs, training=None):
    return self.model(inputs, training=training)["logits"]


class SavedModelLogits(keras.Model):
  """The teacher SavedModel's `serving_default` as a Keras model returning logits. The restored object sits in a
  list so that Keras neither tracks nor trains its variables."""

  def __init__(self, saved_model_dir: str):
    super().__init__()
    self._loaded = [tf.saved_model.load(saved_model_dir)]

  def call(self, inputs, training=None):
    del training
    signature = self._loaded[0].signatures["serving_default"]
    return signature(input_ids=inputs["input_ids"], input_mask=inputs["input_mask"],
                     segment_ids=inputs["segment_ids"])["logits"]

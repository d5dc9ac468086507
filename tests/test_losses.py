"""Tests for tf_distill.losses.logits against numpy written out by hand, and for tf_distill.registry."""

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.losses import logits as logits_losses
from tf_distill.registry import Registry

from tiny import log_softmax, softmax

TEACHER = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-2.0, 4.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
STUDENT = np.array([[1.0, 0.5, -0.5], [0.3, -1.2, 2.0], [0.0, 1.0, 0.0], [1.5, -0.5, 0.2]], np.float32)
LABELS = np.array([0, 2, 1, 1], np.int32)


def _soft_ce(teacher, student, t):
  """T^2 * mean_b sum_c -p_t log p_s, with p = softmax(z / T)."""
  return t * t * np.mean(-np.sum(softmax(teacher / t) * log_softmax(student / t), axis=-1))


def _kl(teacher, student, t):
  """T^2 * mean_b sum_c p_t (log p_t - log p_s)."""
  p = softmax(teacher / t)
  return t * t * np.mean(np.sum(p * (log_softmax(teacher / t) - log_softmax(student / t)), axis=-1))


def _mse(teacher, student, t):
  del t
  return np.mean((teacher.astype(np.float64) - student) ** 2)


NUMPY_KD = {"ce": _soft_ce, "kl": _kl, "mse": _mse}


class LogitsLossTest(tf.test.TestCase, parameterized.TestCase):

  def test_every_registered_kd_loss_has_a_numpy_reference(self):
    self.assertEqual(logits_losses.KD_LOSSES.names(), sorted(NUMPY_KD))

  @parameterized.named_parameters((name, name) for name in logits_losses.KD_LOSSES.names())
  def test_kd_loss_matches_numpy(self, name):
    temperatures = (1.0,) if name == "mse" else (1.0, 2.0, 4.0)
    for t in temperatures:
      value = logits_losses.kd_loss_fn(name)(tf.constant(TEACHER), tf.constant(STUDENT), t)
      self.assertEqual(value.shape, ())
      self.assertAllClose(value, NUMPY_KD[name](TEACHER, STUDENT, t), rtol=1e-5, atol=1e-6, msg=f"T={t}")

  def test_hard_cross_entropy_matches_numpy(self):
    expected = np.mean(-log_softmax(STUDENT)[np.arange(len(LABELS)), LABELS])
    self.assertAllClose(logits_losses.hard_cross_entropy(LABELS, STUDENT), expected, rtol=1e-6)
    # By hand for one example: logits [0, 0] and either label give log 2.
    self.assertAllClose(logits_losses.hard_cross_entropy(np.array([1]), np.zeros([1, 2], np.float32)), np.log(2.0))

  def test_unlabeled_examples_add_no_hard_loss(self):
    """Label -1 (unlabeled): that row counts 0 and the mean stays over all 4 rows."""
    labels = np.array([0, -1, 1, -1], np.int32)
    expected = (-log_softmax(STUDENT)[0, 0] - log_softmax(STUDENT)[2, 1]) / 4
    self.assertAllClose(logits_losses.hard_cross_entropy(labels, STUDENT), expected, rtol=1e-6)
    self.assertAllClose(logits_losses.hard_cross_entropy(np.full([4], -1), STUDENT), 0.0)

  @parameterized.named_parameters(("ce", "ce"), ("kl", "kl"))
  def test_temperature_squared_scaling_is_explicit(self, name):
    t = 4.0
    unscaled = {"ce": lambda p, q: np.mean(-np.sum(p * np.log(q), -1)),
                "kl": lambda p, q: np.mean(np.sum(p * np.log(p / q), -1))}[name]
    value = logits_losses.kd_loss_fn(name)(TEACHER, STUDENT, t)
    self.assertAllClose(value, 16.0 * unscaled(softmax(TEACHER / t), softmax(STUDENT / t)), rtol=1e-5)

  def test_kl_is_ce_minus_teacher_entropy(self):
    for t in (1.0, 3.0):
      p = softmax(TEACHER / t)
      entropy = t * t * np.mean(-np.sum(p * np.log(p), axis=-1))
      ce = logits_losses.soft_cross_entropy(TEACHER, STUDENT, t)
      kl = logits_losses.kl_divergence(TEACHER, STUDENT, t)
      self.assertAllClose(kl, ce - entropy, rtol=1e-5, atol=1e-6)
      self.assertGreater(float(kl), 0.0)

  def test_kl_is_zero_when_student_equals_teacher(self):
    self.assertAllClose(logits_losses.kl_divergence(TEACHER, TEACHER, 2.0), 0.0, atol=1e-6)
    self.assertAllClose(logits_losses.logits_mse(TEACHER, TEACHER, 1.0), 0.0)

  @parameterized.named_parameters(("ce", "ce"), ("kl", "kl"))
  def test_gradient_wrt_student_logits(self, name):
    """d/dz_s T^2 mean_b CE(softmax(z_t/T), softmax(z_s/T)) = T (softmax(z_s/T) - softmax(z_t/T)) / batch."""
    t, batch = 3.0, len(TEACHER)
    student = tf.Variable(STUDENT)
    with tf.GradientTape() as tape:
      loss = logits_losses.kd_loss_fn(name)(tf.constant(TEACHER), student, t)
    expected = t * (softmax(STUDENT / t) - softmax(TEACHER / t)) / batch
    self.assertAllClose(tape.gradient(loss, student), expected, rtol=1e-5, atol=1e-7)
    # The same number by central finite differences of the loss itself.
    eps = 1e-2
    numeric = np.zeros_like(expected)
    for b in range(batch):
      for c in range(STUDENT.shape[1]):
        delta = np.zeros(STUDENT.shape, np.float64)
        delta[b, c] = eps
        numeric[b, c] = (NUMPY_KD[name](TEACHER, STUDENT + delta, t) - NUMPY_KD[name](TEACHER, STUDENT - delta, t)) / (
            2 * eps)
    self.assertAllClose(numeric, expected, atol=1e-5)

  def test_probability_shift_by_hand(self):
    teacher = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [5.0, -1.0, 2.0], [0.5, 0.5, 0.1]], np.float32)
    labels = np.array([0, 2, 1, 2])
    expected = np.array([[2.0, 1.0, 0.0],    # the teacher is right: unchanged
                         [0.0, 1.0, 3.0],    # label 2 takes the top logit 3, class 1 takes label's 1
                         [-1.0, 5.0, 2.0],
                         [0.1, 0.5, 0.5]], np.float32)  # a tie at the top: argmax picks class 0
    self.assertAllEqual(logits_losses.probability_shift(teacher, labels), expected)
    unlabeled = np.array([-1, 2, -1, 2])  # unlabeled rows keep the teacher's logits
    self.assertAllEqual(logits_losses.probability_shift(teacher, unlabeled), np.where(
        unlabeled[:, None] >= 0, expected, teacher))

  def test_mse_rejects_a_temperature(self):
    with self.assertRaisesRegex(ValueError, r"kd_loss 'mse' .* got temperature=2.0, use --temperature=1"):
      logits_losses.logits_mse(TEACHER, STUDENT, 2.0)

  def test_unknown_kd_loss_lists_known_names(self):
    with self.assertRaisesRegex(LookupError, r"unknown kd loss 'hinton'; known: \['ce', 'kl', 'mse'\]"):
      logits_losses.kd_loss_fn("hinton")


class RegistryTest(tf.test.TestCase):

  def test_register_get_names_contains(self):
    registry = Registry("widget")
    registry.register("b")(1)
    registry.register("a")(2)
    self.assertEqual(registry.get("a"), 2)
    self.assertEqual(registry.names(), ["a", "b"])
    self.assertIn("b", registry)
    self.assertNotIn("c", registry)

  def test_duplicate_registration_raises(self):
    registry = Registry("widget")
    registry.register("a")(1)
    with self.assertRaisesRegex(ValueError, "widget 'a' is already registered"):
      registry.register("a")(2)
    self.assertEqual(registry.get("a"), 1)

  def test_miss_lists_what_exists(self):
    registry = Registry("widget")
    registry.register("z")(1)
    registry.register("y")(2)
    with self.assertRaisesRegex(LookupError, r"unknown widget 'x'; known: \['y', 'z'\]"):
      registry.get("x")


if __name__ == "__main__":
  tf.test.main()

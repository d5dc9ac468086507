"""Per-token logits through tf_distill.losses.logits and the Distiller, against numpy written out position by position.

A tagger's logits are [batch, seq, num_tags] with labels [batch, seq]: -1 on [CLS], [SEP], later word pieces,
padding and whole teacher-labelled rows. Every term is a mean over the real tokens (input_mask = 1).
"""

import types

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill.data.pipeline import make_dataset
from tf_distill.distiller import Distiller, pad_to_length, replica_share, trim_labels, trim_padding
from tf_distill.losses import logits as logits_losses

import tiny

NUM_TAGS = 3
LENGTHS = (6, 4, 2)  # real tokens per row, [CLS] and [SEP] included; the rest is padding
SEQ = 6


def _mask(lengths=LENGTHS, seq=SEQ):
  return (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.float32)


# -1 on [CLS] (position 0), [SEP] (the last real one), a later word piece (row 0, position 2), padding, and the whole
# of row 2 (teacher-labelled text: a row of [CLS] [SEP] only here).
LABELS = np.array([[-1, 2, -1, 0, 1, -1],
                   [-1, 1, 0, -1, -1, -1],
                   [-1, -1, -1, -1, -1, -1]], np.int32)


def _random_logits(seed, shape=(len(LENGTHS), SEQ, NUM_TAGS)):
  return np.random.default_rng(seed).normal(0.0, 2.0, shape).astype(np.float32)


TEACHER = _random_logits(1)
STUDENT = _random_logits(2)
TEMPERATURES = np.array([1.0, 2.5, 4.0], np.float32)  # one per example, as flsw / cwsm give


def _softmax(z):
  e = np.exp(z - z.max())
  return e / e.sum()


def _by_position(per_position, mask):
  """sum_{b,s} m_{b,s} x_{b,s} / sum m, accumulated one position at a time."""
  total, count = 0.0, 0.0
  for b in range(mask.shape[0]):
    for s in range(mask.shape[1]):
      if mask[b, s]:
        total += per_position(b, s)
        count += 1.0
  return total / count


def numpy_soft_ce(zt, zs, t, mask):
  """T_b^2 * sum_c -softmax(zt/T_b)_c log softmax(zs/T_b)_c, averaged over the real tokens."""
  def ce(b, s):
    tb = float(t[b]) if np.ndim(t) else float(t)
    p, q = _softmax(zt[b, s] / tb), _softmax(zs[b, s].astype(np.float64) / tb)
    return tb * tb * -np.sum(p * np.log(q))
  return _by_position(ce, mask)


def numpy_kl(zt, zs, t, mask):
  def kl(b, s):
    tb = float(t[b]) if np.ndim(t) else float(t)
    p, q = _softmax(zt[b, s].astype(np.float64) / tb), _softmax(zs[b, s].astype(np.float64) / tb)
    return tb * tb * np.sum(p * np.log(p / q))
  return _by_position(kl, mask)


def numpy_mse(zt, zs, t, mask):
  del t
  return _by_position(lambda b, s: np.mean((zt[b, s].astype(np.float64) - zs[b, s]) ** 2), mask)


def numpy_hard(labels, zs, mask):
  """Sum of -log softmax(zs)[y] over the positions with a label >= 0, over the number of real tokens."""
  return _by_position(lambda b, s: -np.log(_softmax(zs[b, s].astype(np.float64))[labels[b, s]])
                      if labels[b, s] >= 0 else 0.0, mask)


NUMPY_KD = {"ce": numpy_soft_ce, "kl": numpy_kl, "mse": numpy_mse}


def _pad(x, extra, value):
  """x with `extra` more positions on axis 1, filled with `value` (an array or a number)."""
  pad_shape = list(x.shape)
  pad_shape[1] = extra
  fill = np.broadcast_to(value, pad_shape) if np.ndim(value) else np.full(pad_shape, value, x.dtype)
  return np.concatenate([x, fill.astype(x.dtype)], axis=1)


class TokenLogitsLossTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("ce_scalar", "ce", 2.0), ("ce_per_example", "ce", TEMPERATURES),
      ("kl_scalar", "kl", 3.0), ("kl_per_example", "kl", TEMPERATURES),
      ("mse", "mse", 1.0))
  def test_kd_loss_per_token_matches_numpy(self, name, temperature):
    value = logits_losses.kd_loss_fn(name)(TEACHER, STUDENT, temperature, _mask())
    self.assertEqual(value.shape, ())
    self.assertAllClose(value, NUMPY_KD[name](TEACHER, STUDENT, temperature, _mask()), rtol=1e-5, atol=1e-6)

  def test_kd_loss_per_position_temperature(self):
    """A [batch, seq] temperature (what flsw / cwsm give on per-token logits) applies position by position."""
    t = np.random.default_rng(3).uniform(0.5, 4.0, [len(LENGTHS), SEQ]).astype(np.float32)
    expected = _by_position(lambda b, s: numpy_soft_ce(TEACHER[b:b + 1, s:s + 1], STUDENT[b:b + 1, s:s + 1],
                                                       t[b, s], np.ones([1, 1])), _mask())
    self.assertAllClose(logits_losses.soft_cross_entropy(TEACHER, STUDENT, t, _mask()), expected, rtol=1e-5)

  def test_temperature_of_too_many_axes_is_refused(self):
    with self.assertRaisesRegex(ValueError, r"temperature must be a scalar or one per example or position .* got "
                                r"shape \(3, 6, 3\)"):
      logits_losses.soft_cross_entropy(TEACHER, STUDENT, np.ones_like(TEACHER), _mask())

  def test_hard_cross_entropy_per_token_matches_numpy(self):
    value = logits_losses.hard_cross_entropy(LABELS, STUDENT, _mask())
    self.assertAllClose(value, numpy_hard(LABELS, STUDENT, _mask()), rtol=1e-6)
    # By hand: 5 labelled positions of 12 real tokens, each with logits 0 over 3 tags: 5 * log 3 / 12.
    self.assertAllClose(logits_losses.hard_cross_entropy(LABELS, np.zeros_like(STUDENT), _mask()), 5 * np.log(3.0) / 12)
    self.assertAllClose(logits_losses.hard_cross_entropy(np.full_like(LABELS, -1), STUDENT, _mask()), 0.0)

  @parameterized.named_parameters(("ce", "ce", TEMPERATURES), ("kl", "kl", 2.0), ("mse", "mse", 1.0),
                                  ("hard", "hard", None))
  def test_padding_changes_nothing(self, name, temperature):
    """Other logits at padded positions, and more padding appended (label -1, mask 0): the same loss."""
    def loss(teacher, student, labels, mask):
      if name == "hard":
        return logits_losses.hard_cross_entropy(labels, student, mask)
      return logits_losses.kd_loss_fn(name)(teacher, student, temperature, mask)

    before = loss(TEACHER, STUDENT, LABELS, _mask())
    padded = _mask() == 0
    noise_t, noise_s = _random_logits(7) * 10, _random_logits(8) * 10
    other = loss(np.where(padded[..., None], noise_t, TEACHER), np.where(padded[..., None], noise_s, STUDENT), LABELS,
                 _mask())
    self.assertAllClose(other, before, rtol=1e-6)
    longer = loss(_pad(TEACHER, 5, noise_t[:, :5]), _pad(STUDENT, 5, noise_s[:, :5]), _pad(LABELS, 5, -1),
                  _mask(seq=SEQ + 5))
    self.assertAllClose(longer, before, rtol=1e-6)
    # A loss that read the padding would change: the same logits with every position real give another value.
    self.assertNotAllClose(loss(TEACHER, STUDENT, np.where(LABELS >= 0, LABELS, 1), np.ones_like(_mask())), before)

  @parameterized.named_parameters(("ce", "ce", 2.0), ("kl", "kl", 2.0), ("mse", "mse", 1.0))
  def test_one_token_per_example_is_the_classification_loss(self, name, temperature):
    teacher, student = TEACHER[:, 1], STUDENT[:, 1]  # [batch, num_tags]
    per_token = logits_losses.kd_loss_fn(name)(teacher[:, None], student[:, None], temperature, np.ones([3, 1]))
    self.assertAllClose(per_token, logits_losses.kd_loss_fn(name)(teacher, student, temperature), rtol=1e-6)

  def test_gradient_wrt_student_logits_is_masked(self):
    """d/dz_s T^2 sum m CE / sum m = T_b m_{b,s} (softmax(z_s/T_b) - softmax(z_t/T_b)) / sum m; 0 on padding."""
    student = tf.Variable(STUDENT)
    with tf.GradientTape() as tape:
      loss = logits_losses.soft_cross_entropy(TEACHER, student, TEMPERATURES, _mask())
    expected = np.zeros(STUDENT.shape)
    for b in range(len(LENGTHS)):
      for s in range(LENGTHS[b]):
        t = TEMPERATURES[b]
        expected[b, s] = t * (_softmax(STUDENT[b, s] / t) - _softmax(TEACHER[b, s] / t)) / sum(LENGTHS)
    self.assertAllClose(tape.gradient(loss, student), expected, rtol=1e-5, atol=1e-7)

  def test_probability_shift_per_token_by_hand(self):
    teacher = np.array([[[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]],
                        [[5.0, -1.0, 2.0], [0.5, 0.5, 0.1]]], np.float32)
    labels = np.array([[0, 2], [-1, 2]])
    expected = np.array([[[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]],     # right: unchanged; label 2 takes the top logit
                         [[5.0, -1.0, 2.0], [0.1, 0.5, 0.5]]], np.float32)  # label -1: unchanged; a tie: class 0
    self.assertAllEqual(logits_losses.probability_shift(teacher, labels), expected)

  def test_position_mask(self):
    input_mask = _mask().astype(np.int32)
    self.assertAllEqual(logits_losses.position_mask(LABELS, input_mask), _mask())
    self.assertAllEqual(logits_losses.position_mask(LABELS[:, :4], input_mask), _mask()[:, :4])
    self.assertAllEqual(logits_losses.position_mask(np.array([1, -1, 0]), input_mask), np.ones([3]))


class _TinyTagger(keras.Model):
  """input_ids [batch, seq] -> {"logits": [batch, seq, 3]}: an embedding and a dense layer, position by position."""

  def __init__(self, seed=0):
    super().__init__()
    self.config = types.SimpleNamespace(model_type="tiny_tagger")
    self.embedding = keras.layers.Embedding(tiny.VOCAB_SIZE, 8, embeddings_initializer=keras.initializers.RandomNormal(
        stddev=1.0, seed=seed))
    self.classifier = keras.layers.Dense(NUM_TAGS, kernel_initializer=keras.initializers.RandomNormal(
        stddev=0.5, seed=seed + 1))

  def call(self, inputs, training=None, logits_only=False):
    del training, logits_only
    return {"logits": self.classifier(self.embedding(inputs["input_ids"]))}


class _TableTeacher:
  """A teacher source whose per-token logits are a fixed table lookup of the input ids: float32 [batch, seq, 3]."""

  needs_example_index = False

  def __init__(self, seed=5):
    self.table = np.random.default_rng(seed).normal(0.0, 2.0, [tiny.VOCAB_SIZE, NUM_TAGS]).astype(np.float32)

  def __call__(self, features, outputs=None):
    del outputs
    return {"logits": tf.gather(self.table, features["input_ids"])}

  def check_outputs(self, outputs):
    if set(outputs) - {"logits"}:
      raise ValueError(f"the table teacher has logits only, not {outputs}")


def _tagging_batch(seed=11):
  """4 rows of 12 positions, real lengths 9, 5, 7, 3 (so trimmed to 9); tags on some word positions, -1 on [CLS],
  [SEP], padding, later pieces; row 3 is teacher-labelled text (all -1)."""
  lengths = [9, 5, 7, 3]
  features = tiny.random_features(4, 12, lengths=lengths, seed=seed)
  rng = np.random.default_rng(seed)
  labels = np.full([4, 12], -1, np.int32)
  for b, length in enumerate(lengths[:3]):
    first_pieces = rng.choice(np.arange(1, length - 1), size=max(1, (length - 2) * 2 // 3), replace=False)
    labels[b, first_pieces] = rng.integers(0, NUM_TAGS, size=len(first_pieces))
  return features, labels


class TokenDistillerTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("alpha_0", 0.0, "ce", None),
      ("ce_scalar_t", 0.5, "ce", None),
      ("ce_per_example_t", 0.5, "ce", (1.0, 2.0, 3.0, 4.0)),
      ("kl_per_example_t", 0.7, "kl", (4.0, 1.5, 2.0, 1.0)),
      ("mse", 0.5, "mse", None),
  )
  def test_train_step_matches_numpy(self, alpha, kd_loss, per_example):
    features, labels = _tagging_batch()
    student, teacher = _TinyTagger(), _TableTeacher()
    length = 9
    trimmed = {k: v[:, :length] for k, v in features.items()}
    mask = trimmed["input_mask"].astype(np.float64)
    zs = student(trimmed)["logits"].numpy().astype(np.float64)
    zt = teacher.table[trimmed["input_ids"]].astype(np.float64)
    bias_before = student.classifier.bias.numpy().astype(np.float64)
    base = 1.0 if kd_loss == "mse" else 2.0
    temperature_fn = None
    t = np.full([4], base)
    if per_example is not None:
      t = np.array(per_example)
      temperature_fn = lambda s, t_, base_t: tf.constant(per_example, tf.float32)  # noqa: E731  [batch]
    distiller = Distiller(student, teacher if alpha > 0 else None, alpha=alpha, temperature=base, kd_loss=kd_loss,
                          temperature_fn=temperature_fn)
    lr = 0.5
    distiller.compile(optimizer=keras.optimizers.SGD(lr))
    logs = distiller.train_on_batch(features, labels, return_dict=True)

    y = labels[:, :length]
    hard = numpy_hard(y, zs, mask)
    kd = 0.0 if alpha == 0 else NUMPY_KD[kd_loss](zt, zs, t, mask)
    self.assertAllClose(logs["loss"], (1 - alpha) * hard + alpha * kd, rtol=1e-5)
    labelled = (y >= 0) & (mask > 0)
    if alpha > 0:
      self.assertAllClose(logs["kd_loss"], kd, rtol=1e-5)
      self.assertAllClose(logs["hard_loss"], hard * mask.sum() / labelled.sum(), rtol=1e-5)  # labelled tokens' mean
    self.assertAllClose(logs["accuracy"], np.mean((zs.argmax(-1) == y)[labelled]))
    # d loss / d z_s position by position; d loss / d bias is its sum over all positions.
    n = mask.sum()
    grad = np.zeros_like(zs)
    for b in range(4):
      for s in range(length):
        if not mask[b, s]:
          continue
        p_s = _softmax(zs[b, s])
        if y[b, s] >= 0:
          grad[b, s] += (1 - alpha) * (p_s - np.eye(NUM_TAGS)[y[b, s]]) / n
        if alpha > 0 and kd_loss == "mse":
          grad[b, s] += alpha * -2.0 * (zt[b, s] - zs[b, s]) / (n * NUM_TAGS)
        elif alpha > 0:
          grad[b, s] += alpha * t[b] * (_softmax(zs[b, s] / t[b]) - _softmax(zt[b, s] / t[b])) / n
    self.assertAllClose(student.classifier.bias, bias_before - lr * grad.sum(axis=(0, 1)), rtol=1e-4, atol=1e-6)

  def test_padding_does_not_change_the_step(self):
    """More padding appended, and other ids at padded positions inside the trimmed length (the student's and the
    teacher's logits there change): the same losses and the same update."""
    features, labels = _tagging_batch()
    padded_features = {k: _pad(v, 6, 0) for k, v in features.items()}
    padded_labels = _pad(labels, 6, -1)
    garbage = np.random.default_rng(4).integers(5, tiny.VOCAB_SIZE, size=padded_features["input_ids"].shape)
    padded_features["input_ids"] = np.where(padded_features["input_mask"] > 0, padded_features["input_ids"],
                                            garbage).astype(np.int32)
    results = []
    for batch, batch_labels in ((features, labels), (padded_features, padded_labels)):
      student = _TinyTagger()
      distiller = Distiller(student, _TableTeacher(), alpha=0.5, temperature=2.0)
      distiller.compile(optimizer=keras.optimizers.SGD(0.5))
      logs = distiller.train_on_batch(batch, batch_labels, return_dict=True)
      results.append((logs, [v.numpy() for v in student.trainable_variables]))
    (logs, weights), (padded_logs, padded_weights) = results
    for metric in ("loss", "hard_loss", "kd_loss", "accuracy"):
      self.assertAllClose(padded_logs[metric], logs[metric], rtol=1e-6, msg=metric)
    for padded, plain in zip(padded_weights, weights):
      self.assertAllClose(padded, plain, rtol=1e-6, atol=1e-7)

  def test_evaluate_and_predict(self):
    """Dev loss: the hard term over real tokens; accuracy over labelled tokens; predictions padded back to the
    features' length, so batches of different trimmed lengths concatenate."""
    features, labels = _tagging_batch()
    student = _TinyTagger()
    distiller = Distiller(student, None, alpha=0.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    dataset = make_dataset({**features, "label_ids": labels}, batch_size=2, training=False)
    zs = student(features)["logits"].numpy()
    predicted = distiller.predict(dataset, verbose=0)
    self.assertEqual(predicted.shape, (4, 12, NUM_TAGS))
    real = features["input_mask"][..., None] > 0
    self.assertAllClose(np.where(real, predicted, 0.0), np.where(real, zs, 0.0), atol=1e-6)
    self.assertAllEqual(predicted[:, 9:], np.zeros([4, 3, NUM_TAGS]))  # beyond both batches' trimmed lengths
    logs = distiller.evaluate(dataset, verbose=0, return_dict=True)
    mask = features["input_mask"]
    # Batches of 2 rows: each batch's mean over its real tokens, weighted by its real tokens = the overall mean.
    self.assertAllClose(logs["loss"], numpy_hard(labels, zs, mask), rtol=1e-5)
    labelled = (labels >= 0) & (mask > 0)
    self.assertAllClose(logs["accuracy"], np.mean((zs.argmax(-1) == labels)[labelled]))

  def test_trim_labels_and_pad_to_length(self):
    features, labels = _tagging_batch()
    inputs = trim_padding(features)
    self.assertAllEqual(trim_labels(labels, inputs), labels[:, :9])
    self.assertAllEqual(trim_labels(labels[:, 0], inputs), labels[:, 0])  # one label per example: as it is
    self.assertAllEqual(pad_to_length(tf.ones([4, 9, 3]), 12), np.concatenate([np.ones([4, 9, 3]),
                                                                                np.zeros([4, 3, 3])], axis=1))
    self.assertAllEqual(pad_to_length(tf.ones([4, 3]), 12), np.ones([4, 3]))

  def test_replica_share_counts_positions(self):
    """On one device the share is 1 and the local count is the positions: rows for a classifier, real tokens for a
    tagger."""
    features, labels = _tagging_batch()
    inputs = trim_padding(features)
    share, local = replica_share(logits_losses.position_mask(trim_labels(labels, inputs), inputs["input_mask"]))
    self.assertEqual((float(share), float(local)), (1.0, 9 + 5 + 7 + 3))
    share, local = replica_share(logits_losses.position_mask(labels[:, 1], inputs["input_mask"]))
    self.assertEqual((float(share), float(local)), (1.0, 4.0))


if __name__ == "__main__":
  tf.test.main()

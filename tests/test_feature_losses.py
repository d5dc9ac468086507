"""Tests for tf_distill.losses.features against numpy written out by hand, with loops over batch, heads and tokens."""

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill.losses import features

from tiny import softmax

BATCH, SEQ, HEADS = 2, 5, 2
TEACHER_WIDTH, STUDENT_WIDTH = 8, 6
MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], np.int32)  # padding in both examples


def _real(mask, b):
  return [i for i in range(mask.shape[1]) if mask[b, i]]


# ------------------------------------------------------------------------------------------- numpy, by hand


def np_hidden_mse(t, s, mask):
  total, count = 0.0, 0
  for b in range(t.shape[0]):
    for i in _real(mask, b):
      for k in range(t.shape[2]):
        total += (float(t[b, i, k]) - float(s[b, i, k])) ** 2
        count += 1
  return total / count


def np_pkd_cls(t, s, mask):
  del mask
  losses = []
  for b in range(t.shape[0]):
    u = t[b, 0] / np.sqrt(np.sum(np.square(t[b, 0].astype(np.float64))))
    v = s[b, 0] / np.sqrt(np.sum(np.square(s[b, 0].astype(np.float64))))
    losses.append(np.sum((u - v) ** 2))
  return np.mean(losses)


def np_cosine(t, s, mask):
  losses = []
  for b in range(t.shape[0]):
    for i in _real(mask, b):
      u, v = t[b, i].astype(np.float64), s[b, i].astype(np.float64)
      losses.append(1.0 - u.dot(v) / (np.linalg.norm(u) * np.linalg.norm(v)))
  return np.mean(losses)


def np_mobilebert_fmt(t, s, mask, hidden_weight=100.0, mean_weight=5000.0, variance_weight=5.0, eps=1e-12):
  feature, mean, variance, n = 0.0, 0.0, 0.0, 0
  for b in range(t.shape[0]):
    for i in _real(mask, b):
      u, v = t[b, i].astype(np.float64), s[b, i].astype(np.float64)
      mu_u, mu_v = u.mean(), v.mean()
      var_u, var_v = ((u - mu_u) ** 2).mean(), ((v - mu_v) ** 2).mean()
      feature += np.mean(((u - mu_u) / np.sqrt(var_u + eps) - (v - mu_v) / np.sqrt(var_v + eps)) ** 2)
      mean += (mu_u - mu_v) ** 2
      variance += abs(var_u - var_v)
      n += 1
  return (hidden_weight * feature + mean_weight * mean + variance_weight * variance) / n


def np_fsp(t, s, mask):
  def gram(x1, x2, b):
    real = _real(mask, b)
    g = np.zeros([x1.shape[2], x2.shape[2]])
    for i in real:
      g += np.outer(x1[b, i], x2[b, i])
    return g / len(real)
  diffs = [(gram(t[0], t[1], b) - gram(s[0], s[1], b)) ** 2 for b in range(t[0].shape[0])]
  return np.mean(diffs)


def np_mmd(t, s, mask):
  """MMD^2 with k(x, y) = (x.y)^2 between the sets of l2-normalised neuron activation vectors, as three double sums."""
  def neurons(x, b):
    cols = x[b][_real(mask, b)].astype(np.float64).T  # [C, real tokens]
    return [c / np.linalg.norm(c) for c in cols]
  total = []
  for b in range(t.shape[0]):
    ft, fs = neurons(t, b), neurons(s, b)
    k_tt = sum(np.dot(x, y) ** 2 for x in ft for y in ft) / len(ft) ** 2
    k_ss = sum(np.dot(x, y) ** 2 for x in fs for y in fs) / len(fs) ** 2
    k_ts = sum(np.dot(x, y) ** 2 for x in ft for y in fs) / (len(ft) * len(fs))
    total.append(k_tt + k_ss - 2 * k_ts)
  return np.mean(total)


def np_attention_mse(t, s, mask):
  total, count = 0.0, 0
  for b in range(t.shape[0]):
    for h in range(t.shape[1]):
      for i in _real(mask, b):
        for j in _real(mask, b):
          total += (float(t[b, h, i, j]) - float(s[b, h, i, j])) ** 2
          count += 1
  return total / count


def np_row_kl(t_logits, s_logits, mask):
  """Mean over heads and real query rows of KL(softmax(t row) || softmax(s row)), both over real keys only."""
  kls = []
  for b in range(t_logits.shape[0]):
    keys = _real(mask, b)
    for h in range(t_logits.shape[1]):
      for i in keys:
        p, q = softmax(t_logits[b, h, i, keys]), softmax(s_logits[b, h, i, keys])
        kls.append(np.sum(p * np.log(p / q)))
  return np.mean(kls)


def np_relation_logits(x, heads):
  width = x.shape[2] // heads
  out = np.zeros([x.shape[0], heads, x.shape[1], x.shape[1]])
  for b in range(x.shape[0]):
    for a in range(heads):
      xa = x[b, :, a * width:(a + 1) * width].astype(np.float64)
      out[b, a] = xa @ xa.T / np.sqrt(width)
  return out


def np_value_relation(t, s, mask, num_heads):
  return np_row_kl(np_relation_logits(t, num_heads), np_relation_logits(s, num_heads), mask)


def np_qkv_relation(t, s, mask, num_relation_heads):
  return sum(np_value_relation(tx, sx, mask, num_relation_heads) for tx, sx in zip(t, s))


NUMPY = {
    "hidden_mse": np_hidden_mse,
    "pkd_cls": np_pkd_cls,
    "cosine": np_cosine,
    "mobilebert_fmt": np_mobilebert_fmt,
    "fsp": np_fsp,
    "mmd": np_mmd,
    "attention_mse_scores": np_attention_mse,
    "attention_mse_probs": np_attention_mse,
    "attention_kl": np_row_kl,
    "value_relation": np_value_relation,
    "qkv_relation": np_qkv_relation,
}

OPTIONS = {"value_relation": {"num_heads": 2}, "qkv_relation": {"num_relation_heads": 2}}


def _case(name, seed=0, seq=SEQ):
  """(teacher, student) inputs for loss `name`: random, of the shapes the registry entry says it reads."""
  rng = np.random.RandomState(seed)
  entry = features.feature_loss(name)

  def one(key):
    if key in ("attention_scores", "attention_probs"):
      shape_t = shape_s = [BATCH, HEADS, seq, seq]
    else:
      shape_t = [BATCH, seq, TEACHER_WIDTH]
      shape_s = [BATCH, seq, TEACHER_WIDTH if entry.needs_projection else STUDENT_WIDTH]
    t = rng.normal(size=shape_t).astype(np.float32)
    if key == "attention_probs":
      return softmax(t).astype(np.float32), softmax(rng.normal(size=shape_s)).astype(np.float32)
    return t, rng.normal(size=shape_s).astype(np.float32)

  pairs = [one(key) for _ in range(entry.num_layers) for key in entry.outputs]
  if len(pairs) == 1:
    return pairs[0]
  return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _padded_positions(x, mask):
  """bool of x's shape: True where x belongs to a padded token (rank 3) or a (query, key) pair with padding (rank 4)."""
  m = mask.astype(bool)
  if x.ndim == 3:
    return np.broadcast_to(~m[:, :, None], x.shape)
  return np.broadcast_to(~(m[:, None, :, None] & m[:, None, None, :]), x.shape)


def _perturb_padding(x, mask, rng):
  if isinstance(x, tuple):
    return tuple(_perturb_padding(e, mask, rng) for e in x)
  x = x.copy()
  padded = _padded_positions(x, mask)
  x[padded] = rng.normal(scale=10.0, size=int(padded.sum()))
  return x


def _loss(name, teacher, student, mask=MASK, **overrides):
  options = {**OPTIONS.get(name, {}), **overrides}
  return features.feature_loss_fn(name)(teacher, student, mask, **options)


def _numpy(name, teacher, student, mask=MASK):
  return NUMPY[name](teacher, student, mask, **OPTIONS.get(name, {}))


NAMES = [(name, name) for name in features.FEATURE_LOSSES.names()]


class FeatureLossTest(tf.test.TestCase, parameterized.TestCase):

  def test_every_registered_feature_loss_has_a_numpy_reference(self):
    self.assertEqual(features.FEATURE_LOSSES.names(), sorted(NUMPY))

  @parameterized.named_parameters(NAMES)
  def test_matches_numpy_with_padding(self, name):
    teacher, student = _case(name)
    value = _loss(name, teacher, student)
    self.assertEqual(value.dtype, tf.float32)
    self.assertEqual(value.shape, ())
    expected = _numpy(name, teacher, student)
    self.assertGreater(expected, 1e-3)
    self.assertAllClose(value, expected, rtol=1e-4, atol=1e-6)
    # A float mask gives the same; no mask means every token is real.
    self.assertAllClose(_loss(name, teacher, student, MASK.astype(np.float32)), expected, rtol=1e-4, atol=1e-6)
    no_mask = _loss(name, teacher, student, None)
    self.assertAllClose(no_mask, _numpy(name, teacher, student, np.ones_like(MASK)), rtol=1e-4, atol=1e-6)

  @parameterized.named_parameters(NAMES)
  def test_padded_positions_do_not_change_the_loss(self, name):
    teacher, student = _case(name, seed=1)
    rng = np.random.RandomState(2)
    before = _loss(name, teacher, student)
    after = _loss(name, _perturb_padding(teacher, MASK, rng), _perturb_padding(student, MASK, rng))
    self.assertAllClose(after, before, rtol=1e-5, atol=1e-6)
    if name != "pkd_cls":  # reads position 0 only, which is never padding
      unmasked = _loss(name, _perturb_padding(teacher, MASK, rng), student, None)
      self.assertNotAllClose(unmasked, before)  # the perturbation is visible without the mask

  @parameterized.named_parameters(NAMES)
  def test_zero_for_identical_inputs(self, name):
    teacher, _ = _case(name, seed=3)
    self.assertAllClose(_loss(name, teacher, teacher), 0.0, atol=1e-5)

  @parameterized.named_parameters(NAMES)
  def test_gradient_reaches_the_student_and_not_its_padding(self, name):
    teacher, student = _case(name, seed=4)
    variables = tf.nest.map_structure(tf.Variable, student)
    with tf.GradientTape() as tape:
      loss = _loss(name, teacher, variables)
    grads = tape.gradient(loss, tf.nest.flatten(variables))
    for grad, value in zip(grads, tf.nest.flatten(student)):
      self.assertIsNotNone(grad)
      grad = tf.convert_to_tensor(grad).numpy()
      self.assertGreater(np.abs(grad).max(), 0.0)
      self.assertAllEqual(grad[_padded_positions(value, MASK)], np.zeros(_padded_positions(value, MASK).sum()))

  @parameterized.named_parameters(NAMES)
  def test_tf_function_with_dynamic_sequence_length(self, name):
    entry = features.feature_loss(name)

    def spec(x):
      shape = [None, None, x.shape[2]] if x.ndim == 3 else [None, x.shape[1], None, None]
      return tf.TensorSpec(shape, tf.float32)

    teacher, student = _case(name, seed=5)
    loss = tf.function(lambda t, s, m: entry.fn(t, s, m, **OPTIONS.get(name, {})),
                       input_signature=[tf.nest.map_structure(spec, teacher), tf.nest.map_structure(spec, student),
                                        tf.TensorSpec([None, None], tf.int32)])
    for seq in (SEQ, 3):
      teacher, student = _case(name, seed=5, seq=seq)
      mask = MASK[:, :seq]
      self.assertAllClose(loss(teacher, student, mask), _numpy(name, teacher, student, mask), rtol=1e-4, atol=1e-6,
                          msg=f"seq={seq}")

  # ---------------------------------------------------------------------------------------- values by hand

  def test_hand_values(self):
    e1, e2 = np.eye(2, dtype=np.float32)
    hidden = np.stack([e1 * 3.0, e2])[None]  # [1, 2, 2]
    # [CLS] vectors 3*e1 and 5*e2 are orthogonal after normalisation: |e1 - e2|^2 = 2.
    self.assertAllClose(features.pkd_cls(hidden, np.stack([e2 * 5.0, e1])[None]), 2.0)
    # h and -h: cos = -1 at both tokens, loss 2; only the first token real: still 2.
    self.assertAllClose(features.cosine(hidden, -hidden), 2.0)
    self.assertAllClose(features.cosine(hidden, np.stack([e1, e1])[None], np.array([[1, 0]])), 0.0)
    # (3 - 0)^2 + (0 - 0)^2 at the only real token, over 2 units: 4.5.
    self.assertAllClose(features.hidden_mse(hidden, np.zeros_like(hidden), np.array([[1, 0]])), 4.5)

  def test_mobilebert_fmt_terms(self):
    """A per-token shift by c leaves the normalised map and the variance alone: L = mean_weight * c^2."""
    teacher, _ = _case("mobilebert_fmt", seed=6)
    shifted = teacher + 0.5
    self.assertAllClose(features.mobilebert_fmt(teacher, shifted, MASK), 5000.0 * 0.25, rtol=1e-4)
    self.assertAllClose(features.mobilebert_fmt(teacher, shifted, MASK, mean_weight=2.0), 0.5, rtol=1e-4, atol=1e-5)
    # Scaling by 2 changes only the variance: |var - 4 var| = 3 var.
    real = teacher[MASK.astype(bool)].astype(np.float64)
    expected = 3.0 * np.mean(np.var(real, axis=-1))
    self.assertAllClose(features.mobilebert_fmt(teacher, 2.0 * teacher, MASK, hidden_weight=0.0, mean_weight=0.0,
                                                variance_weight=1.0), expected, rtol=1e-4)

  def test_mmd_is_invariant_to_positive_scaling_of_each_unit(self):
    teacher, _ = _case("mmd", seed=7)
    scales = np.linspace(0.5, 3.0, TEACHER_WIDTH).astype(np.float32)
    self.assertAllClose(features.mmd(teacher, teacher * scales, MASK), 0.0, atol=1e-6)
    self.assertGreater(float(features.mmd(teacher, teacher[..., :3], MASK)), 1e-4)

  def test_attention_kl_matches_kl_of_the_models_probabilities(self):
    """With p = softmax(scores + (1 - mask) * -10000), as BERT computes attention_probs, summed over real keys."""
    teacher, student = _case("attention_kl", seed=8)
    bias = (1.0 - MASK[:, None, None, :]) * -10000.0
    p, q = softmax(teacher + bias), softmax(student + bias)
    kl, count = 0.0, 0
    for b in range(BATCH):
      for h in range(HEADS):
        for i in _real(MASK, b):
          kl += sum(p[b, h, i, j] * np.log(p[b, h, i, j] / q[b, h, i, j]) for j in _real(MASK, b))
          count += 1
    self.assertAllClose(features.attention_kl(teacher, student, MASK), kl / count, rtol=1e-4)

  # --------------------------------------------------------------------------------- heads and widths

  def test_relations_work_with_different_head_counts_and_widths(self):
    rng = np.random.RandomState(9)
    # A 12-wide teacher (4 heads of 3) against a 6-wide student (2 heads of 3); R = 3 gives d_r = 4 and 2.
    teacher = tuple(rng.normal(size=[BATCH, SEQ, 12]).astype(np.float32) for _ in range(3))
    student = tuple(rng.normal(size=[BATCH, SEQ, 6]).astype(np.float32) for _ in range(3))
    for r in (1, 2, 3, 6):
      self.assertAllClose(features.qkv_relation(teacher, student, MASK, num_relation_heads=r),
                          np_qkv_relation(teacher, student, MASK, r), rtol=1e-4, msg=f"R={r}")
    self.assertAllClose(features.value_relation(teacher[2], student[2], MASK, num_heads=3),
                        np_value_relation(teacher[2], student[2], MASK, 3), rtol=1e-4)
    with self.assertRaisesRegex(ValueError, r"num_relation_heads=4 must divide the student's hidden size 6"):
      features.qkv_relation(teacher, student, MASK, num_relation_heads=4)
    with self.assertRaisesRegex(ValueError, r"value_relation needs num_heads=<int>"):
      features.value_relation(teacher[2], student[2], MASK)
    with self.assertRaisesRegex(ValueError, r"qkv_relation takes \(queries, keys, values\)"):
      features.qkv_relation(teacher[:2], student[:2], MASK, num_relation_heads=2)

  @parameterized.named_parameters(("scores", "attention_mse_scores"), ("probs", "attention_mse_probs"),
                                  ("kl", "attention_kl"))
  def test_attention_losses_need_equal_head_counts(self, name):
    teacher = np.zeros([BATCH, 4, SEQ, SEQ], np.float32)
    student = np.zeros([BATCH, 2, SEQ, SEQ], np.float32)
    with self.assertRaisesRegex(ValueError, rf"{name} .* the teacher has 4 heads and the student 2"):
      features.feature_loss_fn(name)(teacher, student, MASK)

  @parameterized.named_parameters(("hidden_mse", "hidden_mse"), ("pkd_cls", "pkd_cls"), ("cosine", "cosine"),
                                  ("mobilebert_fmt", "mobilebert_fmt"))
  def test_unit_by_unit_losses_need_equal_widths(self, name):
    self.assertTrue(features.feature_loss(name).needs_projection)
    with self.assertRaisesRegex(ValueError, r"widths differ \(teacher 8, student 6\); .* Projection\(8\)"):
      features.feature_loss_fn(name)(np.ones([1, 3, 8], np.float32), np.ones([1, 3, 6], np.float32))

  # --------------------------------------------------------------------------------- projection

  def test_projection_then_hidden_mse(self):
    rng = np.random.RandomState(10)
    teacher = rng.normal(size=[BATCH, SEQ, TEACHER_WIDTH]).astype(np.float32)
    student = rng.normal(size=[BATCH, SEQ, STUDENT_WIDTH]).astype(np.float32)
    projection = features.Projection(TEACHER_WIDTH)
    with tf.GradientTape() as tape:
      projected = projection(student)
      loss = features.hidden_mse(teacher, projected, MASK)
    kernel, bias = projection.kernel.numpy(), projection.bias.numpy()
    self.assertEqual(kernel.shape, (STUDENT_WIDTH, TEACHER_WIDTH))
    self.assertAllClose(projected, student @ kernel + bias, rtol=1e-5, atol=1e-6)
    self.assertAllClose(loss, np_hidden_mse(teacher, student @ kernel + bias, MASK), rtol=1e-5)
    grads = tape.gradient(loss, projection.trainable_variables)
    self.assertLen(grads, 2)
    self.assertGreater(float(tf.reduce_max(tf.abs(grads[0]))), 0.0)

  def test_projection_get_config_round_trip(self):
    layer = features.Projection(8, use_bias=False, initializer_range=0.1, name="fit_dense")
    config = layer.get_config()
    self.assertEqual((config["units"], config["use_bias"], config["initializer_range"], config["name"]),
                     (8, False, 0.1, "fit_dense"))
    clone = features.Projection.from_config(config)
    self.assertEqual(clone.get_config(), config)
    x = np.ones([2, 3, 4], np.float32)
    layer(x)
    clone(x)
    self.assertEmpty([v for v in clone.weights if "bias" in v.name])
    clone.set_weights(layer.get_weights())
    self.assertAllClose(clone(x), layer(x))
    restored = keras.layers.deserialize(keras.layers.serialize(layer),
                                        custom_objects={"Projection": features.Projection})
    self.assertEqual(restored.get_config(), config)
    with self.assertRaisesRegex(ValueError, "Projection units must be >= 1, got 0"):
      features.Projection(0)

  # --------------------------------------------------------------------------------- registry

  def test_registry_entries_declare_their_outputs(self):
    outputs = {name: features.feature_loss(name).outputs for name in features.FEATURE_LOSSES.names()}
    self.assertEqual(outputs["hidden_mse"], ("hidden_states",))
    self.assertEqual(outputs["attention_mse_scores"], ("attention_scores",))
    self.assertEqual(outputs["attention_mse_probs"], ("attention_probs",))
    self.assertEqual(outputs["attention_kl"], ("attention_scores",))
    self.assertEqual(outputs["value_relation"], ("attention_values",))
    self.assertEqual(outputs["qkv_relation"], ("attention_queries", "attention_keys", "attention_values"))
    self.assertEqual(features.feature_loss("fsp").num_layers, 2)
    self.assertFalse(features.feature_loss("mmd").needs_projection)
    self.assertEqual(features.feature_loss("value_relation").options, ("num_heads",))

  def test_unknown_feature_loss_lists_known_names(self):
    with self.assertRaisesRegex(LookupError, r"unknown feature loss 'nope'; known: \['attention_kl', "
                                r"'attention_mse_probs', .*'value_relation'\]"):
      features.feature_loss_fn("nope")

  def test_select_reads_student_lists_and_stacked_teacher_outputs(self):
    rng = np.random.RandomState(11)
    layers = [rng.normal(size=[BATCH, SEQ, 4]).astype(np.float32) for _ in range(3)]
    embeddings = rng.normal(size=[BATCH, SEQ, 4]).astype(np.float32)
    scores = [rng.normal(size=[BATCH, HEADS, SEQ, SEQ]).astype(np.float32) for _ in range(3)]
    student = {"embeddings": embeddings, "hidden_states": layers, "attention_scores": scores,
               "attention_queries": layers, "attention_keys": scores, "attention_values": [embeddings] * 3}
    teacher = {k: v if k == "embeddings" else tf.stack(v) for k, v in student.items()}
    for outputs in (student, teacher):
      self.assertAllEqual(features.feature_loss("hidden_mse").select(outputs, 0), embeddings)
      self.assertAllEqual(features.feature_loss("hidden_mse").select(outputs, 2), layers[1])
      self.assertAllEqual(features.feature_loss("attention_kl").select(outputs, 3), scores[2])
      first, second = features.feature_loss("fsp").select(outputs, (0, 3))
      self.assertAllEqual(first, embeddings)
      self.assertAllEqual(second, layers[2])
      q, k, v = features.feature_loss("qkv_relation").select(outputs, 1)
      self.assertAllEqual(q, layers[0])
      self.assertAllEqual(k, scores[0])
      self.assertAllEqual(v, embeddings)
      with self.assertRaisesRegex(ValueError, "layer 0 is the embedding output, which has no 'attention_scores'"):
        features.feature_loss("attention_kl").select(outputs, 0)

  def test_select_names_layers_a_cached_teacher_does_not_hold(self):
    rng = np.random.RandomState(12)
    layer_2 = rng.normal(size=[BATCH, SEQ, 4]).astype(np.float32)
    cached = {"embeddings": layer_2, "hidden_states": [None, layer_2]}  # a cache written with 0-based layer 1 only
    spec = features.feature_loss("hidden_mse")
    self.assertAllEqual(spec.select(cached, 2), layer_2)
    for layer in (1, 3):
      with self.assertRaisesRegex(ValueError, rf"'hidden_states' has no layer {layer} \(list item {layer - 1}\); "
                                  r"the outputs hold layers \[2\]"):
        spec.select(cached, layer)

  def test_registration_rejects_duplicates_and_options_the_loss_does_not_take(self):
    with self.assertRaisesRegex(ValueError, "feature loss 'hidden_mse' is already registered"):
      features.register_feature_loss("hidden_mse", outputs=("hidden_states",), needs_projection=True)(
          features.hidden_mse)
    with self.assertRaisesRegex(ValueError, r"hidden_mse: options \['num_heads'\] are not keyword parameters"):
      features.register_feature_loss("hidden_mse_2", outputs=("hidden_states",), needs_projection=True,
                                     options=("num_heads",))(features.hidden_mse)
    self.assertNotIn("hidden_mse_2", features.FEATURE_LOSSES)


if __name__ == "__main__":
  tf.test.main()

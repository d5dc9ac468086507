"""Tests for tf_distill.students.bilstm: the masked BiLSTM against Keras' LSTM, padding invariance, configs, training,
embedding initialisation, and SavedModel / TFLite export."""

import os
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill.export import serving, tflite
from tf_distill.export.parity import compare_logits
from tf_distill.students.bilstm import (BidirectionalLstm, BiLstmClassifier, BiLstmConfig, build_bilstm_student,
                                        pca_project, teacher_word_embeddings)

import tiny


def tiny_bilstm_config(**overrides) -> BiLstmConfig:
  values = dict(vocab_size=tiny.VOCAB_SIZE, embedding_size=32, lstm_units=32, hidden_units=32,
                num_labels=len(tiny.LABELS), dropout=0.0)
  values.update(overrides)
  return BiLstmConfig(**values)


def tiny_bilstm(seed: int = 0, **overrides) -> BiLstmClassifier:
  """A built tiny student whose word embeddings and classifier kernel are redrawn with stddev 1 so that the LSTM
  states and the logits are O(1) (Keras' default embeddings, uniform in +-0.05, give logits of about 0.01)."""
  keras.utils.set_random_seed(seed)
  model = build_bilstm_student(tiny_bilstm_config(**overrides))
  rng = np.random.default_rng(seed)
  for variable in (model.word_embeddings.embeddings, model.classifier.kernel):
    variable.assign(rng.normal(0.0, 1.0, variable.shape).astype(np.float32))
  return model


def pad(features, extra: int, seed: int = 0):
  """Appends `extra` padding positions whose input ids are random words (not [PAD]): only the mask marks them."""
  rng = np.random.default_rng(seed)
  batch = features["input_ids"].shape[0]
  return {"input_ids": np.concatenate([features["input_ids"], rng.integers(5, tiny.VOCAB_SIZE, [batch, extra])], 1)
                       .astype(np.int32),
          "input_mask": np.pad(features["input_mask"], [[0, 0], [0, extra]]),
          "segment_ids": np.pad(features["segment_ids"], [[0, 0], [0, extra]])}


class BiLstmConfigTest(tf.test.TestCase, parameterized.TestCase):

  def test_defaults_are_the_papers(self):
    config = BiLstmConfig()
    self.assertEqual((config.embedding_size, config.lstm_units, config.hidden_units, config.model_type),
                     (300, 300, 400, "bilstm"))

  def test_dict_round_trip(self):
    config = tiny_bilstm_config(dropout=0.2)
    self.assertEqual(config.to_dict()["model_type"], "bilstm")
    self.assertEqual(BiLstmConfig.from_dict(config.to_dict()), config)

  @parameterized.named_parameters(
      ("vocab_size", dict(vocab_size=0), r"vocab_size must be an integer >= 1, got 0"),
      ("lstm_units", dict(lstm_units=-3), r"lstm_units must be an integer >= 1, got -3"),
      ("embedding_size_float", dict(embedding_size=2.5), r"embedding_size must be an integer >= 1, got 2.5"),
      ("hidden_units", dict(hidden_units=0), r"hidden_units must be an integer >= 1, got 0"),
      ("num_labels", dict(num_labels=0), r"num_labels must be an integer >= 1, got 0"),
      ("dropout", dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
      ("model_type", dict(model_type="bert"), r"model_type must be 'bilstm' for a BiLstmConfig, got 'bert'"))
  def test_validation_errors(self, overrides, message):
    with self.assertRaisesRegex(ValueError, message):
      tiny_bilstm_config(**overrides).validate()
    with self.assertRaisesRegex(ValueError, message):
      BiLstmClassifier(tiny_bilstm_config(**overrides))

  def test_from_dict_rejects_unknown_keys(self):
    with self.assertRaisesRegex(ValueError, r"unknown BiLstmConfig keys \['hidden_size', 'num_hidden_layers'\]"):
      BiLstmConfig.from_dict({**tiny_bilstm_config().to_dict(), "hidden_size": 32, "num_hidden_layers": 2})


class BiLstmClassifierTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = tiny_bilstm()
    cls.features = tiny.random_features(5, 10, lengths=[10, 3, 7, 5, 9], seed=3)
    cls.logits = cls.model(cls.features, training=False)["logits"].numpy()

  def test_output_shapes(self):
    out = self.model(self.features, training=False)
    self.assertCountEqual(out, ["logits", "embeddings"])
    self.assertEqual(out["logits"].shape, (5, 2))
    self.assertEqual(out["embeddings"].shape, (5, 10, 32))
    self.assertGreater(np.std(self.logits), 0.1)  # O(1) logits, so the comparisons below are meaningful

  def test_padding_does_not_change_logits(self):
    padded = pad(self.features, 6, seed=4)
    self.assertAllClose(self.model(padded, training=False)["logits"], self.logits, atol=1e-6)
    for i, length in enumerate([10, 3, 7, 5, 9]):  # each example alone, without any padding
      alone = {k: v[i:i + 1, :length] for k, v in self.features.items()}
      self.assertAllClose(self.model(alone, training=False)["logits"][0], self.logits[i], atol=1e-6)
    # The mask, not the ids, marks padding: the same ids with a full mask give other logits.
    full = {**padded, "input_mask": np.ones_like(padded["input_mask"])}
    self.assertGreater(np.max(np.abs(self.model(full, training=False)["logits"] - self.logits)), 1e-3)

  def test_segment_ids_are_ignored(self):
    other = {**self.features, "segment_ids": self.features["input_mask"]}
    self.assertAllClose(self.model(other, training=False)["logits"], self.logits, atol=0)

  def test_matches_keras_masked_bidirectional_lstm(self):
    """Our while-loop BiLSTM against Keras' own masked Bidirectional(LSTM), with the same weights, on a mask with
    holes in the middle as well as padding at the end."""
    embeddings = self.model.word_embeddings(self.features["input_ids"])
    mask = self.features["input_mask"].copy()
    mask[0, 4] = mask[3, 1] = 0
    reference = keras.layers.Bidirectional(keras.layers.LSTM(32), merge_mode="concat")
    reference(embeddings, mask=tf.cast(mask, tf.bool))
    ours = self.model.bilstm
    for keras_layer, direction in ((reference.forward_layer, "forward"), (reference.backward_layer, "backward")):
      keras_layer.set_weights([getattr(ours, f"{direction}_{name}").numpy()
                               for name in ("kernel", "recurrent_kernel", "bias")])
    expected = reference(embeddings, mask=tf.cast(mask, tf.bool))
    self.assertAllClose(ours(embeddings, mask=mask), expected, atol=1e-6)
    self.assertGreater(np.max(np.abs(ours(embeddings, mask=self.features["input_mask"]) - expected)), 1e-3)
    self.assertAllClose(ours(embeddings), reference(embeddings), atol=1e-6)  # no mask: every position is a token

  def test_token_head_matches_keras_return_sequences_at_the_tokens(self):
    """The token head's states: Keras' masked Bidirectional(LSTM(return_sequences=True)) at every real token, and the
    logits are the MLP over them, by hand; padding after the tokens does not change them."""
    tagger = tiny_bilstm(seed=5, head="token")
    features = self.features
    embeddings = tagger.word_embeddings(features["input_ids"])
    reference = keras.layers.Bidirectional(keras.layers.LSTM(32, return_sequences=True), merge_mode="concat")
    reference(embeddings, mask=tf.cast(features["input_mask"], tf.bool))
    for keras_layer, direction in ((reference.forward_layer, "forward"), (reference.backward_layer, "backward")):
      keras_layer.set_weights([getattr(tagger.bilstm, f"{direction}_{name}").numpy()
                               for name in ("kernel", "recurrent_kernel", "bias")])
    expected = reference(embeddings, mask=tf.cast(features["input_mask"], tf.bool)).numpy()
    states = tagger.bilstm(embeddings, mask=features["input_mask"]).numpy()
    tokens = features["input_mask"].astype(bool)
    self.assertEqual(states.shape, expected.shape)
    self.assertAllClose(states[tokens], expected[tokens], atol=1e-6)
    hidden = np.maximum(states @ tagger.hidden.kernel.numpy() + tagger.hidden.bias.numpy(), 0.0)
    by_hand = hidden @ tagger.classifier.kernel.numpy() + tagger.classifier.bias.numpy()
    logits = tagger(features, training=False)["logits"].numpy()
    self.assertEqual(logits.shape, features["input_ids"].shape + (len(tiny.LABELS),))
    self.assertAllClose(logits, by_hand, atol=1e-5)
    padded = tagger(pad(features, 5), training=False)["logits"].numpy()[:, :features["input_ids"].shape[1]]
    self.assertAllClose(padded[tokens], logits[tokens], atol=1e-6)
    self.assertEqual(tagger.config.to_dict()["head"], "token")
    self.assertNotIn("head", self.model.config.to_dict())  # a classifier's model_config.json is unchanged

  def test_bidirectional_lstm_initialisers_match_keras(self):
    layer = BidirectionalLstm(4)
    layer(tf.zeros([1, 2, 3]), mask=tf.ones([1, 2]))
    self.assertAllEqual(layer.forward_bias, [0] * 4 + [1] * 4 + [0] * 8)  # unit_forget_bias
    recurrent = layer.backward_recurrent_kernel.numpy()
    self.assertAllClose(recurrent @ recurrent.T, np.eye(4), atol=1e-5)  # orthogonal rows
    with self.assertRaisesRegex(ValueError, r"units must be >= 1, got 0"):
      BidirectionalLstm(0)

  def test_get_config_round_trip(self):
    config = self.model.get_config()
    self.assertEqual(config, {"config": self.model.config.to_dict(), "name": "bilstm_classifier"})
    clone = BiLstmClassifier.from_config(config).build_weights()
    self.assertEqual(clone.config, self.model.config)
    self.assertEqual([w.shape for w in clone.weights], [w.shape for w in self.model.weights])
    clone.set_weights(self.model.get_weights())
    self.assertAllClose(clone(self.features, training=False)["logits"], self.logits, atol=0)
    layer = BidirectionalLstm.from_config(self.model.bilstm.get_config())
    self.assertEqual((layer.units, layer.name), (32, "bilstm"))

  def test_dropout_only_in_training(self):
    model = tiny_bilstm(dropout=0.5)
    first, second = (model(self.features, training=True)["logits"] for _ in range(2))
    self.assertGreater(np.max(np.abs(first - second)), 1e-4)
    self.assertAllClose(model(self.features, training=False)["logits"],
                        model(self.features, training=False)["logits"], atol=0)

  def test_one_step_reduces_logit_mse(self):
    """The paper's objective: MSE between student logits and the teacher's."""
    model = tiny_bilstm(seed=1)
    targets = np.random.default_rng(0).normal(0.0, 2.0, [5, 2]).astype(np.float32)
    optimizer = keras.optimizers.Adam(1e-2)

    def loss():
      return tf.reduce_mean(tf.square(model(self.features, training=True)["logits"] - targets))

    with tf.GradientTape() as tape:
      before = loss()
    grads = tape.gradient(before, model.trainable_variables)
    for variable, grad in zip(model.trainable_variables, grads):  # both directions are trained
      self.assertIsNotNone(grad, variable.name)
      self.assertGreater(float(tf.reduce_max(tf.abs(tf.convert_to_tensor(grad)))), 0.0, variable.name)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    self.assertLess(float(loss()), 0.95 * float(before))


class EmbeddingInitTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rng = np.random.default_rng(5)

  def test_same_size_is_copied(self):
    matrix = self.rng.normal(size=[tiny.VOCAB_SIZE, 32]).astype(np.float32)
    model = build_bilstm_student(tiny_bilstm_config(), word_embeddings=matrix)
    self.assertAllEqual(model.word_embeddings.embeddings, matrix)

  def test_wider_teacher_is_pca_projected(self):
    # Rank-8 structure plus noise in 48 dimensions, projected to 32.
    matrix = self.rng.normal(size=[tiny.VOCAB_SIZE, 8]) @ self.rng.normal(size=[8, 48]) * 3.0
    matrix += self.rng.normal(scale=0.1, size=matrix.shape)
    model = BiLstmClassifier(tiny_bilstm_config()).init_embeddings_from(matrix)
    projected = model.word_embeddings.embeddings.numpy()
    # Independent reference from an SVD of the centred matrix: the projection's Gram matrix (sign-free).
    centred = matrix - matrix.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    top = centred @ vt[:32].T
    self.assertAllClose(projected @ projected.T, top @ top.T, rtol=1e-4, atol=1e-3)
    self.assertAllClose(projected, pca_project(matrix, 32), atol=1e-5)
    # Pairwise distances between words are kept almost exactly (the dropped components are small noise).
    def distances(x):
      return np.linalg.norm(x[:, None] - x[None], axis=-1)
    self.assertLess(np.max(np.abs(distances(projected) - distances(matrix))), 0.05 * np.max(distances(matrix)))

  def test_narrower_teacher_is_copied_and_zero_padded(self):
    matrix = self.rng.normal(size=[tiny.VOCAB_SIZE, 20]).astype(np.float32)
    model = BiLstmClassifier(tiny_bilstm_config()).init_embeddings_from(matrix)
    values = model.word_embeddings.embeddings.numpy()
    self.assertAllEqual(values[:, :20], matrix)
    self.assertAllEqual(values[:, 20:], np.zeros([tiny.VOCAB_SIZE, 12]))

  def test_errors(self):
    model = BiLstmClassifier(tiny_bilstm_config())
    with self.assertRaisesRegex(ValueError, r"must be \[vocab_size=100, hidden\], got shape \(99, 32\)"):
      model.init_embeddings_from(np.zeros([99, 32]))
    with self.assertRaisesRegex(ValueError, r"non-finite"):
      model.init_embeddings_from(np.full([100, 32], np.nan))
    with self.assertRaisesRegex(ValueError, r"size must be in \[1, 4\], got 5"):
      pca_project(np.zeros([10, 4]), 5)

  def test_from_teacher_variables(self):
    teacher = tiny.tiny_classifier(seed=2)
    matrix = teacher_word_embeddings(teacher.variables)
    self.assertAllEqual(matrix, teacher.embeddings.word_embeddings.embeddings)
    model = build_bilstm_student(tiny_bilstm_config(), word_embeddings=matrix)  # teacher hidden 32 = embedding 32
    self.assertAllEqual(model.word_embeddings.embeddings, matrix)
    with self.assertRaisesRegex(ValueError, r"no '.../embeddings/word_embeddings/embeddings' among the"):
      teacher_word_embeddings(model.bilstm.weights)


class BiLstmExportTest(tf.test.TestCase):
  """Exported once: SavedModel via export_classifier, then float32 and int8 TFLite files."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="tf_distill_bilstm_")
    cls.vocab_file = tiny.write_vocab(os.path.join(cls.root, "vocab.txt"))
    cls.model = tiny_bilstm(seed=3)
    cls.path = tiny.export_tiny_classifier(cls.model, os.path.join(cls.root, "export"), cls.vocab_file,
                                           model_name="bilstm", with_distill_signature=False)
    cls.tflite_paths = {q: tflite.convert_saved_model(cls.path, os.path.join(cls.root, f"{q}.tflite"), q)
                        for q in tflite.QUANTIZATIONS}
    # 64 examples with padding, in two shapes, so the interpreter is resized between calls.
    cls.batches = [tiny.random_features(48, 14, seed=41), tiny.random_features(16, 6, seed=42)]
    cls.logits = [cls.model(b, training=False)["logits"].numpy() for b in cls.batches]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_saved_model_matches_keras(self):
    signature = tf.saved_model.load(self.path).signatures["serving_default"]
    for batch, expected in zip(self.batches, self.logits):
      out = signature(**{k: tf.constant(v) for k, v in batch.items()})
      self.assertAllClose(out["logits"], expected, atol=1e-5)
      self.assertAllClose(out["probabilities"], tiny.softmax(expected), atol=1e-5)

  def test_metadata_names_the_student_type_and_carries_its_config(self):
    metadata = serving.read_metadata(self.path)
    self.assertEqual(metadata["model_type"], "bilstm")
    self.assertNotIn("bert_config", metadata)
    self.assertEqual(metadata["model_config"], self.model.config.to_dict())
    self.assertEqual(BiLstmConfig.from_dict(metadata["model_config"]), self.model.config)

  def test_tflite_has_only_builtin_ops(self):
    for path in self.tflite_paths.values():
      with open(path, "rb") as f:
        self.assertNotIn(b"Flex", f.read())  # select TF ops are custom ops named Flex<Op>
      interpreter = tflite.TFLiteClassifier(path).interpreter
      ops = {d["op_name"] for d in interpreter._get_ops_details()}  # pylint: disable=protected-access
      self.assertIn("WHILE", ops)
      self.assertNotIn("CUSTOM", ops)
    self.assertLess(os.path.getsize(self.tflite_paths["int8"]), 0.5 * os.path.getsize(self.tflite_paths["float32"]))

  def test_tflite_float32_matches_keras(self):
    model = tflite.TFLiteClassifier(self.tflite_paths["float32"])
    for batch, expected in zip(self.batches + self.batches[:1], self.logits + self.logits[:1]):
      self.assertAllClose(model(batch), expected, atol=1e-4)
    # Extra padding is invisible to the TFLite model too.
    self.assertAllClose(model(pad(self.batches[1], 9)), self.logits[1], atol=1e-4)

  def test_token_head_tflite_float32_matches_keras(self):
    """The token head's loop (states written per position) converts to builtins and computes the same logits."""
    tagger = tiny_bilstm(seed=6, head="token")
    path = tiny.export_tiny_classifier(tagger, os.path.join(self.root, "export"), self.vocab_file,
                                       model_name="bilstm_tagger", with_distill_signature=False)
    tflite_path = tflite.convert_saved_model(path, os.path.join(self.root, "tagger.tflite"), "float32")
    model = tflite.TFLiteClassifier(tflite_path)
    for batch in self.batches:
      expected = tagger(batch, training=False)["logits"].numpy()
      self.assertAllClose(model(batch), expected, atol=1e-4)

  def test_tflite_int8_stays_close_to_keras(self):
    logits = np.concatenate([tflite.TFLiteClassifier(self.tflite_paths["int8"])(b) for b in self.batches])
    expected = np.concatenate(self.logits)
    parity = compare_logits(expected, logits)
    self.assertGreaterEqual(parity.argmax_agreement, 0.9)
    self.assertLess(parity.max_abs_logit_diff, 0.1 * np.max(np.abs(expected)))
    self.assertGreater(parity.max_abs_logit_diff, 0.0)  # it really is a different (quantised) model


if __name__ == "__main__":
  tf.test.main()

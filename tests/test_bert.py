"""Tests for tf_distill.bert and tf_distill.pretrained.

The real-weights test checks our Keras BERT against transformers' TFBertModel, an independent implementation,
both loaded with all-MiniLM-L6-v2.
"""

import json
import os
import shutil

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
from safetensors.numpy import load_file, save_file
import tensorflow as tf

from tf_distill import bert, pretrained
from tf_distill.bert import OUTPUT_KEYS, BertClassifier, BertConfig, input_signature, masked_scores

import tiny


class BertReferenceTest(tf.test.TestCase):
  """all-MiniLM-L6-v2 in our BertClassifier vs in transformers' TFBertModel."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # pylint: disable=import-outside-toplevel
    import transformers
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model
    path = pretrained.default_pretrained_dir()
    cls.model = pretrained.build_pretrained_classifier(path, 2, hidden_dropout_prob=0.0,
                                                       attention_probs_dropout_prob=0.0)
    # "hello world , this is a test" / "bad movie" + padding / a sentence pair with segment ids 1.
    cls.input_ids = np.array([[101, 7592, 2088, 1010, 2023, 2003, 1037, 3231, 102],
                              [101, 2919, 3185, 102, 0, 0, 0, 0, 0],
                              [101, 2204, 102, 2919, 3185, 102, 0, 0, 0]], np.int32)
    cls.input_mask = (cls.input_ids != 0).astype(np.int32)
    cls.segment_ids = np.array([[0] * 9, [0] * 9, [0, 0, 0, 1, 1, 1, 0, 0, 0]], np.int32)
    hf_inputs = dict(input_ids=cls.input_ids, attention_mask=cls.input_mask, token_type_ids=cls.segment_ids)
    hf_model = transformers.TFBertModel(transformers.BertConfig.from_json_file(os.path.join(path, "config.json")))
    hf_model(**hf_inputs)  # builds the variables
    _, info = load_pytorch_state_dict_in_tf2_model(hf_model, load_file(os.path.join(path, "model.safetensors")),
                                                   allow_missing_keys=True, output_loading_info=True)
    cls.hf_loading_info = info
    cls.reference = hf_model(**hf_inputs, output_attentions=True, output_hidden_states=True, training=False)
    cls.outputs = cls.model({"input_ids": cls.input_ids, "input_mask": cls.input_mask,
                             "segment_ids": cls.segment_ids}, training=False)

  def test_reference_loaded_every_weight(self):
    self.assertEqual(self.hf_loading_info["missing_keys"], [])
    self.assertEqual(self.hf_loading_info["mismatched_keys"], [])

  def test_config_comes_from_config_json(self):
    self.assertEqual(self.model.config.num_hidden_layers, 6)
    self.assertEqual(self.model.config.hidden_size, 384)
    self.assertEqual(self.model.config.hidden_dropout_prob, 0.0)
    self.assertEqual(self.model.config.num_labels, 2)

  def test_embeddings_and_every_hidden_state_match(self):
    self.assertAllClose(self.outputs["embeddings"], self.reference.hidden_states[0], atol=1e-4)
    self.assertLen(self.outputs["hidden_states"], 6)
    for i, hidden in enumerate(self.outputs["hidden_states"]):
      self.assertAllClose(hidden, self.reference.hidden_states[i + 1], atol=1e-4, msg=f"layer {i}")
    self.assertAllClose(self.outputs["hidden_states"][-1], self.reference.last_hidden_state, atol=1e-4)

  def test_attention_probs_match(self):
    for layer in (0, 3):
      ours = self.outputs["attention_probs"][layer]
      self.assertEqual(ours.shape, (3, 12, 9, 9))
      self.assertAllClose(ours, self.reference.attentions[layer], atol=1e-4)
    # Padding keys of the second example get no attention.
    self.assertAllClose(self.outputs["attention_probs"][3][1, :, :, 4:], np.zeros([12, 9, 5]), atol=1e-6)

  def test_attention_probs_are_softmax_of_masked_scores(self):
    scores = self.outputs["attention_scores"][2].numpy()
    bias = (1.0 - self.input_mask[:, None, None, :]) * -10000.0
    self.assertAllClose(self.outputs["attention_probs"][2], tiny.softmax(scores + bias), atol=1e-6)

  def test_pooled_output_matches(self):
    pooled = self.model.pooler(self.outputs["hidden_states"][-1][:, 0])
    self.assertAllClose(pooled, self.reference.pooler_output, atol=1e-4)

  def test_logits_only_equals_the_classifier_on_the_reference_pooler_output(self):
    out = self.model({"input_ids": self.input_ids, "input_mask": self.input_mask, "segment_ids": self.segment_ids},
                     training=False, logits_only=True)
    self.assertEqual(list(out), ["logits"])
    kernel, bias = (w.numpy() for w in self.model.classifier.weights)
    self.assertAllClose(out["logits"], self.reference.pooler_output.numpy() @ kernel + bias, atol=1e-4)


class MaskedScoresTest(tf.test.TestCase):

  def test_gradient_is_the_softmax_gradient_over_real_keys_and_zero_at_padding(self):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=[2, 3, 4, 6]).astype(np.float32)
    scores[..., 4:] -= 5.0  # the row minimum sits at a padding key, where a gradient through the floor would land
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.float32)[:, None, None, :]
    weights = rng.normal(size=scores.shape).astype(np.float32)
    scores_t = tf.constant(scores)
    with tf.GradientTape() as tape:
      tape.watch(scores_t)
      loss = tf.reduce_sum(weights * tf.nn.softmax(masked_scores(scores_t, tf.constant(mask)), axis=-1))
    gradient = tape.gradient(loss, scores_t).numpy()
    probs = tiny.softmax(scores + (1.0 - mask) * -10000.0)  # BERT's additive mask: padding gets no gradient
    expected = probs * (weights - np.sum(probs * weights, axis=-1, keepdims=True))
    self.assertAllClose(gradient, expected, atol=1e-6)
    self.assertAllEqual(gradient[0, ..., 4:], np.zeros([3, 4, 2]))


class LayerNormTest(tf.test.TestCase):

  def test_both_forms_are_layer_normalisation_by_hand(self):
    """Hidden states with an outlier dimension 40x the others, a constant row and ordinary rows."""
    rng = np.random.default_rng(0)
    x = (rng.normal(size=[3, 5, 32]) * np.r_[np.ones(31), 40.0]).astype(np.float32)
    x[0, 0] = 1.5
    gamma, beta = rng.normal(size=32).astype(np.float32), rng.normal(size=32).astype(np.float32)
    centered = x - x.mean(-1, keepdims=True)
    expected = centered / np.sqrt((centered ** 2).mean(-1, keepdims=True) + 1e-12) * gamma + beta
    for outlier_safe in (False, True):
      layer = bert.LayerNorm(epsilon=1e-12)
      layer.build(x.shape)
      layer.set_weights([gamma, beta])
      layer.outlier_safe = outlier_safe
      self.assertAllClose(layer(x), expected, atol=1e-5, msg=f"outlier_safe={outlier_safe}")
    self.assertAllClose(expected[0, 0], beta)  # the constant row: no NaN

  def test_use_outlier_safe_layer_norm_reaches_every_layer_norm(self):
    model = tiny.tiny_classifier()
    features = tiny.random_features(4, 9)
    before = model(features, training=False)["logits"]
    bert.use_outlier_safe_layer_norm(model)
    norms = [layer for layer in model.submodules if isinstance(layer, bert.LayerNorm)]
    self.assertLen(norms, 1 + 2 * model.config.num_hidden_layers)
    self.assertTrue(all(layer.outlier_safe for layer in norms))
    self.assertAllClose(model(features, training=False)["logits"], before, atol=1e-5)


class BertClassifierTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model = tiny.tiny_classifier(seed=1)

  def test_output_keys_and_shapes(self):
    features = tiny.random_features(3, 10, seed=2)
    out = self.model(features, training=False)
    self.assertCountEqual(out.keys(), OUTPUT_KEYS)
    self.assertEqual(out["logits"].shape, (3, 2))
    self.assertEqual(out["embeddings"].shape, (3, 10, 32))
    for key in ("hidden_states", "attention_scores", "attention_probs"):
      self.assertLen(out[key], 2)
    self.assertEqual(out["hidden_states"][1].shape, (3, 10, 32))
    self.assertEqual(out["attention_scores"][0].shape, (3, 4, 10, 10))
    self.assertAllClose(tf.reduce_sum(out["attention_probs"][1], -1), np.ones([3, 4, 10]), atol=1e-5)

  def test_appending_padding_does_not_change_logits(self):
    features = tiny.random_features(4, 8, lengths=[8, 5, 3, 7], seed=3, segment_b=True)
    padded = {k: np.pad(v, [[0, 0], [0, 9]]) for k, v in features.items()}
    padded["input_ids"][:, 8:] = 7  # garbage ids under mask 0 must not matter either
    short, long = self.model(features, training=False), self.model(padded, training=False)
    self.assertAllClose(short["logits"], long["logits"], atol=1e-5)
    self.assertAllClose(short["hidden_states"][-1], long["hidden_states"][-1][:, :8], atol=1e-5)
    # The mask is what makes this hold: the same ids attended to change the logits.
    unmasked = dict(padded, input_mask=np.ones_like(padded["input_mask"]))
    self.assertGreater(np.max(np.abs(self.model(unmasked, training=False)["logits"] - long["logits"])), 1e-3)

  def test_logits_only_gives_the_same_logits_and_gradients(self):
    model = tiny.tiny_classifier(seed=5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    features = tiny.random_features(4, 9, lengths=[9, 4, 2, 6], seed=6, segment_b=True)
    labels = np.array([0, 1, 1, 0])
    def loss_and_gradients(**kwargs):
      with tf.GradientTape() as tape:
        logits = model(features, training=True, **kwargs)["logits"]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
      return logits, tape.gradient(loss, model.trainable_variables)
    (full, full_grads), (cls_only, cls_grads) = loss_and_gradients(), loss_and_gradients(logits_only=True)
    self.assertAllClose(full, cls_only, atol=1e-5)
    for variable, g_full, g_cls in zip(model.trainable_variables, full_grads, cls_grads):
      self.assertAllClose(tf.convert_to_tensor(g_full), tf.convert_to_tensor(g_cls), atol=1e-5, msg=variable.name)
    # The last layer really is cut to [CLS]: its attention has one query row.
    embedded = model.embeddings(features["input_ids"], features["segment_ids"])
    last = model.encoder_layers[-1](embedded, tf.zeros([4, 1, 1, 9]), first_token_only=True)
    self.assertEqual(last["hidden_states"].shape, (4, 1, 32))
    self.assertEqual(last["attention_scores"].shape, (4, 4, 1, 9))

  def test_segment_ids_change_the_output(self):
    features = tiny.random_features(2, 8, lengths=[8, 8], seed=4)
    other = dict(features, segment_ids=np.ones_like(features["segment_ids"]))
    self.assertGreater(np.max(np.abs(self.model(features)["logits"] - self.model(other)["logits"])), 1e-4)

  def test_get_config_round_trip(self):
    config = self.model.get_config()
    self.assertEqual(config["config"], tiny.tiny_config().to_dict())
    json.dumps(config)  # serialisable
    clone = BertClassifier.from_config(config).build_weights()
    self.assertEqual(clone.config, self.model.config)
    self.assertEqual(clone.name, self.model.name)
    self.assertEqual([v.shape for v in clone.weights], [v.shape for v in self.model.weights])
    clone.set_weights(self.model.get_weights())
    features = tiny.random_features(2, 6, seed=5)
    self.assertAllClose(clone(features)["logits"], self.model(features)["logits"])

  def test_fresh_models_draw_distinct_initial_weights(self):
    model = BertClassifier(tiny.tiny_config()).build_weights()
    query = model.encoder_layers[0].query.kernel.numpy()
    key = model.encoder_layers[0].key.kernel.numpy()
    self.assertNotAllClose(query, key)
    self.assertNear(float(np.std(query)), 0.02 * 0.88, 0.005)  # truncated normal, stddev 0.02

  def test_dropout_only_in_training(self):
    model = tiny.tiny_classifier(seed=1, hidden_dropout_prob=0.5)
    features = tiny.random_features(2, 8, seed=6)
    self.assertAllClose(model(features, training=False)["logits"], model(features, training=False)["logits"])
    self.assertNotAllClose(model(features, training=True)["logits"], model(features, training=False)["logits"])

  def test_input_signature(self):
    spec = input_signature(16)
    self.assertEqual(sorted(spec), ["input_ids", "input_mask", "segment_ids"])
    self.assertEqual(spec["input_ids"].shape.as_list(), [None, 16])
    self.assertEqual(spec["segment_ids"].dtype, tf.int32)
    self.assertEqual(input_signature()["input_mask"].shape.as_list(), [None, None])


class BertConfigTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("vocab_size", {"vocab_size": 0}, r"vocab_size must be >= 1, got 0"),
      ("num_labels", {"num_labels": 0}, r"num_labels must be >= 1, got 0"),
      ("heads", {"hidden_size": 30, "num_attention_heads": 4},
       r"hidden_size \(30\) must be divisible by num_attention_heads \(4\)"),
      ("activation", {"hidden_act": "swish"}, r"hidden_act 'swish' is not supported; use one of \['gelu', "),
      ("dropout", {"hidden_dropout_prob": 1.0}, r"hidden_dropout_prob must be in \[0, 1\), got 1.0"),
      ("attention_dropout", {"attention_probs_dropout_prob": -0.1},
       r"attention_probs_dropout_prob must be in \[0, 1\), got -0.1"),
  )
  def test_validate_names_the_bad_value(self, overrides, message):
    with self.assertRaisesRegex(ValueError, message):
      tiny.tiny_config(**overrides).validate()
    with self.assertRaisesRegex(ValueError, message):
      BertClassifier(tiny.tiny_config(**overrides))

  def test_from_dict_ignores_keys_bert_does_not_use(self):
    config = BertConfig.from_dict({"hidden_size": 64, "num_attention_heads": 2, "model_type": "bert",
                                   "architectures": ["BertModel"]})
    self.assertEqual((config.hidden_size, config.num_attention_heads), (64, 2))
    self.assertEqual(config.num_hidden_layers, 6)

  def test_from_json_file_missing(self):
    path = os.path.join(self.get_temp_dir(), "nope", "config.json")
    with self.assertRaisesRegex(FileNotFoundError, "BERT config file .*nope/config.json' does not exist"):
      BertConfig.from_json_file(path)


class PretrainedTest(tf.test.TestCase, parameterized.TestCase):
  """Loading a tiny Hugging Face-format directory written by tests/tiny.py."""

  # Our variable path (after the model scope) -> Hugging Face key and whether the tensor is transposed.
  HF_NAMES = {
      "embeddings/word_embeddings/embeddings": ("embeddings.word_embeddings.weight", False),
      "embeddings/position_embeddings/embeddings": ("embeddings.position_embeddings.weight", False),
      "embeddings/token_type_embeddings/embeddings": ("embeddings.token_type_embeddings.weight", False),
      "embeddings/LayerNorm/gamma": ("embeddings.LayerNorm.weight", False),
      "embeddings/LayerNorm/beta": ("embeddings.LayerNorm.bias", False),
      "pooler/kernel": ("pooler.dense.weight", True),
      "pooler/bias": ("pooler.dense.bias", False),
      "layer_1/query/kernel": ("encoder.layer.1.attention.self.query.weight", True),
      "layer_1/key/bias": ("encoder.layer.1.attention.self.key.bias", False),
      "layer_0/value/kernel": ("encoder.layer.0.attention.self.value.weight", True),
      "layer_0/attention_output/kernel": ("encoder.layer.0.attention.output.dense.weight", True),
      "layer_0/attention_LayerNorm/gamma": ("encoder.layer.0.attention.output.LayerNorm.weight", False),
      "layer_1/intermediate/kernel": ("encoder.layer.1.intermediate.dense.weight", True),
      "layer_1/output/kernel": ("encoder.layer.1.output.dense.weight", True),
      "layer_1/output/bias": ("encoder.layer.1.output.dense.bias", False),
      "layer_1/output_LayerNorm/beta": ("encoder.layer.1.output.LayerNorm.bias", False),
  }

  def setUp(self):
    super().setUp()
    self.path = tiny.write_pretrained_dir(os.path.join(self.get_temp_dir(), self._testMethodName))

  def test_weights_land_in_the_right_variables(self):
    model = pretrained.build_pretrained_classifier(self.path, num_labels=3)
    state = load_file(os.path.join(self.path, "model.safetensors"))
    ours = {v.name.split("/", 1)[1][:-2]: v.numpy() for v in model.weights}
    for name, (key, transpose) in self.HF_NAMES.items():
      expected = state["bert." + key].T if transpose else state["bert." + key]
      self.assertAllEqual(ours[name], expected, msg=name)
    # Every encoder/pooler variable holds some checkpoint tensor; only the classifier is fresh.
    fresh = [name for name, value in ours.items() if not name.endswith("/calls")  # dropout call counters
             and not any(np.array_equal(value, v) or np.array_equal(value, v.T) for v in state.values())]
    self.assertCountEqual(fresh, ["classifier/kernel", "classifier/bias"])
    self.assertEqual(model.classifier.kernel.shape, (32, 3))

  def test_overrides_replace_config_json_fields(self):
    model = pretrained.build_pretrained_classifier(self.path, 2, hidden_dropout_prob=0.0)
    self.assertEqual(model.config.hidden_dropout_prob, 0.0)
    self.assertEqual(model.config.attention_probs_dropout_prob, 0.1)  # from config.json

  def test_load_state_dict_drops_the_bert_prefix(self):
    state = pretrained.load_state_dict(self.path)
    self.assertIn("encoder.layer.0.attention.self.query.weight", state)
    self.assertFalse([k for k in state if k.startswith("bert.")])

  def test_missing_directory(self):
    missing = os.path.join(self.get_temp_dir(), "no_such_model")
    with self.assertRaisesRegex(FileNotFoundError, f"pretrained model directory '{missing}' does not exist"):
      pretrained.build_pretrained_classifier(missing, 2)

  @parameterized.named_parameters(("weights", "model.safetensors"), ("config", "config.json"),
                                  ("vocab", "vocab.txt"))
  def test_missing_file(self, name):
    os.remove(os.path.join(self.path, name))
    with self.assertRaisesRegex(FileNotFoundError, rf"lacks \['{name}'\]; it needs config.json"):
      pretrained.build_pretrained_classifier(self.path, 2)

  def test_checkpoint_without_a_bert_tensor(self):
    state = load_file(os.path.join(self.path, "model.safetensors"))
    del state["bert.encoder.layer.1.output.dense.bias"]
    save_file(state, os.path.join(self.path, "model.safetensors"))
    with self.assertRaisesRegex(ValueError, "has no tensor 'encoder.layer.1.output.dense.bias'"):
      pretrained.build_pretrained_classifier(self.path, 2)

  def test_config_that_does_not_match_the_weights(self):
    with open(os.path.join(self.path, "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    config["intermediate_size"] = 48
    with open(os.path.join(self.path, "config.json"), "w", encoding="utf-8") as f:
      json.dump(config, f)
    with self.assertRaisesRegex(ValueError, r"config.json does not match \S*model.safetensors"):
      pretrained.build_pretrained_classifier(self.path, 2)

  def tearDown(self):
    shutil.rmtree(self.path, ignore_errors=True)
    super().tearDown()


if __name__ == "__main__":
  tf.test.main()

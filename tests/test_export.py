"""Tests for tf_distill.export: SavedModel versions and metadata, saved_model_cli parity, TFLite float32 and int8."""

import hashlib
import json
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.export import serving, tflite

import tiny


class SavedModelExportTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.features = tiny.random_features(5, 12, lengths=[12, 3, 7, 5, 9], seed=31, segment_b=True)
    cls.logits = cls.shared.model(cls.features, training=False)["logits"].numpy()

  def test_versions_count_up_and_are_never_overwritten(self):
    root = os.path.join(self.get_temp_dir(), "versions")
    model_dir = os.path.join(root, "model")
    for existing in ("1", "5", "notes"):
      os.makedirs(os.path.join(model_dir, existing))
    self.assertEqual(serving.next_version(model_dir), 6)
    path = tiny.export_tiny_classifier(self.shared.model, root, self.shared.vocab_file, model_name="model",
                                       with_distill_signature=False)
    self.assertEqual(path, os.path.join(model_dir, "6"))
    self.assertTrue(os.path.isfile(os.path.join(path, "saved_model.pb")))
    for version in (5, 6):
      with self.assertRaisesRegex(FileExistsError, rf"{model_dir}/{version} already exists; versions are never "
                                  "overwritten"):
        tiny.export_tiny_classifier(self.shared.model, root, self.shared.vocab_file, model_name="model",
                                    version=version)
    self.assertEqual(sorted(os.listdir(model_dir)), ["1", "5", "6", "notes"])  # no .tmp-* left behind
    self.assertEqual(serving.next_version(model_dir), 7)
    self.assertEqual(serving.next_version(os.path.join(root, "absent")), 1)

  def test_failed_export_leaves_no_temporary_directory(self):
    root = os.path.join(self.get_temp_dir(), "failed")
    missing_vocab = os.path.join(self.get_temp_dir(), "missing_vocab.txt")
    with self.assertRaises(FileNotFoundError):
      tiny.export_tiny_classifier(self.shared.model, root, missing_vocab, model_name="model",
                                  with_distill_signature=False)
    self.assertEqual(os.listdir(os.path.join(root, "model")), [])

  def test_metadata_file(self):
    extra = os.path.join(self.shared.path, "assets.extra")
    with open(os.path.join(extra, "tf_distill.json"), encoding="utf-8") as f:
      metadata = json.load(f)
    with open(self.shared.vocab_file, "rb") as f:
      vocab = f.read()
    self.assertEqual(metadata, {
        "labels": ["neg", "pos"], "num_labels": 2, "max_seq_length": 16, "task_name": "csv",
        "vocab_sha256": hashlib.sha256(vocab).hexdigest(), "bert_config": tiny.tiny_config().to_dict(),
        "model_name": "teacher", "version": 1})
    with open(os.path.join(extra, "vocab.txt"), "rb") as f:
      self.assertEqual(f.read(), vocab)
    self.assertEqual(serving.read_metadata(self.shared.path), metadata)
    self.assertEqual(serving.read_metadata(self.shared.serving_path)["model_name"], "student")

  def test_read_metadata_of_a_foreign_saved_model(self):
    with self.assertRaisesRegex(FileNotFoundError, r"has no assets.extra/tf_distill.json; it was not exported by "
                                "tf_distill"):
      serving.read_metadata(self.get_temp_dir())

  def test_serving_signature_matches_keras(self):
    loaded = tf.saved_model.load(self.shared.serving_path)
    self.assertEqual(list(loaded.signatures), ["serving_default"])
    signature = loaded.signatures["serving_default"]
    self.assertCountEqual(signature.structured_outputs, ["logits", "probabilities"])
    out = signature(**self.features)
    self.assertAllClose(out["logits"], self.logits, atol=1e-5)
    self.assertAllClose(out["probabilities"], tiny.softmax(self.logits), atol=1e-5)
    short = {k: v[:2, :4] for k, v in tiny.random_features(2, 4, seed=2).items()}  # any [batch, seq_len]
    self.assertAllClose(signature(**short)["logits"], self.shared.model(short)["logits"], atol=1e-5)

  def test_saved_model_cli_run_matches_keras(self):
    outputs = serving.run_saved_model_cli(self.shared.serving_path, self.features,
                                          os.path.join(self.get_temp_dir(), "cli"))
    self.assertCountEqual(outputs, ["logits", "probabilities"])
    self.assertAllClose(outputs["logits"], self.logits, atol=1e-5)
    self.assertAllClose(outputs["probabilities"], tiny.softmax(self.logits), atol=1e-5)


class TFLiteExportTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    out_dir = os.path.join(cls.shared.root, "tflite")
    cls.paths = {q: tflite.convert_saved_model(cls.shared.serving_path, os.path.join(out_dir, f"{q}.tflite"), q)
                 for q in tflite.QUANTIZATIONS}
    cls.out_dir = out_dir
    # 64 examples with padding, in two shapes, so the interpreter is resized between calls.
    cls.batches = [tiny.random_features(48, 14, seed=41, segment_b=True), tiny.random_features(16, 6, seed=42)]
    cls.logits = [cls.shared.model(b, training=False)["logits"].numpy() for b in cls.batches]

  def test_files_written_atomically(self):
    self.assertCountEqual(os.listdir(self.out_dir), ["float32.tflite", "int8.tflite"])
    # Dynamic-range quantisation stores the weight matrices in int8.
    self.assertLess(os.path.getsize(self.paths["int8"]), 0.6 * os.path.getsize(self.paths["float32"]))

  def test_float32_matches_keras(self):
    model = tflite.TFLiteClassifier(self.paths["float32"])
    for batch, expected in zip(self.batches + self.batches[:1], self.logits + self.logits[:1]):
      self.assertAllClose(model(batch), expected, atol=1e-4)

  def test_int8_stays_close_to_keras(self):
    model = tflite.TFLiteClassifier(self.paths["int8"])
    logits = np.concatenate([model(b) for b in self.batches])
    expected = np.concatenate(self.logits)
    parity = tflite.compare_logits(expected, logits)
    self.assertEqual(parity.num_examples, 64)
    self.assertGreaterEqual(parity.argmax_agreement, 0.9)
    self.assertLess(parity.max_abs_logit_diff, 0.1 * np.max(np.abs(expected)))
    self.assertGreater(parity.max_abs_logit_diff, 0.0)  # it really is a different (quantised) model

  def test_unknown_quantization(self):
    with self.assertRaisesRegex(ValueError, r"unknown quantization 'fp16'; use one of \['float32', 'int8'\]"):
      tflite.convert_saved_model(self.shared.serving_path, os.path.join(self.get_temp_dir(), "x.tflite"), "fp16")

  def test_missing_tflite_file(self):
    missing = os.path.join(self.get_temp_dir(), "none.tflite")
    with self.assertRaisesRegex(FileNotFoundError, f"TFLite file '{missing}' does not exist"):
      tflite.TFLiteClassifier(missing)


class CompareLogitsTest(tf.test.TestCase):

  def test_numbers(self):
    reference = np.array([[1.0, 2.0], [3.0, 0.0], [0.5, 0.4], [-1.0, 1.0]], np.float32)
    candidate = np.array([[1.5, 1.0], [3.0, 0.1], [0.5, 0.6], [-1.0, 1.0]], np.float32)
    parity = tflite.compare_logits(reference, candidate)
    # |diffs| = [[.5, 1], [0, .1], [0, .2], [0, 0]]; argmaxes [1, 0, 0, 1] vs [0, 0, 1, 1].
    self.assertAllClose(parity.max_abs_logit_diff, 1.0)
    self.assertEqual(parity.argmax_agreement, 0.5)
    self.assertEqual(parity.num_examples, 4)
    self.assertEqual(str(parity), "max |logit diff| 1.00e+00, argmax agreement 50.00% on 4 examples")
    self.assertEqual(tflite.compare_logits(reference, reference).max_abs_logit_diff, 0.0)

  def test_shape_mismatch(self):
    with self.assertRaisesRegex(ValueError, r"logit shapes differ: \(2, 2\) vs \(2, 3\)"):
      tflite.compare_logits(np.zeros([2, 2]), np.zeros([2, 3]))


if __name__ == "__main__":
  tf.test.main()

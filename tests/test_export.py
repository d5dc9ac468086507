"""Tests for tf_distill.export: SavedModel versions and metadata, saved_model_cli parity, the serving_text signature
and its in-graph tokenisation, TFLite float32, int8, full_int8, 16x8 and selective, the parity rules, and a run's
export (export_run, export_student). tests/test_quantization.py checks that full int8 keeps a trained model's
accuracy and that exports losing it are refused."""

import csv
import dataclasses
import hashlib
import json
import os
from unittest import mock

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
from hypothesis import given, settings, strategies as st
import numpy as np
import tensorflow as tf

from tf_distill.configs import DataConfig
from tf_distill.data.processors import InputExample
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.export import parity, run_export, serving, text_signature, tflite, verify
from tf_distill.run_dir import RunDir

import tiny

# tiny.VOCAB plus WordPiece continuations, punctuation and accented or non-Latin tokens, so that the tokenisation
# tests see "##" pieces, punctuation splits and accent stripping.
TEXT_VOCAB = tiny.VOCAB + ["un", "##believ", "##able", "##s", "##ing", "cafe", "naive", "!", ",", ".", "'", "?",
                           "-", "(", ")", "don", "t", "σας", "σ", "中", "ss", "ß", "Cafe", "Great", "##é", "é"]
TEXT_SENTENCES = [
    "a great movie",
    "A GREAT movie!!! (really)",                # case, punctuation
    "Café naïve, unbelievable endings.",        # accents, ## pieces
    "don't stop-believing?",                    # apostrophe, hyphen
    "zzyzx qwerty good",                        # unknown words
    "ΣΑΣ ß 中文 ﬁlm Ｇood",                      # final sigma, sharp s, CJK, ligature, full-width
    "good\x00bad\u200bfilm\ufffd\tplot\u00a0story\u3000end",  # NUL, zero-width, U+FFFD, Unicode spaces
    "the [SEP] film [sep] [UNK] [MASK]x",       # special tokens typed in the text
    "a" * 101 + " good " + "b" * 100,           # a word over tokenizers' 100-character limit, one at it
    "",                                         # empty
    " ".join(tiny.WORDS * 2),                   # longer than max_seq_length: truncated
]


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
        "vocab_sha256": hashlib.sha256(vocab).hexdigest(), "model_type": "bert",
        "model_config": tiny.tiny_config().to_dict(),
        "model_name": "teacher", "version": 1, "do_lower_case": True, "text_pairs": False,
        "signatures": ["distill", "serving_default", "serving_text"]})
    with open(os.path.join(extra, "vocab.txt"), "rb") as f:
      self.assertEqual(f.read(), vocab)
    self.assertEqual(serving.read_metadata(self.shared.path), metadata)
    student = serving.read_metadata(self.shared.serving_path)
    self.assertEqual(student["model_name"], "student")
    self.assertEqual(student["signatures"], ["serving_default", "serving_text"])

  def test_read_metadata_of_a_foreign_saved_model(self):
    with self.assertRaisesRegex(FileNotFoundError, r"has no assets.extra/tf_distill.json; it was not exported by "
                                "tf_distill"):
      serving.read_metadata(self.get_temp_dir())

  def test_serving_signature_matches_keras(self):
    loaded = tf.saved_model.load(self.shared.serving_path)
    self.assertEqual(sorted(loaded.signatures), ["serving_default", "serving_text"])
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


def _python_features(vocab_file, texts, max_seq_length, texts_b=None, do_lower_case=True):
  examples = [InputExample(f"t-{i}", text, None if texts_b is None else texts_b[i]) for i, text in enumerate(texts)]
  features = WordPieceTokenizer(vocab_file, do_lower_case).encode(examples, max_seq_length, [])
  return {k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}


class TextSignatureTest(tf.test.TestCase, parameterized.TestCase):
  """serving_text: the in-graph tokenisation gives the Python WordPieceTokenizer's ids, and its logits are those of
  serving_default on them."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    root = os.path.join(cls.shared.root, "text_signature")
    cls.vocab_file = tiny.write_vocab(os.path.join(root, "vocab.txt"), TEXT_VOCAB)
    spec = tf.TensorSpec([None], tf.string)
    cls.encode = {lower: tf.function(text_signature.TextEncoder(cls.vocab_file, lower, 16).encode,
                                     input_signature=[spec], autograph=False) for lower in (True, False)}

  def assertSameFeatures(self, texts, do_lower_case=True):
    expected = _python_features(self.vocab_file, texts, 16, None, do_lower_case)
    got = self.encode[do_lower_case](tf.constant(texts))
    for key, value in expected.items():
      self.assertAllEqual(got[key], value, msg=f"{key} of {texts}")

  @parameterized.named_parameters(("uncased", True), ("cased", False))
  def test_ids_match_python_tokenizer(self, do_lower_case):
    self.assertSameFeatures(TEXT_SENTENCES, do_lower_case)
    # A wrong tokenisation would not pass: the sentences do produce ## pieces, [UNK], the typed [SEP] and truncation.
    ids = _python_features(self.vocab_file, TEXT_SENTENCES, 16)["input_ids"]
    vocab = {token: i for i, token in enumerate(TEXT_VOCAB)}
    self.assertContainsSubsequence(list(ids[2]), [vocab["un"], vocab["##believ"], vocab["##able"]])
    self.assertIn(tiny.UNK_ID, ids[4])
    self.assertEqual(list(ids[7][:3]), [tiny.CLS_ID, vocab["the"], tiny.SEP_ID])
    self.assertTrue(np.all(ids[-1] != 0))  # truncated to fill all 16 positions

  def test_truncated_pair_lengths_match_truncate_pair(self):
    from tf_distill.data.tokenization import truncate_pair  # pylint: disable=import-outside-toplevel
    cases = [(a, b, budget) for a in range(0, 9) for b in range(0, 9) for budget in (0, 1, 4, 5, 13)]
    got_a, got_b = text_signature.truncated_pair_lengths(
        tf.constant([c[0] for c in cases], tf.int64), tf.constant([c[1] for c in cases], tf.int64),
        tf.constant([c[2] for c in cases], tf.int64))
    for (a, b, budget), ga, gb in zip(cases, got_a.numpy(), got_b.numpy()):
      tokens_a, tokens_b = list(range(a)), list(range(b))
      truncate_pair(tokens_a, tokens_b, budget)
      self.assertEqual((ga, gb), (len(tokens_a), len(tokens_b)), (a, b, budget))

  @settings(max_examples=25, deadline=None, derandomize=True)
  @given(st.lists(st.lists(st.sampled_from(TEXT_VOCAB[5:] + ["Ü", "É", " ", "\t", "!?", "[SEP]", "\x00", "x" * 60,
                                                             "\u200b", "ǅ", "İ", "unbelievable"]),
                           max_size=12).map("".join), min_size=1, max_size=6))
  def test_generated_text_matches_python_tokenizer(self, texts):
    self.assertSameFeatures(texts)

  def test_vocab_lines_keep_ids_of_empty_and_duplicate_lines(self):
    path = os.path.join(self.get_temp_dir(), "odd_vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
      f.write("[PAD]\n[UNK]\n[CLS]\n[SEP]\ngood \n\nfilm\ngood\r\nbad\n\n")
    lines = text_signature.vocab_lines(path)
    self.assertEqual(lines, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[tf_distill unused 4]", "[tf_distill unused 5]",
                             "film", "good", "bad"])  # the Python tokenizer keeps the last "good", id 7
    asset = text_signature.write_asset_vocab(path, os.path.join(self.get_temp_dir(), "asset.txt"))
    encoder = text_signature.TextEncoder(asset, True, 8)
    self.assertAllEqual(encoder.encode(tf.constant(["good film bad"]))["input_ids"],
                        _python_features(path, ["good film bad"], 8)["input_ids"])
    self.assertAllEqual(encoder.encode(tf.constant(["good film bad"]))["input_ids"][0, :5], [2, 7, 6, 8, 3])

  def test_vocab_without_special_tokens(self):
    path = tiny.write_vocab(os.path.join(self.get_temp_dir(), "no_sep.txt"), ["[PAD]", "[UNK]", "[CLS]", "good"])
    with self.assertRaisesRegex(ValueError, r"no_sep.txt' has no \[SEP\] token; pass a BERT vocab.txt"):
      text_signature.vocab_lines(path)

  def test_exported_serving_text_matches_serving_default(self):
    path = self.shared.serving_path
    self.assertEqual(sorted(os.listdir(os.path.join(path, "assets"))), ["vocab.txt"])  # self-contained
    with open(os.path.join(path, "assets", "vocab.txt"), encoding="utf-8") as f:
      self.assertEqual(f.read().split("\n")[:-1], tiny.VOCAB)
    loaded = tf.saved_model.load(path)
    serving_text = loaded.signatures["serving_text"]
    self.assertEqual(serving_text.structured_input_signature[1],
                     {"text": tf.TensorSpec([None], tf.string, name="text")})
    texts = TEXT_SENTENCES[:6] + ["good good great", "bad awful film"]
    features = _python_features(self.shared.vocab_file, texts, 16)  # the export's max_seq_length
    expected = loaded.signatures["serving_default"](**features)
    got = serving_text(text=tf.constant(texts))
    self.assertAllClose(got["logits"], expected["logits"], atol=1e-6)
    self.assertAllClose(got["probabilities"], expected["probabilities"], atol=1e-6)
    self.assertAllClose(got["logits"], self.shared.model(features)["logits"], atol=1e-5)
    # Different texts do give different logits, so equal logits above mean equal ids.
    self.assertGreater(np.max(np.abs(got["logits"][-1] - got["logits"][-2])), 1e-4)

  def test_saved_model_cli_runs_serving_text(self):
    outputs = serving.run_saved_model_cli(self.shared.serving_path, {"text": ["a great movie", "bad film"]},
                                          os.path.join(self.get_temp_dir(), "cli_text"), signature="serving_text")
    features = _python_features(self.shared.vocab_file, ["a great movie", "bad film"], 16)
    self.assertAllClose(outputs["logits"], self.shared.model(features)["logits"], atol=1e-5)

  def test_pair_signature_packs_and_truncates_longest_first(self):
    # A stand-in for the model that returns its inputs, so the signature's output is the packed features.
    serve = tf.function(lambda inputs: {k: tf.identity(v) for k, v in inputs.items()},
                        input_signature=[{k: tf.TensorSpec([None, None], tf.int32, name=k) for k in
                                          ("input_ids", "input_mask", "segment_ids")}], autograph=False)
    serve_text = text_signature.serving_text_function(serve, text_signature.TextEncoder(self.vocab_file, True, 16),
                                                      pairs=True)
    self.assertEqual([spec.name for spec in serve_text.structured_input_signature[0]], ["text", "text_b"])
    long_a, long_b = " ".join(tiny.WORDS[:20]), " ".join(tiny.WORDS[20:26])
    texts = [long_a, "good film", long_a, "", "Café!", "good film"]
    texts_b = [long_b, long_a, long_a, "bad", "", "it was bad"]
    got = serve_text(text=tf.constant(texts), text_b=tf.constant(texts_b))
    expected = _python_features(self.vocab_file, texts, 16, texts_b)
    for key, value in expected.items():
      self.assertAllEqual(got[key], value, msg=key)
    self.assertAllEqual(expected["segment_ids"][5, :8], [0, 0, 0, 0, 1, 1, 1, 1])


class TFLiteExportTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    out_dir = os.path.join(cls.shared.root, "tflite")
    cls.representative = tiny.random_features(200, 16, seed=40)
    cls.paths = {q: tflite.convert_saved_model(cls.shared.serving_path, os.path.join(out_dir, f"{q}.tflite"), q,
                                               representative_features=cls.representative)
                 for q in tflite.VARIANTS}
    cls.out_dir = out_dir
    # 64 examples with padding, in two shapes, so the interpreter is resized between calls.
    cls.batches = [tiny.random_features(48, 14, seed=41, segment_b=True), tiny.random_features(16, 6, seed=42)]
    cls.logits = [cls.shared.model(b, training=False)["logits"].numpy() for b in cls.batches]

  def test_files_written_atomically(self):
    self.assertCountEqual(os.listdir(self.out_dir), [f"{variant}.tflite" for variant in tflite.VARIANTS])
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
    figures = parity.compare_logits(expected, logits)
    self.assertEqual(figures.num_examples, 64)
    self.assertGreaterEqual(figures.argmax_agreement, 0.9)
    self.assertLess(figures.max_abs_logit_diff, 0.1 * np.max(np.abs(expected)))
    self.assertGreater(figures.max_abs_logit_diff, 0.0)  # it really is a different (quantised) model

  def test_full_int8_runs_int8_kernels(self):
    path = self.paths["full_int8"]
    self.assertEqual(tflite.float_ops(path), [])  # every op but the float<->int8 edges computes in int8
    self.assertEqual(tflite.float_ops(self.paths["int8"])[:2], ["ADD", "BATCH_MATMUL"])  # dynamic range: float
    interpreter = tflite.TFLiteClassifier(path).interpreter
    tensors = interpreter.get_tensor_details()
    self.assertGreater(sum(t["dtype"] == np.int8 for t in tensors), sum(t["dtype"] == np.float32 for t in tensors))
    self.assertEqual({d["dtype"] for d in interpreter.get_input_details()}, {np.int32})
    self.assertEqual({d["dtype"] for d in interpreter.get_output_details()}, {np.float32})
    self.assertLess(os.path.getsize(path), 0.6 * os.path.getsize(self.paths["float32"]))

  def test_full_int8_stays_close_to_keras(self):
    model = tflite.TFLiteClassifier(self.paths["full_int8"])
    logits = np.concatenate([model(b) for b in self.batches])
    figures = parity.compare_logits(np.concatenate(self.logits), logits)
    self.assertGreaterEqual(figures.argmax_agreement, 0.9)
    self.assertLess(figures.max_abs_logit_diff, 0.1 * np.max(np.abs(np.concatenate(self.logits))))
    self.assertGreater(figures.max_abs_logit_diff, 0.0)

  def test_a_file_with_several_signatures_and_no_serving_default_is_refused(self):
    module = tf.Module()
    spec = [tf.TensorSpec([1, 2], tf.float32)]
    module.double = tf.function(lambda x: {"logits": 2.0 * x}, input_signature=spec)
    module.half = tf.function(lambda x: {"logits": 0.5 * x}, input_signature=spec)
    saved = os.path.join(self.get_temp_dir(), "two_signatures")
    tf.saved_model.save(module, saved, signatures={"double": module.double, "half": module.half})
    path = os.path.join(self.get_temp_dir(), "two_signatures.tflite")
    with open(path, "wb") as f:
      f.write(tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["double", "half"]).convert())
    with self.assertRaisesRegex(ValueError, r"no serving_default signature and not exactly one.*'double', 'half'"):
      tflite.TFLiteClassifier(path)

  @parameterized.parameters("16x8", "selective")
  def test_calibrated_variants_stay_close_to_keras(self, variant):
    model = tflite.TFLiteClassifier(self.paths[variant])
    expected = np.concatenate(self.logits)
    figures = parity.compare_logits(expected, np.concatenate([model(b) for b in self.batches]))
    self.assertGreaterEqual(figures.argmax_agreement, 0.9)
    self.assertLess(figures.max_abs_logit_diff, 0.1 * np.max(np.abs(expected)))

  def test_16x8_has_int16_activations(self):
    interpreter = tflite.TFLiteClassifier(self.paths["16x8"]).interpreter
    dtypes = [t["dtype"] for t in interpreter.get_tensor_details()]
    self.assertGreater(dtypes.count(np.int16), dtypes.count(np.float32))
    self.assertIn(np.int8, dtypes)  # the weights (on this tiny model the int16 biases and tables keep it > 0.6x)
    self.assertLess(os.path.getsize(self.paths["16x8"]), os.path.getsize(self.paths["float32"]))

  def test_selective_keeps_the_worst_ops_in_float(self):
    rows = [{"tensor_name": "a", "scale": "0.5", "mean_squared_error": str((0.5 * 0.71) ** 2)},  # 0.71 steps
            {"tensor_name": "b", "scale": "0.5", "mean_squared_error": str((0.5 * 0.69) ** 2)},  # 0.69 steps
            {"tensor_name": "c", "scale": "0", "mean_squared_error": "1"}]  # no scale: not quantised
    self.assertEqual(tflite.worst_tensors(rows), ["a"])
    self.assertEqual(tflite.worst_tensors(rows, rmse_in_steps=0.5), ["a", "b"])

  @parameterized.parameters("full_int8", "16x8", "selective")
  def test_calibrated_variants_need_representative_features(self, variant):
    with self.assertRaisesRegex(ValueError, rf"{variant} calibrates activation ranges on representative examples: "
                                r"pass representative_features with \['input_ids', 'input_mask', 'segment_ids'\]"):
      tflite.convert_saved_model(self.shared.serving_path, os.path.join(self.get_temp_dir(), "x.tflite"), variant)

  def test_16x8_the_converter_cannot_quantise_is_one_clear_error(self):
    """As for the BiLSTM student, whose WHILE loop's condition has no calibrated range in 16x8."""
    def fail(converter):
      del converter
      raise RuntimeError("Max and min for dynamic tensors should be recorded during calibration\nEmpty min/max")

    with mock.patch("tensorflow.lite.python.lite.TFLiteSavedModelConverterV2.convert", fail):
      with self.assertRaisesRegex(tflite.ConversionError, r"^16x8: the TFLite converter cannot quantise this model "
                                  r"\(Empty min/max\); use full_int8 or selective$"):
        tflite.convert_saved_model(self.shared.serving_path, os.path.join(self.get_temp_dir(), "x.tflite"), "16x8",
                                   representative_features=self.representative)

  def test_unknown_quantization(self):
    with self.assertRaisesRegex(ValueError, r"unknown quantization 'fp16'; use one of \['float32', 'int8', "
                                r"'full_int8', '16x8', 'selective'\]"):
      tflite.convert_saved_model(self.shared.serving_path, os.path.join(self.get_temp_dir(), "x.tflite"), "fp16")

  def test_missing_tflite_file(self):
    missing = os.path.join(self.get_temp_dir(), "none.tflite")
    with self.assertRaisesRegex(FileNotFoundError, f"TFLite file '{missing}' does not exist"):
      tflite.TFLiteClassifier(missing)


class CompareLogitsTest(tf.test.TestCase):

  def test_numbers(self):
    reference = np.array([[1.0, 2.0], [3.0, 0.0], [0.5, 0.4], [-1.0, 1.0]], np.float32)
    candidate = np.array([[1.5, 1.0], [3.0, 0.1], [0.5, 0.6], [-1.0, 1.0]], np.float32)
    figures = parity.compare_logits(reference, candidate)
    # |diffs| = [[.5, 1], [0, .1], [0, .2], [0, 0]]; argmaxes [1, 0, 0, 1] vs [0, 0, 1, 1].
    self.assertAllClose(figures.max_abs_logit_diff, 1.0)
    self.assertEqual(figures.argmax_agreement, 0.5)
    self.assertEqual(figures.num_examples, 4)
    self.assertEqual(str(figures), "max |logit diff| 1.00e+00, argmax agreement 50.00% on 4 examples")
    self.assertEqual(parity.compare_logits(reference, reference).max_abs_logit_diff, 0.0)
    self.assertEqual(str(parity.compare_logits(reference, candidate, "words")),
                     "max |logit diff| 1.00e+00, argmax agreement 50.00% on 4 words")

  def test_shape_mismatch(self):
    with self.assertRaisesRegex(ValueError, r"logit shapes differ: \(2, 2\) vs \(2, 3\)"):
      parity.compare_logits(np.zeros([2, 2]), np.zeros([2, 3]))


class ParityRuleTest(tf.test.TestCase):

  def test_accuracy_and_drop(self):
    logits = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 3.0], [5.0, 0.0]], np.float32)  # argmax 0, 1, 1, 0
    self.assertEqual(parity.labelled_accuracy(logits, np.array([0, 0, 1, -1])), 2 / 3)  # -1: unlabelled
    self.assertIsNone(parity.labelled_accuracy(logits, np.array([-1, -1, -1, -1])))
    self.assertEqual(parity.accuracy_drop_points(0.75, 0.8), 5.0)
    self.assertEqual(parity.accuracy_drop_points(0.8, 0.75), -5.0)
    self.assertIsNone(parity.accuracy_drop_points(None, 0.8))
    self.assertIsNone(parity.accuracy_drop_points(0.8, None))

  def test_float32_variants_share_one_atol(self):
    self.assertEqual(parity.ATOL, 1e-3)
    rule = parity.tolerance()
    self.assertEqual((rule.limit, rule.rule), (1e-3, "tolerance 0.001"))
    self.assertTrue(rule.allows(parity.Parity(1e-3, 1.0, 4)))
    self.assertFalse(rule.allows(parity.Parity(1.1e-3, 1.0, 4)))
    self.assertEqual(parity.tolerance(atol=0.5).limit, 0.5)
    self.assertFalse(parity.is_quantized("float32"))
    self.assertFalse(parity.is_quantized("float32.tflite"))
    for name in ("int8", "full_int8.tflite", "other.tflite"):
      self.assertTrue(parity.is_quantized(name), name)

  def test_accuracy_check(self):
    keras_logits = np.array([[2.0, 1.0], [0.0, 1.0], [1.0, 3.0], [5.0, 0.0]], np.float32)  # argmax 0, 1, 1, 0
    logits = np.array([[2.0, 1.0], [1.0, 0.0], [1.0, 3.0], [5.0, 0.0]], np.float32)  # argmax 0, 0, 1, 0
    labels = np.array([0, 1, 1, 1])  # Keras 3/4 right, the variant 2/4: a drop of 25 points
    check = parity.accuracy_check(logits, keras_logits, labels, max_drop=1.0)
    self.assertEqual((check.accuracy, check.reference, check.drop_points, check.against), (0.5, 0.75, 25.0, "labels"))
    self.assertFalse(check.ok)
    self.assertEqual(str(check), "accuracy 50.00% vs the Keras student's 75.00% (labels): +25.00 points drop, "
                                 "threshold 1")
    self.assertTrue(parity.accuracy_check(logits, keras_logits, labels, max_drop=25.0).ok)
    # A variant that is better than Keras passes any threshold.
    self.assertTrue(parity.accuracy_check(keras_logits, logits, labels, max_drop=0.0).ok)
    # Without labels the Keras predictions stand in: 3 of 4 agree.
    unlabelled = parity.accuracy_check(logits, keras_logits, np.array([-1, -1, -1, -1]), max_drop=30.0)
    self.assertEqual((unlabelled.accuracy, unlabelled.reference, unlabelled.drop_points, unlabelled.against),
                     (0.75, 1.0, 25.0, "Keras predictions"))
    self.assertTrue(unlabelled.ok)
    with self.assertRaisesRegex(ValueError, "the accuracy-drop threshold must be >= 0 points, got -1"):
      parity.accuracy_check(logits, keras_logits, labels, max_drop=-1)

  def test_examples_round_trip(self):
    directory = os.path.join(self.get_temp_dir(), "examples")
    os.makedirs(directory)
    self.assertIsNone(parity.read_examples(directory))
    features = tiny.random_features(3, 5, seed=1)
    features["label_ids"] = np.array([1, -1, 0])
    logits = np.arange(6, dtype=np.float32).reshape(3, 2)
    parity.write_examples(directory, features, logits)
    read = parity.read_examples(directory)
    for key in ("input_ids", "input_mask", "segment_ids", "label_ids"):
      self.assertAllEqual(read[key], features[key])
    self.assertAllEqual(read["keras_logits"], logits)

  def test_report_round_trip(self):
    directory = os.path.join(self.get_temp_dir(), "report")
    self.assertEqual(parity.read_report(directory), {})
    report = {"float32": {"max_abs_logit_diff": 1e-6, "sha256": "ab"}}
    path = parity.write_report(directory, report)
    self.assertEqual(path, os.path.join(directory, "parity.json"))
    self.assertEqual(parity.read_report(directory), report)
    with open(path, "w", encoding="utf-8") as f:
      f.write("{truncated")
    self.assertEqual(parity.read_report(directory), {})


class RunExportTest(tf.test.TestCase):
  """A hand-made run directory (a tiny model as its best weights, a CSV task) exported with export_student."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tiny.shared_teacher().root, "run_export")
    data_dir = tiny.write_csv_task(os.path.join(cls.root, "data"), num_train=8, num_dev=4, num_test=6)
    vocab = tiny.write_vocab(os.path.join(cls.root, "vocab.txt"))
    cls.run_dir = RunDir(os.path.join(cls.root, "run"))
    cls.model = tiny.tiny_classifier(seed=21)
    cls.data_config = DataConfig(task_name="csv", data_dir=data_dir, vocab_file=vocab, max_seq_length=16)
    cls.run_dir.write_config(data=cls.data_config)
    cls.run_dir.write_model_info(cls.model, cls.data_config, list(tiny.LABELS))
    cls.model.save_weights(cls.run_dir.best_weights)
    cls.export_root = os.path.join(cls.root, "export")
    # A random model on 5 examples, where one changed prediction is 20 points: this class checks the files and
    # figures, tests/test_quantization.py the accuracy threshold on a trained model.
    cls.result = run_export.export_student(cls.run_dir, cls.export_root, "student", tflite=tflite.VARIANTS,
                                           parity_examples=5, representative_examples=4, max_accuracy_drop=100.0)
    with open(os.path.join(data_dir, "test.csv"), encoding="utf-8", newline="") as f:
      rows = list(csv.DictReader(f))[:5]
    examples = [InputExample(f"test-{i}", row["text"]) for i, row in enumerate(rows)]
    features = WordPieceTokenizer(vocab).encode(examples, 16, [])
    cls.keras_logits = cls.model({k: features[k] for k in tflite.FEATURE_KEYS}, training=False)["logits"].numpy()
    cls.label_ids = np.array([tiny.LABELS.index(row["label"]) for row in rows])

  def test_files_and_report(self):
    result = self.result
    self.assertEqual(result.saved_model, os.path.join(self.export_root, "student", "1"))
    self.assertEqual(result.tflite_dir, os.path.join(self.export_root, "student_tflite", "1"))
    self.assertEqual(sorted(os.listdir(result.tflite_dir)),
                     sorted([f"{variant}.tflite" for variant in tflite.VARIANTS] + ["parity.json",
                                                                                   "parity_examples.npz"]))
    self.assertEqual(sorted(tf.saved_model.load(result.saved_model).signatures), ["serving_default", "serving_text"])
    report = parity.read_report(result.tflite_dir)
    self.assertEqual(report, json.loads(json.dumps(result.report)))
    self.assertEqual(sorted(report), sorted(list(tflite.VARIANTS) + ["keras_accuracy", "max_accuracy_drop", "metric",
                                                                     "saved_model", "saved_model_cli",
                                                                     "serving_text"]))
    self.assertEqual(report["metric"], "accuracy")
    keras_accuracy = float(np.mean(self.keras_logits.argmax(-1) == self.label_ids))
    self.assertAllClose(report["keras_accuracy"], keras_accuracy)
    self.assertEqual(result.num_labelled, 5)
    for key in ("saved_model_cli", "serving_text", "float32"):
      self.assertLess(report[key]["max_abs_logit_diff"], 1e-4, key)
      self.assertEqual(report[key]["num_examples"], 5)
    for variant in tflite.VARIANTS:
      entry = report[variant]
      self.assertEqual(entry["sha256"], serving.file_sha256(entry["path"]))
      self.assertEqual(entry["bytes"], os.path.getsize(entry["path"]))
      logits = tflite.TFLiteClassifier(entry["path"])(self._features())
      accuracy = float(np.mean(logits.argmax(-1) == self.label_ids))
      self.assertAllClose(entry["accuracy"], accuracy)
      self.assertAllClose(entry["accuracy_drop_points"], 100 * (keras_accuracy - accuracy))
      self.assertAllClose(entry["max_abs_logit_diff"], np.max(np.abs(logits - self.keras_logits)))
    self.assertEqual(report["full_int8"]["float_ops"], [])
    for variant in tflite.CALIBRATED:
      self.assertEqual(report[variant]["representative_examples"], 4)
      self.assertTrue(report[variant]["accepted"])
    examples = parity.read_examples(result.tflite_dir)
    self.assertAllEqual(examples["label_ids"], self.label_ids)
    self.assertAllClose(examples["keras_logits"], self.keras_logits, atol=1e-6)

  def _features(self):
    return run_export.split_examples(self.run_dir.data_config(), "test", 5)[1]

  def test_lines(self):
    lines = self.result.lines()
    self.assertLen(lines, 3 + len(tflite.VARIANTS))
    saved_model = self.result.saved_model
    self.assertRegex(lines[0], rf"^SavedModel {saved_model} via saved_model_cli run: max \|logit diff\| \S+, argmax "
                               r"agreement 100.00% on 5 examples$")
    self.assertRegex(lines[1], rf"^SavedModel {saved_model} serving_text on the raw test text: max \|logit diff\| ")
    for line, variant in zip(lines[2:-1], tflite.VARIANTS):
      self.assertRegex(line, rf"^TFLite {variant} {self.result.tflite_dir}/{variant}.tflite \(\d+.\d\d MiB\): max "
                             r"\|logit diff\| .* on 5 examples; test accuracy \d+.\d\d% \([+-]\d+.\d\d points vs "
                             r"Keras\)$")
    self.assertEqual(lines[-1], f"Keras student test accuracy {100 * self.result.report['keras_accuracy']:.2f}% on 5 "
                               "labelled examples")

  def test_float32_mismatch_fails(self):
    self.assertEqual(self.result.errors(), [])  # the real export matches
    self.result.raise_on_failure()
    off = dict(self.result.figures, serving_text=parity.Parity(2e-3, 1.0, 5))
    self.assertEqual(dataclasses.replace(self.result, figures=off).errors(),
                     ["exported float32 serving_text logits differ from the Keras student by 2.00e-03 (> 0.001): "
                      "the export does not compute the model"])
    with self.assertRaisesRegex(RuntimeError, r"^exported float32 serving_text logits differ"):
      dataclasses.replace(self.result, figures=off).raise_on_failure()

  def test_verify_export_accepts_what_export_student_wrote(self):
    result = verify.verify_export(self.result.saved_model, run_cli=False, max_accuracy_drop=100.0)
    self.assertTrue(result.ok, str(result))
    self.assertEqual([c.name for c in result.checks if c.name.startswith("tflite:")],
                     sorted(f"tflite:{variant}.tflite" for variant in tflite.VARIANTS))

  def test_export_run_of_a_run_dir_path(self):
    path = run_export.export_run(self.run_dir.path, self.export_root, "teacher", version=3)
    self.assertEqual(path, os.path.join(self.export_root, "teacher", "3"))
    metadata = serving.read_metadata(path)
    self.assertEqual({k: metadata[k] for k in ("labels", "max_seq_length", "task_name", "do_lower_case",
                                               "text_pairs", "signatures")},
                     {"labels": ["neg", "pos"], "max_seq_length": 16, "task_name": "csv", "do_lower_case": True,
                      "text_pairs": False, "signatures": ["distill", "serving_default", "serving_text"]})
    features = tiny.random_features(3, 16, seed=22)
    self.assertAllClose(tf.saved_model.load(path).signatures["serving_default"](**features)["logits"],
                        self.model(features, training=False)["logits"], atol=1e-5)


if __name__ == "__main__":
  tf.test.main()

"""Tests for tf_distill.export.verify and `tf_distill verify-export`: a good tiny export passes every check; broken
copies of it (missing signature, wrong dtype, TFLite file of another model, truncated files) fail with named errors."""

import contextlib
import io
import json
import os
import shutil
import subprocess
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import flags
from absl.testing import flagsaver
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tf_distill.cli import main as cli_main
from tf_distill.cli import verify_export as verify_export_cli
from tf_distill.export import parity, serving, tflite, verify

import tiny


def _verify_cli(path):
  return subprocess.Popen([tiny.PYTHON, "-m", "tf_distill.cli.main", "verify-export", path], env=tiny.subprocess_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _define_verify_flags_once():
  if "max_accuracy_drop" not in flags.FLAGS:
    verify_export_cli.define_flags()
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(["test"])


def _edit_signatures(version_dir, edit):
  path = os.path.join(version_dir, "saved_model.pb")
  proto = saved_model_pb2.SavedModel()
  with open(path, "rb") as f:
    proto.ParseFromString(f.read())
  edit(proto.meta_graphs[0].signature_def)
  with open(path, "wb") as f:
    f.write(proto.SerializeToString())


def _truncate(path):
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])


class VerifyExportTest(tf.test.TestCase):
  """One tiny student export with a float32 TFLite file, and broken copies of it."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="tf_distill_verify_")
    vocab = tiny.write_vocab(os.path.join(cls.root, "vocab.txt"))
    model = tiny.tiny_classifier(seed=11)
    cls.good = tiny.export_tiny_classifier(model, os.path.join(cls.root, "good"), vocab,
                                           model_name="student", with_distill_signature=False)
    cls.good_tflite = verify.tflite_dir_for(cls.good)
    float32 = tflite.convert_saved_model(cls.good, os.path.join(cls.good_tflite, "float32.tflite"))
    # int8.tflite stands for a quantised file: a copy, checked on the stored examples for its accuracy.
    int8 = shutil.copyfile(float32, os.path.join(cls.good_tflite, "int8.tflite"))
    with open(os.path.join(cls.good_tflite, "parity.json"), "w", encoding="utf-8") as f:
      json.dump({"float32": {"sha256": serving.file_sha256(float32), "max_abs_logit_diff": 1e-7},
                 "int8": {"sha256": serving.file_sha256(int8), "max_abs_logit_diff": 1e-7}}, f)
    # The stored test examples: labelled with the model's own predictions, but one of 40 flipped, so the Keras
    # student is 97.5% right.
    examples = tiny.random_features(40, 12, seed=13)
    keras_logits = model(examples, training=False)["logits"].numpy()
    examples["label_ids"] = keras_logits.argmax(-1)
    examples["label_ids"][0] = 1 - examples["label_ids"][0]
    parity.write_examples(cls.good_tflite, examples, keras_logits)
    cls.good_cli = _verify_cli(os.path.dirname(cls.good))  # the model directory: takes the latest version
    # Missing serving_text, and serving_default's input_ids declared int64.
    cls.bad_signatures = cls._copy("bad_signatures")

    def break_signatures(signature_defs):
      del signature_defs["serving_text"]
      signature_defs["serving_default"].inputs["input_ids"].dtype = tf.int64.as_datatype_enum
    _edit_signatures(cls.bad_signatures, break_signatures)
    # float32.tflite and full_int8.tflite converted from another model (the first one listed in parity.json, the
    # other not), and a truncated int8.tflite.
    cls.bad_tflite = cls._copy("bad_tflite")
    bad_dir = verify.tflite_dir_for(cls.bad_tflite)
    _truncate(os.path.join(bad_dir, "int8.tflite"))
    other = serving._ClassifierModule(tiny.tiny_classifier(seed=12))  # pylint: disable=protected-access
    converter = tf.lite.TFLiteConverter.from_concrete_functions([other.serve.get_concrete_function()], other)
    with open(os.path.join(bad_dir, "float32.tflite"), "wb") as f:
      f.write(converter.convert())
    shutil.copyfile(os.path.join(bad_dir, "float32.tflite"), os.path.join(bad_dir, "full_int8.tflite"))
    cls.truncated_pb = cls._copy("truncated_pb")
    _truncate(os.path.join(cls.truncated_pb, "saved_model.pb"))
    cls.results = {name: verify.verify_export(getattr(cls, name), run_cli=False)
                   for name in ("bad_signatures", "bad_tflite", "truncated_pb")}
    cls.cli = {"good": cls.good_cli.communicate(timeout=600) + (cls.good_cli.returncode,)}

  @classmethod
  def _copy(cls, name):
    """A copy of the good export and its TFLite files as <root>/<name>/student/1."""
    shutil.copytree(cls.good, os.path.join(cls.root, name, "student", "1"))
    shutil.copytree(cls.good_tflite, os.path.join(cls.root, name, "student_tflite", "1"))
    return os.path.join(cls.root, name, "student", "1")

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_good_export_passes_every_check(self):
    stdout, stderr, returncode = self.cli["good"]
    self.assertEqual(returncode, 0, stderr[-3000:])
    self.assertIn(f"verify-export {self.good}\n", stdout)
    for check in ("saved_model", "metadata", "signatures: ['serving_default', 'serving_text']", "serving_default",
                  "serving_text", "load", "saved_model_cli serving_default", "saved_model_cli serving_text",
                  "text_tokenization", "tflite:float32.tflite", "tflite:int8.tflite"):
      self.assertIn(f"[ok] {check}", stdout)
    self.assertNotIn("[FAIL]", stdout)
    self.assertIn("[ok] tflite:int8.tflite: on the 40 test examples of parity_examples.npz: accuracy 97.50% vs the "
                  "Keras student's 97.50% (labels): +0.00 points drop, threshold 1", stdout)
    self.assertIn("all 11 checks passed", stdout)
    self.assertNotRegex(stderr, r"(?m)^error:")

  def test_missing_signature_and_wrong_dtype(self):
    result = self.results["bad_signatures"]
    self.assertFalse(result.ok)
    self.assertEqual(result.errors, [
        "signatures: missing ['serving_text'] (the export has ['serving_default']); export again",
        "serving_default: input input_ids is int64 [-1, -1], expected int32 [batch, seq]"])

  def test_tflite_of_another_model_and_truncated_tflite(self):
    result = self.results["bad_tflite"]
    self.assertEqual([check.name for check in result.checks if not check.ok],
                     ["tflite:float32.tflite", "tflite:full_int8.tflite", "tflite:int8.tflite"])
    float32, full_int8, int8 = result.errors
    self.assertRegex(float32, r"^tflite:float32.tflite: float32.tflite is not the file export_student checked \(its "
                              r"sha256 differs from parity.json; vs SavedModel: max \|logit diff\| .*\): it was "
                              r"replaced, export again$")
    self.assertRegex(full_int8, r"^tflite:full_int8.tflite: on the 40 test examples of parity_examples.npz: accuracy "
                                r"\d+.\d\d% vs the Keras student's 97.50% \(labels\): \+\d+.\d\d points drop, threshold "
                                r"1; full_int8.tflite loses too much accuracy to ship: export again with another "
                                r"quantisation \(--tflite=16x8 or selective\)$")
    self.assertRegex(int8, r"^tflite:int8.tflite: .*int8.tflite does not run \(ValueError: .*\); the file is "
                           r"truncated, corrupt or not from this model: export again$")
    self.assertTrue(all(check.ok for check in result.checks if not check.name.startswith("tflite:")))

  def test_truncated_saved_model(self):
    result = self.results["truncated_pb"]
    self.assertEqual(len(result.errors), 1)
    self.assertRegex(result.errors[0], r"^saved_model: .*/truncated_pb/student/1/saved_model.pb cannot be parsed "
                                       r"\(DecodeError: .*\); the file is truncated or corrupt: export again$")

  def test_cli_prints_one_error_line_per_failure(self):
    _define_verify_flags_once()
    stdout, stderr = io.StringIO(), io.StringIO()
    with flagsaver.flagsaver(saved_model_cli=False), contextlib.redirect_stdout(stdout), \
        contextlib.redirect_stderr(stderr), self.assertRaises(SystemExit) as caught:
      verify_export_cli.main(["tf_distill verify-export", self.bad_signatures])
    self.assertEqual(caught.exception.code, 1)
    self.assertIn("[FAIL] signatures: missing ['serving_text']", stdout.getvalue())
    self.assertIn("[ok] load: ", stdout.getvalue())
    self.assertEqual(stderr.getvalue().splitlines(),
                     [f"error: {error}" for error in self.results["bad_signatures"].errors])
    with self.assertRaisesRegex(ValueError, r"verify-export takes one export directory \(e.g. export/student or "
                                r"export/student/1\), got \['a', 'b'\]"):
      verify_export_cli.main(["tf_distill verify-export", "a", "b"])

  def test_not_an_export(self):
    result = verify.verify_export(os.path.join(self.root, "nowhere"))
    self.assertEqual(result.errors, [f"saved_model: {os.path.join(self.root, 'nowhere')} is not a directory; pass "
                                     "an export version directory such as export/student/1, or its model directory"])
    result = verify.verify_export(self.root)
    self.assertEqual(result.errors, [f"saved_model: no saved_model.pb in {self.root}; pass an export version "
                                     "directory such as export/student/1, or its model directory"])

  def test_tflite_dir_for(self):
    self.assertEqual(verify.tflite_dir_for("/x/export/student/3"), "/x/export/student_tflite/3")


class MainTest(tf.test.TestCase):

  def run_main(self, *args):
    with self.assertRaises(SystemExit) as caught:
      cli_main.run(["tf_distill", *args])
    return caught.exception.code

  def test_help_lists_commands(self):
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
      self.assertEqual(self.run_main("--help"), 0)
    for command in ("verify-export", "export-student", "saved_model_cli"):
      self.assertIn(f"  {command} ", stdout.getvalue())

  def test_unknown_command(self):
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
      self.assertEqual(self.run_main("verify"), 1)
    self.assertEqual(stderr.getvalue(), "error: unknown command 'verify'; commands: train-teacher, export-teacher, "
                     "distill, general-distill, chain, export-student, verify-export, report, augment, saved_model_cli\n")

  def test_no_command(self):
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
      self.assertEqual(self.run_main(), 1)
    self.assertStartsWith(stdout.getvalue(), "usage: tf_distill <command> [flags]")


if __name__ == "__main__":
  tf.test.main()

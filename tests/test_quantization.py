"""Quantised exports keep a trained student's accuracy, and exports that lose it are not shipped.

A tiny BERT trained on a tiny sentiment task (padded examples, as every calibration and parity batch is) is exported
with export_student. Its full-int8 file stays within the 1-point threshold; the same weights with BERT's additive
-10000 attention mask (what tf_distill used before `bert.masked_scores`) lose more, and that export refuses to write
the file. verify-export rejects such a file too, against the Keras student's recorded logits.
"""

import dataclasses
import json
import os
import shutil
from unittest import mock

from absl import flags

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill import bert
from tf_distill.cli import export_student as export_student_cli
from tf_distill import report as report_lib
from tf_distill.configs import DataConfig
from tf_distill.export import parity, run_export, serving, tflite, verify
from tf_distill.run_dir import RunDir

import tiny


def additive_mask(scores, key_mask):
  """BERT's original masking: scores + (1 - mask) * -10000."""
  return scores + (1.0 - key_mask) * -10000.0


def train_tiny_student(run_dir: RunDir, data_config: DataConfig) -> keras.Model:
  """A tiny classifier fitted on the task's training split, saved as the run's best weights."""
  model = tiny.tiny_classifier(seed=5, classifier_stddev=None)
  features = run_export.split_examples(data_config, "train", 10_000)[1]
  inputs = {k: features[k] for k in tflite.FEATURE_KEYS}
  labels = features["label_ids"]
  optimizer = keras.optimizers.Adam(3e-3)
  dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).shuffle(512, seed=0).batch(32).repeat(8)

  @tf.function
  def step(batch, batch_labels):
    with tf.GradientTape() as tape:
      logits = model(batch, training=True, logits_only=True)["logits"]
      loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(batch_labels, logits, from_logits=True))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

  for batch, batch_labels in dataset:
    step(batch, batch_labels)
  run_dir.write_config(data=data_config)
  run_dir.write_model_info(model, data_config, list(tiny.LABELS))
  model.save_weights(run_dir.best_weights)
  return model


class QuantizedAccuracyTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tiny.shared_teacher().root, "quantization")
    data_dir = tiny.write_csv_task(os.path.join(cls.root, "data"), num_train=512, num_dev=4, num_test=200, seed=3)
    vocab = tiny.write_vocab(os.path.join(cls.root, "vocab.txt"))
    cls.data_config = DataConfig(task_name="csv", data_dir=data_dir, vocab_file=vocab, max_seq_length=16,
                                 labels=tiny.LABELS)
    cls.run_dir = RunDir(os.path.join(cls.root, "run"))
    train_tiny_student(cls.run_dir, cls.data_config)
    cls.export_root = os.path.join(cls.root, "export")
    cls.good = run_export.export_student(cls.run_dir, cls.export_root, "student", tflite=("full_int8",),
                                         representative_examples=100)
    with mock.patch.object(bert, "masked_scores", additive_mask):
      cls.additive = run_export.export_student(cls.run_dir, cls.export_root, "additive",
                                               tflite=("full_int8",), representative_examples=100)

  def test_the_keras_student_learned_the_task(self):
    self.assertGreaterEqual(self.good.report["keras_accuracy"], 0.9)
    self.assertEqual(self.good.num_labelled, 200)

  def test_full_int8_stays_within_the_threshold(self):
    entry = self.good.report["full_int8"]
    self.assertLessEqual(entry["accuracy_drop_points"], parity.MAX_ACCURACY_DROP)
    self.assertTrue(entry["accepted"])
    self.assertEqual(self.good.errors(), [])
    self.assertTrue(os.path.isfile(os.path.join(self.good.tflite_dir, "full_int8.tflite")))
    # Checked by hand: the file's accuracy on the test split, from the interpreter.
    features = run_export.split_examples(self.data_config, "test", 200)[1]
    logits = tflite.TFLiteClassifier(entry["path"])(features)
    self.assertAllClose(entry["accuracy"], np.mean(logits.argmax(-1) == features["label_ids"]))

  def test_additive_mask_loses_accuracy_and_is_refused(self):
    entry = self.additive.report["full_int8"]
    self.assertGreater(entry["accuracy_drop_points"], 5 * parity.MAX_ACCURACY_DROP)  # the bug this guards against
    self.assertFalse(entry["accepted"])
    self.assertIsNone(entry["path"])
    self.assertEqual(self.additive.refused, ["full_int8"])
    # No deployable file under its name, nor a candidate left behind.
    self.assertEqual(sorted(os.listdir(self.additive.tflite_dir)), ["parity.json", "parity_examples.npz"])
    (error,) = self.additive.errors()
    self.assertRegex(error, r"^TFLite full_int8 not written: accuracy \d+.\d\d% vs the Keras student's \d+.\d\d% "
                            r"\(labels\): \+\d+.\d\d points drop, threshold 1; continue the student quantisation-aware "
                            r"\(scripts/distill.sh --student_init_run=RUN --output_dir=NEW_RUN --stages=qat:1, "
                            r"the run's other flags, and --student_init_from_layers= for a BERT\), "
                            r"try --tflite=16x8,selective ")
    with self.assertRaisesRegex(RuntimeError, "TFLite full_int8 not written"):
      self.additive.raise_on_failure()
    line = [line for line in self.additive.lines() if line.startswith("TFLite full_int8")][0]
    self.assertIn("NOT WRITTEN", line)

  def test_a_refused_default_variant_is_a_warning_not_an_error(self):
    optional = dataclasses.replace(self.additive, required=())
    self.assertEqual(optional.refused, ["full_int8"])
    self.assertEqual(optional.errors(), [])
    optional.raise_on_failure()  # does not raise
    (warning,) = optional.warnings()
    self.assertRegex(warning, r"^TFLite full_int8 not written: accuracy .* \+\d+.\d\d points drop, threshold 1; .*"
                              r"\(a default variant: the export goes on without it\)$")
    self.assertEqual(self.additive.warnings(), [])  # required: an error, not a warning

  def test_the_command_requires_only_the_variants_it_names(self):
    """--tflite left at its default: the refused full_int8 is a warning and the command succeeds; named, it fails."""
    flag_values = flags.FlagValues()
    export_student_cli.define_flags(flag_values)
    calls = []

    def fake_export(*args, required, **kwargs):
      del args, kwargs
      calls.append(tuple(required))
      return dataclasses.replace(self.additive, required=tuple(required))

    with mock.patch.object(export_student_cli, "export_student", fake_export), \
        mock.patch.object(export_student_cli, "FLAGS", flag_values), mock.patch("builtins.print") as printed:
      flag_values(["export_student", f"--output_dir={self.run_dir.path}"])
      export_student_cli.main([])
      flag_values.unparse_flags()
      flag_values(["export_student", f"--output_dir={self.run_dir.path}", "--tflite=float32,full_int8"])
      with self.assertRaisesRegex(SystemExit, "error: TFLite full_int8 not written"):
        export_student_cli.main([])
    self.assertEqual(calls, [(), ("float32", "full_int8")])
    warnings = [c.args[0] for c in printed.call_args_list if str(c.args[0]).startswith("warning:")]
    self.assertLen(warnings, 1)
    self.assertIn("TFLite full_int8 not written", warnings[0])

  def test_report_shows_a_variant_that_was_not_shipped(self):
    row, timed = report_lib.tflite_row("student_tflite_full_int8", os.path.dirname(self.additive.tflite_dir),
                                       {}, latency_examples=10, num_threads=1, parameters=123)
    entry = self.additive.report["full_int8"]
    self.assertIsNone(timed)
    self.assertEqual(row.test_accuracy, entry["accuracy"])
    self.assertEqual(row.not_shipped, f"{entry['accuracy_drop_points']:+.2f} points vs the Keras student, threshold 1")
    teacher = report_lib.Row("teacher", 1.0, 1, 1.0, latency_ms=1.0, latency_low_ms=1.0, latency_high_ms=1.0)
    line = report_lib.format_table([teacher, row]).splitlines()[-1]
    self.assertTrue(line.startswith(f"| student_tflite_full_int8 | {entry['accuracy']:.4f} (not shipped: +"), line)
    self.assertTrue(line.endswith("| - | - | - |"), line)

  def test_verify_export_rejects_a_file_that_loses_accuracy(self):
    """The additive-mask full-int8 file, put where the good export's file was (as an older tf_distill wrote it)."""
    saved_model = self.additive.saved_model  # exported with the additive mask
    representative = run_export.split_examples(self.data_config, "train", 100, seed=0)[1]
    tflite_dir = verify.tflite_dir_for(self.good.saved_model)
    bad = tflite.convert_saved_model(saved_model, os.path.join(self.get_temp_dir(), "full_int8.tflite"), "full_int8",
                                     representative_features=representative)
    version_dir = shutil.copytree(self.good.saved_model, os.path.join(self.get_temp_dir(), "export", "student", "1"))
    copy_dir = shutil.copytree(tflite_dir, verify.tflite_dir_for(version_dir))
    shutil.copyfile(bad, os.path.join(copy_dir, "full_int8.tflite"))
    report = parity.read_report(copy_dir)
    report["full_int8"]["sha256"] = serving.file_sha256(bad)  # recorded as the file that was checked
    with open(os.path.join(copy_dir, "parity.json"), "w", encoding="utf-8") as f:
      json.dump(report, f)
    result = verify.verify_export(version_dir, run_cli=False)
    self.assertEqual([check.name for check in result.checks if not check.ok], ["tflite:full_int8.tflite"])
    self.assertRegex(result.errors[0], r"points drop, threshold 1; full_int8.tflite loses too much accuracy to ship")
    # The good export's own file passes.
    self.assertTrue(verify.verify_export(self.good.saved_model, run_cli=False).ok)


if __name__ == "__main__":
  tf.test.main()

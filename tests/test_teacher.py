"""Tests for tf_distill.teacher.SavedModelTeacher on a tiny exported teacher."""

import os
import shutil
import subprocess

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import tensorflow as tf

from tf_distill.export.serving import DISTILL_OUTPUTS, latest_version_dir
from tf_distill.teacher import SavedModelTeacher, TeacherError

import tiny


class SavedModelTeacherTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.teacher = SavedModelTeacher(cls.shared.model_dir, required_outputs=DISTILL_OUTPUTS)
    cls.features = tiny.random_features(3, 12, lengths=[12, 6, 3], seed=11, segment_b=True)

  def test_outputs_match_the_keras_model(self):
    out = self.teacher(self.features)
    self.assertCountEqual(out, DISTILL_OUTPUTS)
    expected = self.shared.model(self.features, training=False)
    self.assertAllClose(out["logits"], expected["logits"], atol=1e-5)
    self.assertAllClose(out["probabilities"], tiny.softmax(expected["logits"].numpy()), atol=1e-5)
    self.assertAllClose(out["embeddings"], expected["embeddings"], atol=1e-5)
    # Per-layer outputs come as lists over layers, the layout of the student's own outputs.
    self.assertEqual([h.shape for h in out["hidden_states"]], [(3, 12, 32)] * 2)
    self.assertEqual([p.shape for p in out["attention_probs"]], [(3, 4, 12, 12)] * 2)
    for i in range(2):
      self.assertAllClose(out["hidden_states"][i], expected["hidden_states"][i], atol=1e-5)
      self.assertAllClose(out["attention_scores"][i], expected["attention_scores"][i], atol=1e-5)
      self.assertAllClose(out["attention_probs"][i], expected["attention_probs"][i], atol=1e-5)
      previous = expected["embeddings"] if i == 0 else expected["hidden_states"][i - 1]
      layer = self.shared.model.encoder_layers[i]
      for key, dense in (("attention_queries", layer.query), ("attention_keys", layer.key),
                         ("attention_values", layer.value)):
        self.assertAllClose(out[key][i], dense(previous), atol=1e-5)

  def test_outputs_argument_selects_keys(self):
    self.assertEqual(list(self.teacher(self.features, outputs=("logits",))), ["logits"])

  def test_logits_only_teacher_uses_serving_default_and_works_without_distill(self):
    teacher = SavedModelTeacher(self.shared.serving_path)
    self.assertAllClose(teacher(self.features)["logits"], self.shared.model(self.features)["logits"], atol=1e-5)

  def test_metadata_properties(self):
    self.assertEqual(self.teacher.num_labels, 2)
    self.assertEqual(self.teacher.labels, list(tiny.LABELS))
    self.assertEqual(self.teacher.max_seq_length, 16)
    self.assertEqual(self.teacher.bert_config, tiny.tiny_config().to_dict())

  def test_model_dir_resolves_to_the_highest_numeric_version(self):
    self.assertEqual(self.teacher.path, self.shared.path)  # setUpClass passed <export>/teacher
    versions = os.path.join(self.get_temp_dir(), "versions")
    for name in ("9", "10", "tmp", ".tmp-11-123"):  # 10 > 9 although "10" < "9" as strings
      os.makedirs(os.path.join(versions, name), exist_ok=True)
    self.assertEqual(latest_version_dir(versions), os.path.join(versions, "10"))
    self.assertEqual(latest_version_dir(self.shared.path), self.shared.path)

  def test_no_gradient_reaches_the_teacher(self):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(self.teacher(self.features)["logits"] ** 2)
    grads = tape.gradient(loss, self.teacher.variables)
    self.assertLen(grads, len(self.shared.model.weights))
    self.assertEqual(grads, [None] * len(grads))
    # Without the stop_gradient the same signature does propagate gradients into those variables.
    signature = self.teacher._loaded.signatures["distill"]  # pylint: disable=protected-access
    weights = [v for v in self.teacher.variables if v.dtype == tf.float32]  # not the dropout call counters
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(signature(**self.features)["logits"] ** 2)
    self.assertNotIn(None, tape.gradient(loss, weights))

  def test_check_compatible_accepts_the_teacher_setup(self):
    self.teacher.check_compatible(list(tiny.LABELS), self.shared.vocab_file, tiny.MAX_POSITIONS)

  def test_label_mismatch(self):
    with self.assertRaisesRegex(TeacherError, r"label mismatch: the data has 3 labels \['neg', 'neu', 'pos'\] but "
                                r"the teacher .* was trained on 2 labels \['neg', 'pos'\]"):
      self.teacher.check_compatible(["neg", "neu", "pos"], self.shared.vocab_file, 16)
    with self.assertRaisesRegex(TeacherError, "label mismatch"):  # same labels, other order
      self.teacher.check_compatible(["pos", "neg"], self.shared.vocab_file, 16)

  def test_vocab_mismatch(self):
    other = tiny.write_other_vocab(os.path.join(self.get_temp_dir(), "other_vocab.txt"))
    with self.assertRaisesRegex(TeacherError, "vocab mismatch: .*other_vocab.txt differs from the vocab the teacher "
                                r"was trained with; use .*teacher/1/assets.extra/vocab.txt as --vocab_file"):
      self.teacher.check_compatible(list(tiny.LABELS), other, 16)

  def test_max_seq_length_beyond_position_embeddings(self):
    with self.assertRaisesRegex(TeacherError, r"max_seq_length=33 is beyond the teacher's 32 position embeddings; "
                                r"use --max_seq_length<=32"):
      self.teacher.check_compatible(list(tiny.LABELS), self.shared.vocab_file, 33)

  def test_teacher_errors_are_value_errors(self):
    # The CLIs turn ValueErrors into one line on stderr; TeacherError must be one.
    self.assertTrue(issubclass(TeacherError, ValueError))

  def test_no_path(self):
    with self.assertRaisesRegex(TeacherError, "no teacher given: pass --teacher_model=DIR"):
      SavedModelTeacher("")

  def test_missing_path(self):
    missing = os.path.join(self.get_temp_dir(), "no_teacher")
    with self.assertRaisesRegex(TeacherError, f"teacher model '{missing}' does not exist"):
      SavedModelTeacher(missing)

  def test_directory_that_is_not_a_saved_model(self):
    path = os.path.join(self.get_temp_dir(), "not_a_model")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "weights.h5"), "w", encoding="utf-8") as f:
      f.write("x")
    with self.assertRaisesRegex(TeacherError, r"is not a SavedModel \(no saved_model.pb in .*; found "
                                r"\['weights.h5'\]\)"):
      SavedModelTeacher(path)

  def test_saved_model_without_tf_distill_metadata(self):
    path = os.path.join(self.get_temp_dir(), "no_metadata")
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(self.shared.path, path)
    os.remove(os.path.join(path, "assets.extra", "tf_distill.json"))
    with self.assertRaisesRegex(TeacherError, r"has no assets.extra/tf_distill.json; it was not exported by "
                                "tf_distill"):
      SavedModelTeacher(path)

  def test_export_without_distill_signature_when_hidden_states_are_required(self):
    with self.assertRaisesRegex(TeacherError, r"has no 'distill' signature \(it has \['serving_default', "
                                r"'serving_text'\]\); re-export it"):
      SavedModelTeacher(self.shared.serving_path, required_outputs=("logits", "hidden_states"))

  def test_missing_output_name(self):
    with self.assertRaisesRegex(TeacherError, r"signature 'distill' .* lacks outputs \['attention_maps'\] that the "
                                r"chosen losses need; it has \['attention_keys', "):
      SavedModelTeacher(self.shared.path, required_outputs=("logits", "attention_maps"))

  def test_saved_model_cli_lists_both_signatures(self):
    result = subprocess.run(["saved_model_cli", "show", "--dir", self.shared.path, "--all"], capture_output=True,
                            text=True, check=False, env=tiny.subprocess_env(), timeout=300)
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    text = result.stdout
    self.assertIn("signature_def['serving_default']", text)
    self.assertIn("signature_def['distill']", text)
    distill = text[text.index("signature_def['distill']"):]
    distill = distill[:distill.index("Method name")]
    for name in DISTILL_OUTPUTS:
      self.assertIn(f"outputs['{name}']", distill)
    for name in ("input_ids", "input_mask", "segment_ids"):
      self.assertIn(f"inputs['{name}']", distill)
    serving = text[text.index("signature_def['serving_default']"):]
    serving = serving[:serving.index("Method name")]
    self.assertIn("outputs['logits']", serving)
    self.assertIn("outputs['probabilities']", serving)
    self.assertNotIn("outputs['hidden_states']", serving)


if __name__ == "__main__":
  tf.test.main()

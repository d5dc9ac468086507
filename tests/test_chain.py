"""Teacher-assistant chains (tf_distill.chain, `tf_distill chain`): a tiny 3-layer teacher -> 2-layer assistant ->
1-layer student through the command's own main, in process; the assistant's export as a teacher; refused flags."""

import contextlib
import io
import json
import os
import shutil
import tempfile

import tf_distill  # noqa: F401  pylint: disable=unused-import
from absl import flags
from absl.testing import flagsaver
import tensorflow as tf

from tf_distill.cli import chain as chain_cli
from tf_distill.cli import common
from tf_distill.export.run_export import export_run
from tf_distill.run_dir import RunDir
from tf_distill.teacher import SavedModelTeacher

import tiny
from test_cli import COMMON_TRAIN_ARGS

FLAGS = flags.FLAGS


def _parsed(args):
  """["--name=value", ...] -> {name: "value"}, for flagsaver.as_parsed."""
  return dict(arg[2:].split("=", 1) for arg in args)


class ChainTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    tiny.define_distill_flags_once()
    if "assistant_num_layers" not in FLAGS:
      chain_cli.define_assistant_flags()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_chain_")
    vocab = tiny.write_vocab(os.path.join(cls.work, "vocab.txt"))
    cls.teacher = tiny.export_tiny_classifier(tiny.tiny_classifier(seed=3, num_hidden_layers=3),
                                              os.path.join(cls.work, "export"), vocab)
    cls.data_dir = tiny.write_csv_task(os.path.join(cls.work, "data"))
    cls.output_dir = os.path.join(cls.work, "runs", "chain")
    cls.stdout = cls.run_chain(output_dir=cls.output_dir)
    cls.features = tiny.random_features(6, 16, seed=4)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  @classmethod
  def run_chain(cls, **overrides):
    """Runs `tf_distill chain`'s main on the tiny task (a 2-layer assistant from teacher layers 1 and 3, a 1-layer
    student from assistant layer 2) and returns what it printed."""
    values = {"teacher_model": cls.teacher, "data_dir": cls.data_dir, "assistant_num_layers": 2,
              "assistant_init_from_layers": ["1", "3"], "student_num_layers": 1, "student_init_from_layers": ["2"],
              "alpha": 0.5, "temperature": 2.0, **overrides}
    with flagsaver.as_parsed(**_parsed(COMMON_TRAIN_ARGS)), flagsaver.flagsaver(**values), \
        contextlib.redirect_stdout(io.StringIO()) as stdout:
      common.run_main(chain_cli.main)(["chain"])
    return stdout.getvalue()

  def test_both_stages_ran_and_the_student_has_one_layer(self):
    self.assertRegex(self.stdout, r"chain stage 1, teacher -> assistant \(2 layers\): dev accuracy [01]\.\d{4}, "
                     r"test accuracy [01]\.\d{4}")
    self.assertRegex(self.stdout, r"chain stage 2, assistant -> student \(1 layer\): dev accuracy")
    student = RunDir(os.path.join(self.output_dir, "student"))
    self.assertEqual(student.read_model_config()["num_hidden_layers"], 1)
    self.assertEqual(RunDir(os.path.join(self.output_dir, "assistant")).read_model_config()["num_hidden_layers"], 2)
    results = student.read_eval_results()
    self.assertGreater(results["history"]["kd_loss"][0], 0.0)  # the assistant was queried
    self.assertBetween(results["test_accuracy"], 0.0, 1.0)
    config = student.read_config()
    self.assertEqual(config["distill"]["teacher_model"], os.path.join(self.output_dir, "export", "assistant", "1"))
    self.assertEqual(config["student"]["bert"]["init_from_layers"], [2])

  def test_assistant_export_is_a_teacher_computing_the_assistant(self):
    export = os.path.join(self.output_dir, "export", "assistant", "1")
    self.assertIn(f"assistant exported as a teacher to {export}", self.stdout)
    teacher = SavedModelTeacher(export, required_outputs=("logits", "hidden_states", "attention_scores"))
    self.assertEqual(teacher.metadata["signatures"], ["distill", "serving_default", "serving_text"])
    self.assertEqual(teacher.labels, list(tiny.LABELS))
    self.assertEqual(teacher.max_seq_length, 16)
    self.assertEqual((teacher.bert_config["num_hidden_layers"], teacher.bert_config["hidden_size"]), (2, 32))
    assistant = RunDir(os.path.join(self.output_dir, "assistant")).load_model()
    expected = assistant(self.features, training=False)
    out = teacher(self.features)
    self.assertGreater(float(tf.reduce_max(tf.abs(expected["logits"]))), 0.1)
    self.assertAllClose(out["logits"], expected["logits"], atol=1e-5)
    self.assertLen(out["hidden_states"], 2)
    self.assertLen(out["attention_scores"], 2)
    for layer in range(2):
      self.assertAllClose(out["hidden_states"][layer], expected["hidden_states"][layer], atol=1e-5)

  def test_rerun_resumes_and_reuses_the_export(self):
    stdout = self.run_chain(output_dir=self.output_dir)
    self.assertIn("assistant exported as a teacher to " + os.path.join(self.output_dir, "export", "assistant", "1"),
                  stdout)
    self.assertEqual(os.listdir(os.path.join(self.output_dir, "export", "assistant")), ["1"])

  def test_bad_flags_are_refused_before_training(self):
    output_dir = os.path.join(self.work, "runs", "refused")
    cases = [
        ({"assistant_num_layers": None}, r"a chain needs --assistant_num_layers"),
        ({"assistant_init_from_layers": ["1", "2", "3"]}, r"names 3 teacher layers but the assistant has 2 layers"),
        ({"assistant_init_from_layers": ["1", "4"]}, r"assistant_init_from_layers names teacher layers \[4\], but "
                                                    r"the teacher has layers 1..3"),
        ({"student_init_from_layers": ["3"]}, r"student_init_from_layers names assistant layers \[3\], but the "
                                              r"assistant has layers 1..2"),
        ({"student_hidden_size": 16}, r"the student has hidden_size 16 \(the assistant's: 32\)"),
        ({"layer_map": "1:3", "intermediate_matches": "hidden_mse"},  # valid in stage 1 (3 -> 2), not in stage 2
         r"in stage 2 the 2-layer assistant is the teacher: .*teacher layer 3 is out of range \[0, 2\]"),
        ({"student_type": "bilstm", "student_init_from_layers": None, "intermediate_matches": "hidden_mse"},
         r"--intermediate_matches needs a student with hidden states"),
    ]
    for overrides, message in cases:
      with self.subTest(overrides=overrides), self.assertRaisesRegex(SystemExit, "^error: .*" + message):
        self.run_chain(output_dir=output_dir, **overrides)
    self.assertFalse(os.path.exists(output_dir))

  def test_bilstm_run_is_refused_as_a_teacher(self):
    run_dir = os.path.join(self.work, "runs", "bilstm")
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, "model_config.json"), "w", encoding="utf-8") as f:
      json.dump({"model_type": "bilstm"}, f)
    with self.assertRaisesRegex(ValueError, "holds a bilstm student, which has no BERT hidden states .* export it "
                                "with export_student"):
      export_run(run_dir, os.path.join(self.work, "bad_export"), "teacher", with_distill_signature=True)
    self.assertFalse(os.path.exists(os.path.join(self.work, "bad_export")))


if __name__ == "__main__":
  tf.test.main()

"""Tests for tf_distill.run: what a DistillRun decides (teacher source, outputs, student) and what it refuses."""

import os
import random
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.configs import (BertStudentConfig, BiLstmStudentConfig, DataConfig, DistillConfig, StudentConfig,
                                TrainConfig)
from tf_distill.distiller import teacher_outputs_needed
from tf_distill.layer_map import parse_matches
from tf_distill.run import DistillRun, transfer_set_line
from tf_distill.teacher import INDEX_KEY, SavedModelTeacher
from tf_distill.teacher_cache import TeacherCache
from tf_distill.training import load_data

import tiny


class TeacherOutputsNeededTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("hard_labels_only", 0.0, "", ()),
      ("logits", 0.5, "", ("logits",)),
      # alpha = 0 with matches: only what the matches compare, not the logits.
      ("matches_only", 0.0, "hidden_mse", ("embeddings", "hidden_states")),
      ("both", 1.0, "attention_mse_probs", ("attention_probs", "logits")),
  )
  def test_outputs(self, alpha, spec, expected):
    matches = parse_matches(spec, 2, 4, "0:0,uniform") if spec else ()
    self.assertEqual(teacher_outputs_needed(alpha, matches), expected)


class TransferSetLineTest(tf.test.TestCase):

  def test_no_transfer_set(self):
    self.assertEqual(transfer_set_line(DistillConfig(teacher_model="t"), 600, 600),
                     "transfer set: none; each epoch trains on the 600 labelled examples")

  def test_variants_and_unlabeled_text_name_both_flags(self):
    distill = DistillConfig(teacher_model="t", augmentation="tang:n=10", unlabeled_data="more.txt")
    # 600 labelled + 5,957 variants + 300 unlabeled: 6,857 rows, 6857 / 600 = 11.43 -> 11.4x.
    self.assertEqual(transfer_set_line(distill, 6857, 600),
                     "transfer set: each epoch trains on 6857 rows, 11.4x the 600 labelled examples (the teacher "
                     "labels the others); --unlabeled_data= --augmentation= trains on the labelled data alone")


class DistillRunTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.work = tiny.write_csv_task(tempfile.mkdtemp(prefix="tf_distill_run_"), num_train=12, num_dev=4,
                                   num_test=4)

  def _run(self, name, distill=None, student=None, **train):
    data = DataConfig(task_name="csv", data_dir=self.work, max_seq_length=16)
    distill = distill or DistillConfig(teacher_model=self.shared.path)
    train = TrainConfig(output_dir=os.path.join(self.get_temp_dir(), name), **train)
    return DistillRun(data, train, distill, student or StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))

  def test_vocab_defaults_to_the_teachers(self):
    run = self._run("vocab")
    self.assertEqual(run.data_config.vocab_file, os.path.join(self.shared.path, "assets.extra", "vocab.txt"))

  def test_hard_labels_only_queries_no_teacher(self):
    run = self._run("baseline", DistillConfig(teacher_model=self.shared.path, alpha=0.0))
    model = run.build_model(load_data(run.data_config))
    self.assertEqual(model.teacher_outputs, ())
    self.assertIsNone(model.teacher)
    self.assertEqual([m.name for m in model.metrics], ["loss", "accuracy"])

  def test_online_teacher_serves_logits(self):
    run = self._run("online")
    data = load_data(run.data_config)
    model = run.build_model(data)
    self.assertIsInstance(model.teacher, SavedModelTeacher)
    self.assertEqual(model.teacher_outputs, ("logits",))
    self.assertNotIn(INDEX_KEY, data.features["train"])
    self.assertEqual([m.name for m in model.metrics], ["loss", "hard_loss", "kd_loss", "accuracy"])

  def test_teacher_cache_is_the_source_and_serves_the_online_logits(self):
    run = self._run("cached", DistillConfig(teacher_model=self.shared.path, teacher_cache="auto"))
    data = load_data(run.data_config)
    model = run.build_model(data)
    self.assertIsInstance(model.teacher, TeacherCache)
    self.assertTrue(os.path.isfile(os.path.join(run.run_dir.teacher_cache_dir, "manifest.json")))
    train = data.features["train"]
    self.assertAllEqual(train[INDEX_KEY], np.arange(12))
    batch = {k: tf.constant(train[k][:5]) for k in ("input_ids", "input_mask", "segment_ids")}
    cached = model.teacher({**batch, INDEX_KEY: tf.constant(train[INDEX_KEY][:5])}, outputs=("logits",))
    online = self.shared.model(batch, training=False)["logits"]
    self.assertAllClose(cached["logits"], online, atol=1e-5)

  def test_student_init_layers_are_1_based(self):
    run = self._run("init", student=StudentConfig(bert=BertStudentConfig(num_hidden_layers=1,
                                                                         init_from_layers=(2,))))
    student = run.build_model(load_data(run.data_config)).student
    for s, t in zip(student.encoder_layers[0].weights, self.shared.model.encoder_layers[1].weights):
      self.assertAllEqual(s, t)

  def test_reading_the_data_does_not_change_the_model(self):
    # TFDS draws from Python's `random` when it prepares a dataset (in a task's first run only); the model built
    # after reading must not depend on such draws.
    class Built(Exception):
      pass

    def initial_weights(draws):
      run = self._run(f"draws_{draws}", DistillConfig(teacher_model=self.shared.path, alpha=0.0))
      read, build = run.load_data, run.build_model

      def load_data_that_draws():
        data = read()
        for _ in range(draws):
          random.random()
        return data

      def build_and_stop(data):
        raise Built([w.numpy() for w in build(data).student.weights])

      run.load_data, run.build_model = load_data_that_draws, build_and_stop
      with self.assertRaises(Built) as built:
        run.train_and_evaluate()
      return built.exception.args[0]

    for quiet, drawn in zip(initial_weights(0), initial_weights(3)):
      self.assertAllEqual(quiet, drawn)

  @parameterized.named_parameters(
      ("bilstm_matches", dict(distill=DistillConfig(teacher_model="t", intermediate_matches="hidden_mse"),
                              student=StudentConfig(type="bilstm", bilstm=BiLstmStudentConfig())),
       r"--intermediate_matches needs a student with hidden states and attention \(bert\); the bilstm student"),
      ("bilstm_mixed", dict(student=StudentConfig(type="bilstm"), mixed_precision="mixed_bfloat16"),
       r"--mixed_precision=mixed_bfloat16 is not supported by the bilstm student; train it in float32"),
  )
  def test_refused_before_anything_runs(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      self._run("refused", **kwargs)
    self.assertFalse(os.path.exists(os.path.join(self.get_temp_dir(), "refused")))


if __name__ == "__main__":
  tf.test.main()

"""Tests for tf_distill.ensemble: teacher ensembles (--teacher_model=a,b,c --teacher_weights --intermediate_teacher).

The expected outputs are computed in numpy from each member's Keras model, never from the ensemble under test.
"""

import os
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import flags
from absl.testing import flagsaver, parameterized
import numpy as np
import tensorflow as tf

from tf_distill import teacher_cache
from tf_distill.cli import common
from tf_distill.configs import (BertStudentConfig, DataConfig, DistillConfig, ForeignTeacherConfig, StudentConfig,
                                TrainConfig)
from tf_distill.ensemble import EnsembleTeacher
from tf_distill.foreign_teacher import ForeignSavedModelTeacher
from tf_distill.run import DistillRun
from tf_distill.teacher import INDEX_KEY, SavedModelTeacher, TeacherError
from tf_distill.teacher_cache import TeacherCache
from tf_distill.teacher_sources import load_teacher

import tiny

FLAGS = flags.FLAGS
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")
T = 2.0


def write_probabilities_export(model, path):
  """A foreign SavedModel (TF2 input names, no tf_distill metadata) serving only softmax(logits) of `model`."""
  module = tf.Module()
  module.model = model
  specs = [tf.TensorSpec([None, None], tf.int32, name) for name in ("input_word_ids", "input_mask", "input_type_ids")]

  @tf.function(input_signature=specs)
  def serve(input_word_ids, input_mask, input_type_ids):
    logits = model({"input_ids": input_word_ids, "input_mask": input_mask, "segment_ids": input_type_ids},
                   training=False)["logits"]
    return {"probs": tf.nn.softmax(logits)}

  tf.saved_model.save(module, path, signatures={"serving_default": serve})
  return path


class EnsembleTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(prefix="tf_distill_ensemble_")
    cls.vocab = tiny.write_vocab(os.path.join(cls.root, "vocab.txt"))
    export = os.path.join(cls.root, "export")
    # Teacher 2 has 3 layers: the ensemble's BERT shape then shows which member it came from.
    cls.models = [tiny.tiny_classifier(seed=1), tiny.tiny_classifier(seed=2, num_hidden_layers=3),
                  tiny.tiny_classifier(seed=3)]
    # Only teacher 2 serves intermediates (a distill signature); the others serve logits.
    cls.paths = [tiny.export_tiny_classifier(m, export, cls.vocab, model_name=f"t{i + 1}",
                                             with_distill_signature=i == 1) for i, m in enumerate(cls.models)]
    cls.members = [SavedModelTeacher(p) for p in cls.paths]
    cls.foreign = write_probabilities_export(cls.models[2], os.path.join(cls.root, "foreign", "1"))
    cls.other_vocab = tiny.write_other_vocab(os.path.join(cls.root, "other_vocab.txt"))
    cls.features = tiny.random_features(5, 12, seed=4, segment_b=True)
    cls.data_dir = tiny.write_csv_task(os.path.join(cls.root, "data"), num_train=12, num_dev=4, num_test=4)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def member_logits(self, features, members=(0, 1, 2)):
    """float64 [members, batch, labels]: each member's Keras model, called directly."""
    batch = {k: tf.constant(features[k]) for k in FEATURE_KEYS}
    return np.stack([self.models[i](batch, training=False)["logits"].numpy() for i in members]).astype(np.float64)

  def test_combined_logits_are_the_weighted_mean_and_soft_targets_the_geometric_mean(self):
    ensemble = EnsembleTeacher(self.members, weights=(2.0, 1.0, 1.0))
    out = ensemble({k: tf.constant(v) for k, v in self.features.items()}, outputs=("logits", "probabilities"))
    z = self.member_logits(self.features)
    w = np.array([0.5, 0.25, 0.25])
    expected = np.einsum("m,mbl->bl", w, z)
    self.assertAllClose(out["logits"], expected, atol=1e-5)
    self.assertAllClose(out["probabilities"], tiny.softmax(expected), atol=1e-5)
    # At temperature T: the normalised weighted geometric mean of the members' own soft targets.
    geometric = np.prod(tiny.softmax(z / T) ** w[:, None, None], axis=0)
    geometric /= geometric.sum(axis=-1, keepdims=True)
    self.assertAllClose(tiny.softmax(out["logits"].numpy() / T), geometric, atol=1e-5)
    # The members do disagree, so a wrong weighting (equal weights) would fail.
    self.assertNotAllClose(out["logits"], z.mean(axis=0), atol=1e-3)

  def test_intermediates_and_shape_come_from_the_named_member(self):
    ensemble = EnsembleTeacher(self.members, intermediate_teacher=2)
    out = ensemble({k: tf.constant(v) for k, v in self.features.items()},
                   outputs=("logits", "hidden_states", "embeddings"))
    expected = self.models[1]({k: tf.constant(self.features[k]) for k in FEATURE_KEYS}, training=False)
    self.assertLen(out["hidden_states"], 3)
    for got, want in zip(out["hidden_states"], expected["hidden_states"]):
      self.assertAllClose(got, want, atol=1e-5)
    self.assertAllClose(out["embeddings"], expected["embeddings"], atol=1e-5)
    self.assertAllClose(out["logits"], self.member_logits(self.features).mean(axis=0), atol=1e-5)  # still combined
    self.assertEqual(ensemble.bert_config["num_hidden_layers"], 3)
    self.assertEqual(ensemble.path, self.members[1].path)
    self.assertEqual(EnsembleTeacher(self.members).bert_config["num_hidden_layers"], 2)  # default: teacher 1

  def test_description_lists_members_and_weights(self):
    text = str(EnsembleTeacher(self.members[:2], weights=(3.0, 1.0), intermediate_teacher=2))
    self.assertIn(f"0.75 x SavedModel {self.paths[0]}", text)
    self.assertIn(f"0.25 x SavedModel {self.paths[1]}", text)
    self.assertIn("intermediates from teacher 2", text)

  def test_foreign_probabilities_member_keeps_the_soft_targets_exact(self):
    distill = DistillConfig(teacher_model=f"{self.paths[0]},{os.path.dirname(self.foreign)}", teacher_weights=(1, 3),
                            foreign=ForeignTeacherConfig(output_kind="probabilities"))
    ensemble = load_teacher(distill, DataConfig(task_name="csv", data_dir=self.data_dir, labels=tiny.LABELS,
                                                vocab_file=self.vocab))
    self.assertIsInstance(ensemble, EnsembleTeacher)
    logits = ensemble({k: tf.constant(v) for k, v in self.features.items()}, outputs=("logits",))["logits"]
    z = self.member_logits(self.features, members=(0, 2))
    # The foreign member gives log p = z - lse(z): the mean shifts by a per-row constant, softmax ignores it.
    self.assertAllClose(tiny.softmax(logits.numpy() / T), tiny.softmax((0.25 * z[0] + 0.75 * z[1]) / T), atol=1e-5)

  def foreign_member(self, labels=tiny.LABELS, vocab_file=None):
    return ForeignSavedModelTeacher(ForeignTeacherConfig(output_kind="probabilities"), self.foreign, labels,
                                    vocab_file or self.vocab)

  def test_members_must_agree_on_labels_and_vocab(self):
    EnsembleTeacher([self.members[0], self.foreign_member()])  # the same labels and vocab: accepted
    with self.assertRaisesRegex(TeacherError, r"teacher 2 of --teacher_model \(foreign SavedModel .*foreign.*\) has "
                                r"labels \['pos', 'neg'\] but teacher 1 .* has \['neg', 'pos'\]; an ensemble's "
                                r"teachers must be trained on the same label list in the same order"):
      EnsembleTeacher([self.members[0], self.foreign_member(labels=("pos", "neg"))])
    with self.assertRaisesRegex(TeacherError, r"teacher 3 of --teacher_model \(foreign SavedModel .*\) was trained "
                                r"with the vocab .*other_vocab.txt, which differs from teacher 1's .*vocab.txt; an "
                                r"ensemble's teachers must share one WordPiece vocab"):
      EnsembleTeacher([self.members[0], self.members[2], self.foreign_member(vocab_file=self.other_vocab)])

  @parameterized.named_parameters(
      ("weights_count", dict(weights=(1.0, 2.0)), r"--teacher_weights gives 2 weights \[1.0, 2.0\] for 3 teachers"),
      ("weight_zero", dict(weights=(1.0, 0.0, 1.0)), r"--teacher_weights must be finite numbers > 0"),
      ("intermediate_range", dict(intermediate_teacher=4), r"--intermediate_teacher=4 names no teacher: "
                                                           r"--teacher_model lists 3, numbered 1..3"),
  )
  def test_refused(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      EnsembleTeacher(self.members, **kwargs)

  def test_cache_key_covers_members_weights_and_intermediate_teacher(self):
    fingerprint = teacher_cache.features_fingerprint(self.features)

    def digest(teacher):
      return teacher_cache.cache_key(teacher, self.vocab, 16, fingerprint).digest

    base = digest(EnsembleTeacher(self.members, weights=(1.0, 1.0, 1.0)))
    self.assertEqual(base, digest(EnsembleTeacher(self.members)))  # equal weights are the default
    self.assertEqual(base, digest(EnsembleTeacher(self.members, weights=(2.0, 2.0, 2.0))))  # only ratios matter
    for other in (EnsembleTeacher(self.members, weights=(2.0, 1.0, 1.0)),
                  EnsembleTeacher(self.members, intermediate_teacher=3),
                  EnsembleTeacher(self.members[:2]),
                  self.members[0]):
      self.assertNotEqual(base, digest(other), str(other))
    # A single teacher keeps the key its path always had (existing caches stay valid).
    self.assertEqual(digest(self.members[0]), digest(self.paths[0]))

  def _run(self, name, cache):
    distill = DistillConfig(teacher_model=",".join(self.paths), teacher_weights=(1.0, 3.0, 4.0),
                            intermediate_teacher=2, intermediate_matches="s1:t3:hidden_mse:1.0", teacher_cache=cache)
    return DistillRun(DataConfig(task_name="csv", data_dir=self.data_dir, max_seq_length=16),
                      TrainConfig(output_dir=os.path.join(self.root, name), train_batch_size=4, num_train_epochs=1,
                                  learning_rate=1e-3),
                      distill, StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))

  def test_distillation_online_and_from_the_cache_agree(self):
    online = self._run("online", "off")
    summary = online.train_and_evaluate(do_eval=False)
    cached = self._run("cached", "auto")
    data = cached.load_data()
    cache = cached.build_teacher(data)
    self.assertIsInstance(cache, TeacherCache)
    train = data.features["train"]
    # The cache holds the combined logits and teacher 2's hidden states (its layer 3: the match's t3).
    self.assertAllClose(cache.logits, np.einsum("m,mbl->bl", np.array([1, 3, 4]) / 8, self.member_logits(train)),
                        atol=1e-5)
    rows = np.arange(4)
    width = int(train["input_mask"][rows].sum(axis=1).max())
    batch = {k: tf.constant(train[k][rows, :width]) for k in FEATURE_KEYS}
    hidden = cache({**batch, INDEX_KEY: tf.constant(rows)}, outputs=("hidden_states",))["hidden_states"][2]
    expected = self.models[1](batch, training=False)["hidden_states"][2].numpy()
    mask = train["input_mask"][rows, :width, None].astype(bool)
    self.assertAllClose(np.where(mask, hidden, 0.0), np.where(mask, expected, 0.0), atol=2e-2)
    summary_cached = cached.train_and_evaluate(do_eval=False)
    for key in ("loss", "kd_loss", "feature_loss"):
      self.assertAllClose(summary_cached["history"][key], summary["history"][key], rtol=1e-3)
    self.assertGreater(summary["history"]["kd_loss"][0], 0.0)


class EnsembleFlagsTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    tiny.define_distill_flags_once()

  @flagsaver.flagsaver(teacher_model="export/t1,export/t2,export/t3", teacher_weights=["0.5", "0.25", "0.25"],
                       intermediate_teacher=3)
  def test_flags_parse_into_the_config(self):
    config = common.distill_config_from_flags(FLAGS)
    self.assertEqual(config.teacher_models, ("export/t1", "export/t2", "export/t3"))
    self.assertEqual((config.teacher_weights, config.intermediate_teacher), ((0.5, 0.25, 0.25), 3))

  @flagsaver.flagsaver(teacher_model="export/teacher")
  def test_one_teacher_stays_as_before(self):
    config = common.distill_config_from_flags(FLAGS)
    self.assertEqual((config.teacher_model, config.teacher_models), ("export/teacher", ("export/teacher",)))
    self.assertEqual((config.teacher_weights, config.intermediate_teacher), (None, None))

  @parameterized.named_parameters(
      ("weights_one_teacher", dict(teacher_model="export/t1", teacher_weights=["1"]),
       r"--teacher_weights=1.0 describes a teacher ensemble, but --teacher_model names one teacher"),
      ("intermediate_one_teacher", dict(teacher_model="export/t1", intermediate_teacher=1),
       r"--intermediate_teacher=1 describes a teacher ensemble, but --teacher_model names one teacher"),
      ("weights_count", dict(teacher_model="a,b,c", teacher_weights=["1", "2"]),
       r"--teacher_weights gives 2 weights \[1.0, 2.0\] for 3 teachers in --teacher_model"),
      ("weights_not_numbers", dict(teacher_model="a,b", teacher_weights=["1", "x"]),
       r"--teacher_weights takes comma-separated numbers such as 0.5,0.25,0.25; got 1,x"),
      ("intermediate_range", dict(teacher_model="a,b", intermediate_teacher=0),
       r"--intermediate_teacher=0 names no teacher: --teacher_model lists 2, numbered 1..2"),
      ("empty_entry", dict(teacher_model="a,,b"), r"--teacher_model=a,,b has an empty entry"),
      ("repeated", dict(teacher_model="a,b,a"), r"--teacher_model lists \['a'\] more than once"),
  )
  def test_contradictory_flags_refused(self, overrides, message):
    with flagsaver.flagsaver(**overrides):
      with self.assertRaisesRegex(ValueError, message):
        common.distill_config_from_flags(FLAGS)


if __name__ == "__main__":
  tf.test.main()

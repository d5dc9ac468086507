"""Resume: a run killed at any point and started again with the same command ends with the weights of a run that was
never interrupted (tf_distill.checkpointing, tf_distill.training.fit, tf_distill.dropout)."""

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill import quantization_aware, training
from tf_distill.checkpointing import RunState, refuse_other_settings
from tf_distill.configs import TrainConfig
from tf_distill.data.unlabeled import epoch_rows
from tf_distill.distiller import Distiller
from tf_distill.dropout import ResumableDropout
from tf_distill.schedules import StageSchedule, parse_stages
from tf_distill.teacher import SavedModelTeacher

import tiny

DROPOUT = dict(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)


class Interrupted(Exception):
  pass


class InterruptAt(keras.callbacks.Callback):
  """Raises after the `step`-th batch of this fit call: a crash with unsaved progress after the last checkpoint."""

  def __init__(self, step):
    super().__init__()
    self.step = step
    self.seen = 0

  def on_train_batch_end(self, batch, logs=None):
    self.seen += 1
    if self.seen == self.step:
      raise Interrupted()


def _task():
  def split(n, seed):
    features = tiny.random_features(n, 12, seed=seed)
    features["label_ids"] = (features["input_ids"][:, 1] % 2).astype(np.int32)
    return features
  return training.TaskData({"train": split(28, 1), "dev": split(8, 2)}, list(tiny.LABELS))


def _weights(model):
  return {v.name: v.numpy() for v in model.weights}


class ResumableDropoutTest(tf.test.TestCase):

  def test_masks_follow_the_checkpointed_call_count(self):
    layer = ResumableDropout(0.5, seed=3)
    x = tf.ones([4, 16])
    first = layer(x, training=True).numpy()
    checkpoint = tf.train.Checkpoint(layer=layer)
    path = checkpoint.save(os.path.join(self.get_temp_dir(), "ckpt"))
    second = layer(x, training=True).numpy()
    self.assertFalse(np.array_equal(first, second))  # a new mask per call
    checkpoint.restore(path)
    self.assertAllEqual(layer(x, training=True), second)  # the same mask after a restore
    self.assertAllEqual(layer(x, training=False), x)
    kept = second != 0
    self.assertAllClose(second[kept], np.full(kept.sum(), 2.0))  # survivors scaled by 1 / (1 - rate)
    self.assertBetween(kept.mean(), 0.25, 0.75)

  def test_get_config_round_trip(self):
    layer = ResumableDropout(0.3, seed=11, name="drop")
    clone = ResumableDropout.from_config(layer.get_config())
    self.assertEqual((clone.rate, clone.seed, clone.name), (0.3, 11, "drop"))

  def test_bad_rate(self):
    with self.assertRaisesRegex(ValueError, r"dropout rate must be in \[0, 1\), got 1.0"):
      ResumableDropout(1.0)


class RefuseOtherSettingsTest(tf.test.TestCase):

  def test_a_checkpointed_run_resumes_only_with_its_settings(self):
    out = self.get_temp_dir()
    config_file, resume = os.path.join(out, "config.json"), os.path.join(out, "resume")
    recorded = {"train": dataclasses.asdict(TrainConfig(output_dir=out, seed=1)), "data": {"task_name": "sst2"}}
    recorded["train"]["a_field_of_another_version"] = 3
    with open(config_file, "w", encoding="utf-8") as f:
      json.dump(recorded, f)
    other = {"train": TrainConfig(output_dir=out, seed=2, learning_rate=0.5)}
    refuse_other_settings(config_file, resume, other)  # no checkpoint yet: a new run may take any settings
    tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), resume, max_to_keep=1).save()
    refuse_other_settings(config_file, resume, {"train": TrainConfig(output_dir=out, seed=1)})
    with self.assertRaisesRegex(ValueError, r"holds a run with other settings \(train.learning_rate: 5e-05 then, 0.5 "
                                r"now; train.seed: 1 then, 2 now\).*or delete .*resume to start over"):
      refuse_other_settings(config_file, resume, other)


class FitResumeTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_fit_resume_")
    cls.reference = cls._run(os.path.join(cls.work, "whole"))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  @staticmethod
  def _run(output_dir, callbacks=(), dropout_seed_offset=0):
    student = tiny.tiny_classifier(seed=5, num_hidden_layers=1, **DROPOUT)
    for layer in (student.embeddings.dropout, student.classifier_dropout):
      layer.seed += dropout_seed_offset
    config = TrainConfig(output_dir=output_dir, train_batch_size=4, eval_batch_size=8, learning_rate=1e-2,
                         num_train_epochs=2, save_every_steps=3)
    distiller = Distiller(student, alpha=0.0)
    summary = training.fit(distiller, _task(), config, output_dir, callbacks=callbacks, verbose=0)
    return student, distiller, summary

  @parameterized.named_parameters(("first_epoch", 5), ("second_epoch_right_after_a_save", 12))
  def test_resumed_run_matches_uninterrupted_run(self, crash_after):
    reference, reference_distiller, reference_summary = self.reference
    out = os.path.join(self.get_temp_dir(), f"broken{crash_after}")
    with self.assertRaises(Interrupted):
      self._run(out, callbacks=[InterruptAt(crash_after)])
    resumed, resumed_distiller, summary = self._run(out)
    self.assertEqual(int(resumed_distiller.optimizer.iterations), int(reference_distiller.optimizer.iterations))
    expected = _weights(reference)
    for name, value in _weights(resumed).items():
      self.assertAllClose(value, expected[name], atol=1e-5, msg=name)
    self.assertEqual(summary["best_epoch"], reference_summary["best_epoch"])
    self.assertAllClose(summary["best_dev_accuracy"], reference_summary["best_dev_accuracy"])

  def test_dropout_is_active(self):
    """Guards the test above: with other dropout seeds the same run ends with other weights."""
    other, _, _ = self._run(os.path.join(self.get_temp_dir(), "other"), dropout_seed_offset=1)
    self.assertNotAllClose(other.classifier.kernel, self.reference[0].classifier.kernel)

  def test_checkpoint_of_another_model_is_refused(self):
    out = self.get_temp_dir()
    wide = Distiller(tiny.tiny_classifier(seed=1, num_hidden_layers=1), alpha=0.0)
    wide.compile(optimizer=keras.optimizers.Adam())
    RunState(os.path.join(out, "resume"), wide, wide.optimizer).save()
    narrow = Distiller(tiny.tiny_classifier(seed=1, num_hidden_layers=1, hidden_size=16, intermediate_size=32),
                       alpha=0.0)
    narrow.compile(optimizer=keras.optimizers.Adam())
    with self.assertRaisesRegex(ValueError, r"cannot resume from .*ckpt-1: it does not match this run's model or "
                                r"optimizer .* Use a new --output_dir, or delete .*resume to start over"):
      RunState(os.path.join(out, "resume"), narrow, narrow.optimizer).restore()


def _distill(data, output_dir, callbacks=(), qat=False):
  """Distils the tiny shared teacher into a 1-layer student with dropout on `data` for 2 epochs; with `qat`, the
  second epoch simulates int8 (--stages=joint:1,qat:1)."""
  student = tiny.tiny_classifier(seed=5, num_hidden_layers=1, **DROPOUT)
  config = TrainConfig(output_dir=output_dir, train_batch_size=4, eval_batch_size=8, learning_rate=1e-2,
                       num_train_epochs=2, save_every_steps=3)
  if qat:
    quantization_aware.prepare(student)
    callbacks = [StageSchedule(parse_stages("joint:1,qat:1")), *callbacks]
  distiller = Distiller(student, SavedModelTeacher(tiny.shared_teacher().path), alpha=0.5)
  training.fit(distiller, data, config, output_dir, callbacks=callbacks, verbose=0, first_selected_epoch=int(qat))
  return student, distiller


class DistillResumeTest(tf.test.TestCase):
  """Runs whose epochs differ in their rows (a fresh draw of unlabeled rows, per-epoch augmented variants; label -1,
  distillation terms only), killed and resumed: the resumed epoch replays its rows, batches and teacher queries, so
  the weights match an uninterrupted run."""

  def _assert_resumes(self, data_fn, crash_after, qat=False):
    reference, reference_distiller = _distill(data_fn(), os.path.join(self.get_temp_dir(), "whole"), qat=qat)
    out = os.path.join(self.get_temp_dir(), "broken")
    with self.assertRaises(Interrupted):
      _distill(data_fn(), out, callbacks=[InterruptAt(crash_after)], qat=qat)
    resumed, resumed_distiller = _distill(data_fn(), out, qat=qat)
    self.assertEqual(int(resumed_distiller.optimizer.iterations), int(reference_distiller.optimizer.iterations))
    expected = _weights(reference)
    for name, value in _weights(resumed).items():
      self.assertAllClose(value, expected[name], atol=1e-5, msg=name)

  def test_unlabeled_rows(self):
    def data_fn():
      data = _task()
      pool = tiny.random_features(20, 12, seed=3)
      pool["label_ids"] = np.full(20, -1, np.int32)
      data.features["train"] = {k: np.concatenate([v, pool[k]]) for k, v in data.features["train"].items()}
      data.unlabeled_per_epoch = 8
      return data
    self._assert_resumes(data_fn, 13)  # in the second epoch: (28 + 8) / 4 = 9 to 13 batches each

  def test_quantisation_aware_epoch(self):
    """Killed in the qat epoch: the int8 ranges (student weights, compared too) come back with the checkpoint."""
    batches = training.epoch_batches(_task().features["train"], 4)
    self._assert_resumes(_task, batches + 3, qat=True)

  def test_per_epoch_augmentation(self):
    import test_augment_distill  # pylint: disable=import-outside-toplevel
    work = self.get_temp_dir()
    test_augment_distill.write_task(work)
    data = test_augment_distill.augmented_run(work, mode="per_epoch").load_data()
    self.assertEqual(sorted(set(data.row_epochs.tolist())), [-1, 0, 1])
    first = epoch_rows(data.features["train"]["label_ids"], None, 0, data.row_epochs, epoch=0)
    batches = training.epoch_batches({k: v[first] for k, v in data.features["train"].items()}, 4)
    self._assert_resumes(lambda: data, batches + 2)  # two batches into the second epoch, which has other rows


class SigkillResumeTest(tf.test.TestCase):
  """train_teacher as a real subprocess, killed with SIGKILL mid-run and started again with the same command."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_resume_")
    tiny.write_csv_task(os.path.join(cls.work, "data"), num_train=40)
    tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"), config=tiny.tiny_config(**DROPOUT))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  def _command(self, output_dir):
    return [tiny.PYTHON, "-m", "tf_distill.cli.train_teacher", "--init_checkpoint=pretrained", "--data_dir=data",
            "--task_name=csv", "--max_seq_length=16", "--train_batch_size=4", "--eval_batch_size=16",
            "--num_train_epochs=2", "--learning_rate=1e-3", "--save_every_steps=2", "--do_eval=false",
            f"--output_dir={output_dir}"]

  def _run(self, output_dir):
    result = subprocess.run(self._command(output_dir), cwd=self.work, env=tiny.subprocess_env(), capture_output=True,
                            text=True, timeout=600, check=False)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return result

  def _saves(self, output_dir):
    index = os.path.join(self.work, output_dir, "resume", "checkpoint")
    if not os.path.isfile(index):
      return 0
    with open(index, encoding="utf-8") as f:
      match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', f.read())
    return int(match.group(1)) if match else 0

  def test_sigkill_then_rerun_matches_uninterrupted_run(self):
    self._run("whole")
    process = subprocess.Popen(self._command("killed"), cwd=self.work, env=tiny.subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while self._saves("killed") < 6 and process.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    self.assertEqual(process.wait(), -signal.SIGKILL, "the run ended before it could be killed")
    saves_at_kill = self._saves("killed")
    self.assertGreaterEqual(saves_at_kill, 6)  # killed mid-run (2 epochs of ~11 batches: ~12 saves in all)
    result = self._run("killed")
    self.assertIn("resuming from", result.stdout)
    from tf_distill.run_dir import RunDir  # pylint: disable=import-outside-toplevel
    expected = _weights(RunDir(os.path.join(self.work, "whole")).load_model())
    resumed = _weights(RunDir(os.path.join(self.work, "killed")).load_model())
    self.assertEqual(sorted(expected), sorted(resumed))
    for name, value in resumed.items():
      self.assertAllClose(value, expected[name], atol=1e-5, msg=name)


if __name__ == "__main__":
  tf.test.main()

"""Tests for tf_distill.run_dir: every file of a run written then read back, old-format runs, missing files."""

import dataclasses
import json
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf

from tf_distill.configs import DataConfig, TrainConfig, save_json
from tf_distill.run_dir import RunDir

import tiny

FINISHED_RUN = "pass the --output_dir of a finished train_teacher or distill run"


def _read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _write_json(path, payload):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f)


class RunDirTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.root = self.get_temp_dir()
    self.vocab = tiny.write_vocab(os.path.join(self.root, "source", "vocab.txt"))
    self.data = DataConfig(task_name="csv", data_dir="/data/then", vocab_file=self.vocab, do_lower_case=False,
                           max_seq_length=16, text_b_column="text_b", tfds_data_dir="/tfds/then")

  def run_dir(self, name):
    return RunDir(os.path.join(self.root, name))

  def test_paths(self):
    run = RunDir("runs/x")
    self.assertEqual({name: getattr(run, name) for name in (
        "config_file", "model_config_file", "labels_file", "vocab_file", "eval_results_file", "best_weights",
        "resume_dir", "checkpoints_dir", "logs_dir", "teacher_cache_dir")}, {
            "config_file": "runs/x/config.json", "model_config_file": "runs/x/model_config.json",
            "labels_file": "runs/x/labels.json", "vocab_file": "runs/x/vocab.txt",
            "eval_results_file": "runs/x/eval_results.json", "best_weights": "runs/x/best/student",
            "resume_dir": "runs/x/resume", "checkpoints_dir": "runs/x/checkpoints", "logs_dir": "runs/x/logs",
            "teacher_cache_dir": "runs/x/teacher_cache"})
    self.assertEqual(os.fspath(run), "runs/x")
    self.assertEqual(RunDir(run).path, "runs/x")
    self.assertEqual(repr(run), "RunDir('runs/x')")

  def test_config_round_trip_in_the_format_of_save_json(self):
    run = self.run_dir("config")
    train = TrainConfig(output_dir=run.path, learning_rate=1e-3)
    run.write_config(data=self.data, train=train)
    self.assertEqual(run.read_config(), {"data": dataclasses.asdict(self.data), "train": dataclasses.asdict(train)})
    self.assertEqual(run.read_config()["data"]["max_seq_length"], 16)
    old_format = os.path.join(self.root, "save_json", "config.json")
    save_json(old_format, data=self.data, train=train)
    with open(old_format, encoding="utf-8") as old, open(run.config_file, encoding="utf-8") as new:
      self.assertEqual(new.read(), old.read())

  def test_model_info_round_trip(self):
    run = self.run_dir("model_info")
    model = tiny.tiny_classifier(seed=3)
    run.write_model_info(model, self.data, ["neg", "pos"])
    self.assertEqual(_read_json(run.model_config_file), model.config.to_dict())
    self.assertEqual(run.read_model_config(), tiny.tiny_config().to_dict())
    self.assertEqual(_read_json(run.labels_file), {"labels": ["neg", "pos"]})  # nothing config.json holds
    self.assertEqual(run.labels, ["neg", "pos"])
    with open(run.vocab_file, encoding="utf-8") as f:
      self.assertEqual(f.read().split(), tiny.VOCAB)
    run.write_model_info(model, dataclasses.replace(self.data, vocab_file=run.vocab_file), ["neg", "pos"])
    with open(run.vocab_file, encoding="utf-8") as f:  # its own copy as the vocab: left as it is
      self.assertEqual(f.read().split(), tiny.VOCAB)

  def test_data_config_and_export_metadata(self):
    run = self.run_dir("data_config")
    run.write_config(data=self.data)
    run.write_model_info(tiny.tiny_classifier(), self.data, ["neg", "pos"])
    self.assertEqual(run.data_config(), dataclasses.replace(self.data, vocab_file=run.vocab_file,
                                                            labels=("neg", "pos")))
    moved = run.data_config(data_dir="/data/now", tfds_data_dir="/tfds/now")
    self.assertEqual((moved.data_dir, moved.tfds_data_dir), ("/data/now", "/tfds/now"))
    self.assertEqual(run.export_metadata(), {"labels": ["neg", "pos"], "max_seq_length": 16, "task_name": "csv",
                                             "do_lower_case": False, "text_pairs": True})
    single = self.run_dir("single_sentences")
    single.write_config(data=dataclasses.replace(self.data, text_b_column=None, do_lower_case=True))
    single.write_model_info(tiny.tiny_classifier(), self.data, ["neg", "pos"])
    self.assertEqual(single.export_metadata()["text_pairs"], False)
    self.assertEqual(single.export_metadata()["do_lower_case"], True)

  def test_eval_results_round_trip(self):
    run = self.run_dir("eval")
    summary = {"best_epoch": 2, "dev_accuracy": 0.75, "history": {"loss": [0.5, 0.25]}}
    run.write_eval_results(summary)
    self.assertEqual(_read_json(os.path.join(run.path, "eval_results.json")), summary)
    self.assertEqual(run.read_eval_results(), summary)

  def test_old_labels_json_still_reads(self):
    run = self.run_dir("old")
    # Runs written before RunDir kept max_seq_length and task_name in labels.json as well; config.json wins.
    _write_json(run.labels_file, {"labels": ["neg", "pos"], "max_seq_length": 99, "task_name": "sst2"})
    _write_json(run.config_file, {"data": {**dataclasses.asdict(self.data), "labels": None}})
    self.assertEqual(run.labels, ["neg", "pos"])
    self.assertEqual(run.data_config().max_seq_length, 16)
    self.assertEqual(run.export_metadata()["task_name"], "csv")
    # Without them in config.json, the old labels.json's are taken.
    _write_json(run.config_file, {"train": {}})
    self.assertEqual(run.export_metadata(), {"labels": ["neg", "pos"], "max_seq_length": 99, "task_name": "sst2",
                                             "do_lower_case": True, "text_pairs": False})
    self.assertEqual((run.data_config().task_name, run.data_config().max_seq_length), ("sst2", 99))

  def test_max_seq_length_nowhere(self):
    run = self.run_dir("no_length")
    _write_json(run.labels_file, {"labels": ["neg", "pos"]})
    _write_json(run.config_file, {"data": {"task_name": "csv"}})
    with self.assertRaisesRegex(ValueError, f"{run.config_file} has no data.max_seq_length; it was not written by "
                                f"train_teacher or distill: {FINISHED_RUN}"):
      run.export_metadata()

  def test_missing_files_name_the_run_and_the_fix(self):
    run = self.run_dir("empty")
    readers = {"config.json": run.read_config, "model_config.json": run.read_model_config,
               "eval_results.json": run.read_eval_results, "labels.json": lambda: run.labels}
    for name, read in readers.items():
      with self.assertRaisesRegex(FileNotFoundError, f"^{run.path} has no {name}; {FINISHED_RUN}$"):
        read()
    with self.assertRaisesRegex(FileNotFoundError, f"^{run.path} has no model_config.json; {FINISHED_RUN}$"):
      run.load_model()
    run.write_config(data=self.data)
    with self.assertRaisesRegex(FileNotFoundError, f"^{run.path} has no labels.json; {FINISHED_RUN}$"):
      run.data_config()

  def test_load_model_takes_the_best_weights(self):
    run = self.run_dir("trained")
    model = tiny.tiny_classifier(seed=5)
    run.write_model_info(model, self.data, ["neg", "pos"])
    self.assertFalse(run.has_best_weights())
    with self.assertRaisesRegex(FileNotFoundError, f"^{run.path} has no best weights \\(best/student.index\\); the "
                                f"run ended before an epoch finished: {FINISHED_RUN}$"):
      run.load_model()
    model.save_weights(run.best_weights)
    self.assertTrue(run.has_best_weights())
    self.assertTrue(os.path.isfile(os.path.join(run.path, "best", "student.index")))
    features = tiny.random_features(3, 8, seed=6)
    loaded = run.load_model()
    self.assertIsNot(loaded, model)
    expected = model(features, training=False)["logits"].numpy()
    self.assertAllClose(loaded(features, training=False)["logits"], expected, atol=1e-6)
    untrained = tiny.tiny_classifier(seed=6)(features, training=False)["logits"].numpy()
    self.assertGreater(np.max(np.abs(untrained - expected)), 1e-3)  # the weights do tell models apart


if __name__ == "__main__":
  tf.test.main()

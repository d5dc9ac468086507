"""tf.distribute: mirrored over two logical CPU devices and multi-worker mirrored over two local worker processes
(TF_CONFIG on 127.0.0.1) take the same steps as one device on the same data (tf_distill.distribute,
tf_distill.distiller.replica_share). Each run is the real train_teacher program in a subprocess, because the logical
devices and the cluster must be set up before TensorFlow starts."""

import json
import os
import shutil
import socket
import subprocess
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

from tf_distill.distribute import make_strategy, worker_output_dir
from tf_distill.run_dir import RunDir

import tiny

# 44 rows in batches of 8: bucketing leaves partial batches, some of odd size, so replicas get uneven shares.
ARGS = ["--init_checkpoint=pretrained", "--data_dir=data", "--task_name=csv", "--max_seq_length=16",
        "--train_batch_size=8", "--eval_batch_size=16", "--num_train_epochs=2", "--learning_rate=1e-3",
        "--do_eval=false"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class DistributeTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_distribute_")
    tiny.write_csv_task(os.path.join(cls.work, "data"), num_train=44)
    pretrained = tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"))
    # No dropout: N replicas draw their own masks, so with dropout the runs differ by design.
    with open(os.path.join(pretrained, "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with open(os.path.join(pretrained, "config.json"), "w", encoding="utf-8") as f:
      json.dump(config, f)
    cls.one_device = cls._history("one_device", cls._start("one_device", []))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  @classmethod
  def _start(cls, output_dir, extra_args, env=None):
    return subprocess.Popen([tiny.PYTHON, "-m", "tf_distill.cli.train_teacher", *ARGS, f"--output_dir={output_dir}",
                             *extra_args], cwd=cls.work, env={**tiny.subprocess_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

  @classmethod
  def _history(cls, output_dir, process):
    stdout, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
      raise AssertionError(f"{output_dir} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    with open(os.path.join(cls.work, output_dir, "eval_results.json"), encoding="utf-8") as f:
      return json.load(f)["history"]

  def _assert_same_as_one_device(self, output_dir, history):
    self.assertAllClose(history["loss"], self.one_device["loss"], rtol=1e-5)
    self.assertAllClose(history["val_loss"], self.one_device["val_loss"], rtol=1e-5)
    expected = {v.name: v.numpy() for v in RunDir(os.path.join(self.work, "one_device")).load_model().weights}
    for variable in RunDir(os.path.join(self.work, output_dir)).load_model().weights:
      self.assertAllClose(variable, expected[variable.name], atol=2e-5, msg=variable.name)

  def test_mirrored_on_two_cpu_devices(self):
    process = self._start("mirrored", ["--distribution_strategy=mirrored", "--cpu_replicas=2"])
    history = self._history("mirrored", process)
    self._assert_same_as_one_device("mirrored", history)

  def test_multi_worker_mirrored_on_two_local_workers(self):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = [self._start("multi_worker", ["--distribution_strategy=multi_worker_mirrored"],
                             env={"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                          "task": {"type": "worker", "index": i}})})
                 for i in range(2)]
    histories = [self._history("multi_worker", p) for p in processes]
    self._assert_same_as_one_device("multi_worker", histories[0])
    self.assertTrue(os.path.isdir(os.path.join(self.work, "multi_worker", "workers", "1")))  # worker 1's own files

  def test_multi_worker_without_tf_config(self):
    with self.assertRaisesRegex(ValueError, "multi_worker_mirrored needs TF_CONFIG"):
      make_strategy("multi_worker_mirrored")

  def test_unknown_strategy(self):
    with self.assertRaisesRegex(ValueError, r"unknown distribution_strategy 'tpu'; use one of \['one_device', "):
      make_strategy("tpu")

  def test_worker_output_dir(self):
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                          "task": {"type": "worker", "index": 1}})
    try:
      self.assertEqual(worker_output_dir("runs/x"), os.path.join("runs/x", "workers", "1"))
    finally:
      del os.environ["TF_CONFIG"]
    self.assertEqual(worker_output_dir("runs/x"), "runs/x")


if __name__ == "__main__":
  tf.test.main()

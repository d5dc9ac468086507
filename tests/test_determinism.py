"""tf_distill.determinism: the same seed gives bit-identical weights, also while other processes load the CPU."""

import hashlib
import os
import subprocess

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

import tiny

# Repeats a scatter-add of repeated rows (the CPU kernel that shards such updates over threads, so its sums depend
# on scheduling without op determinism) and prints how many distinct results it gave; then trains a small BERT with
# the project's fit loop and prints a digest of every weight.
_TRAIN = """
import hashlib, sys, tempfile
import numpy as np
import tf_distill
import tensorflow as tf
from tf_distill.configs import TrainConfig
from tf_distill.determinism import make_deterministic
from tf_distill.distiller import Distiller
from tf_distill import training
sys.path.insert(0, "tests")
import tiny
make_deterministic(5, op_determinism=sys.argv[1] == "deterministic")
rows = tf.Variable(tf.zeros([64, 256]))
ids = tf.constant(np.random.default_rng(0).integers(0, 64, size=8192), tf.int32)
values = tf.constant(np.random.default_rng(1).normal(size=[8192, 256]), tf.float32)
@tf.function
def scatter():
  rows.assign(tf.zeros_like(rows))
  rows.scatter_add(tf.IndexedSlices(values, ids))
  return rows.read_value()
print("scatter_variants", len({scatter().numpy().tobytes() for _ in range(20)}))
def split(n, seed):
  features = tiny.random_features(n, 32, seed=seed)
  features["label_ids"] = (np.arange(n) % 2).astype(np.int32)
  return features
data = training.TaskData({"train": split(128, 1), "dev": split(16, 2)}, list(tiny.LABELS))
student = tiny.tiny_classifier(seed=3, num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                               intermediate_size=256, hidden_dropout_prob=0.1,
                               attention_probs_dropout_prob=0.1)
out = tempfile.mkdtemp()
config = TrainConfig(output_dir=out, train_batch_size=32, eval_batch_size=16, learning_rate=1e-3,
                     num_train_epochs=2, save_every_steps=1000)
training.fit(Distiller(student, alpha=0.0), data, config, out, verbose=0)
digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in student.weights)).hexdigest()
print("digest", digest)
"""


def _train(mode: str):
  """(distinct scatter results, weight digest) of one child run."""
  result = subprocess.run([tiny.PYTHON, "-c", _TRAIN, mode], cwd=tiny.REPO_ROOT, env=tiny.subprocess_env(),
                          capture_output=True, text=True, timeout=600, check=False)
  if result.returncode != 0:
    raise AssertionError(result.stderr[-3000:])
  return (int(result.stdout.split("scatter_variants ")[-1].split()[0]),
          result.stdout.split("digest ")[-1].strip())


class DeterminismTest(tf.test.TestCase):

  def test_same_results_with_and_without_load(self):
    mode = os.environ.get("TF_DISTILL_DETERMINISM_TEST_MODE", "deterministic")  # "seeded": check it fails unfixed
    idle = _train(mode)
    hogs = [subprocess.Popen([tiny.PYTHON, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
      loaded = _train(mode)
    finally:
      for hog in hogs:
        hog.kill()
        hog.wait()
    self.assertEqual(idle[0], 1)
    self.assertEqual(loaded[0], 1)
    self.assertEqual(loaded[1], idle[1])
    self.assertLen(idle[1], len(hashlib.sha256().hexdigest()))


if __name__ == "__main__":
  tf.test.main()

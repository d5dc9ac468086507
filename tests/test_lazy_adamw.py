"""LazyAdamW against AdamW written out in numpy: row-sparse for IndexedSlices, exact for dense gradients."""

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.configs import TrainConfig
from tf_distill.optimization import create_optimizer

B1, B2, EPS = 0.9, 0.999, 1e-6


def numpy_adamw(w, m, v, g, t, lr, wd, rows=None):
  """One AdamW step; rows=None updates every row (exact AdamW), else only `rows` (lazy)."""
  w, m, v = w.copy(), m.copy(), v.copy()
  rows = np.arange(len(w)) if rows is None else rows
  m[rows] = B1 * m[rows] + (1 - B1) * g[rows]
  v[rows] = B2 * v[rows] + (1 - B2) * g[rows] ** 2
  alpha = lr * np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
  w[rows] = w[rows] * (1 - lr * wd) - alpha * m[rows] / (np.sqrt(v[rows]) + EPS)
  return w, m, v


class LazyAdamWTest(tf.test.TestCase):

  def run_steps(self, embedding_optimizer, sparse):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(6, 3)).astype(np.float32)
    table = tf.Variable(w0, name="word_embeddings")
    # lr schedule: total 100 steps, no warm-up -> lr(step) = 1e-2 * (100 - step) / 100
    optimizer = create_optimizer(1e-2, 100, 0.0, 0.1, embedding_optimizer=embedding_optimizer)
    self.assertTrue(optimizer.jit_compile)  # the XLA-compiled update is the one checked here
    w, m, v = w0.astype(np.float64), np.zeros((6, 3)), np.zeros((6, 3))
    for t, ids in enumerate(([1, 3, 3], [0, 1], [5, 5, 5, 2]), start=1):
      values = rng.normal(size=(len(ids), 3)).astype(np.float32)
      g = np.zeros((6, 3))
      np.add.at(g, ids, values)
      grad = tf.IndexedSlices(tf.constant(values), tf.constant(ids), tf.constant([6, 3]))
      optimizer.apply_gradients([(grad if sparse else tf.convert_to_tensor(grad), table)])
      lr = 1e-2 * (100 - (t - 1)) / 100
      w, m, v = numpy_adamw(w, m, v, g, t, lr, 0.1, rows=np.unique(ids) if embedding_optimizer == "lazy_adamw"
                            and sparse else None)
    return table.numpy(), w, w0

  def test_lazy_updates_only_named_rows(self):
    got, want, initial = self.run_steps("lazy_adamw", sparse=True)
    self.assertAllClose(got, want, rtol=1e-5, atol=1e-6)
    self.assertAllEqual(got[4], initial[4])  # row 4 is never named: no update, no decay

  def test_lazy_is_exact_adamw_on_dense_gradients(self):
    got, want, _ = self.run_steps("lazy_adamw", sparse=False)
    self.assertAllClose(got, want, rtol=1e-5, atol=1e-6)

  def test_default_is_exact_adamw_on_sparse_gradients(self):
    got, want, initial = self.run_steps("adamw", sparse=True)
    self.assertAllClose(got, want, rtol=1e-5, atol=1e-6)
    self.assertNotAllClose(got[4], initial[4])  # exact AdamW decays the row it never saw

  def test_unknown_embedding_optimizer_is_refused(self):
    with self.assertRaisesRegex(ValueError, "embedding_optimizer must be one of"):
      create_optimizer(1e-2, 100, 0.0, 0.1, embedding_optimizer="sgd")

  def test_config_refuses_lazy_with_frozen_embeddings(self):
    with self.assertRaisesRegex(ValueError, "nothing to update with freeze_word_embeddings"):
      TrainConfig(embedding_optimizer="lazy_adamw", freeze_word_embeddings=True).validate()
    with self.assertRaisesRegex(ValueError, "embedding_optimizer must be adamw or lazy_adamw"):
      TrainConfig(embedding_optimizer="lazy").validate()


if __name__ == "__main__":
  tf.test.main()

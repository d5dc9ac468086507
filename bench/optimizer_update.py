"""Time of one optimizer update of a trained 30522 x 384 word-embedding table, variant by variant, in one run.

    python3 bench/optimizer_update.py --rows=1024 --repeats=20

The gradient is what a batch-32 x length-32 step produces: IndexedSlices with --rows rows (one per token). Variants:
tf-keras AdamW as the package builds it (sparse path: dense decay of both moments, scatter-add, dense variable update,
dense weight decay); the same after converting the gradient to dense (what clip_by_global_norm or the multi-replica
all-reduce does); AdamW without weight decay; the exact AdamW arithmetic fused into one XLA kernel; and a row-sparse
("lazy") Adam that touches only the gradient's rows. Each variant is timed round-robin with the others, median.
"""

import time

import numpy as np
from absl import app, flags

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill.optimization import LazyAdamW

flags.DEFINE_integer("rows", 1024, "Gradient rows (tokens in the batch).")
flags.DEFINE_integer("vocab", 30522, "Table rows.")
flags.DEFINE_integer("width", 384, "Table width.")
flags.DEFINE_integer("repeats", 20, "Timed rounds.")
FLAGS = flags.FLAGS

B1, B2, EPS, LR, WD = 0.9, 0.999, 1e-6, 1e-4, 0.01


def keras_variant(optimizer_class, densify=False):
  var = tf.Variable(tf.random.normal([FLAGS.vocab, FLAGS.width], stddev=0.02))
  opt = (optimizer_class(learning_rate=LR, epsilon=EPS) if optimizer_class is keras.optimizers.Adam else
         optimizer_class(learning_rate=LR, weight_decay=WD, epsilon=EPS))

  @tf.function
  def step(grad):
    g = tf.convert_to_tensor(grad) if densify else grad
    opt.apply_gradients([(g, var)])
  return step


def fused_exact_variant():
  """AdamW's exact arithmetic (all rows decay) in one XLA kernel: 1 read + 1 write of each of var, m, v."""
  var = tf.Variable(tf.random.normal([FLAGS.vocab, FLAGS.width], stddev=0.02))
  m = tf.Variable(tf.zeros_like(var))
  v = tf.Variable(tf.zeros_like(var))
  t = tf.Variable(0.0)

  @tf.function(jit_compile=True)
  def update(values, indices):
    t.assign_add(1.0)
    g = tf.math.unsorted_segment_sum(values, indices, FLAGS.vocab)
    new_m = B1 * m + (1 - B1) * g
    new_v = B2 * v + (1 - B2) * tf.square(g)
    alpha = LR * tf.sqrt(1 - B2 ** t) / (1 - B1 ** t)
    w = var * (1 - LR * WD)
    var.assign(w - alpha * new_m / (tf.sqrt(new_v) + EPS))
    m.assign(new_m)
    v.assign(new_v)

  @tf.function
  def step(grad):
    update(grad.values, grad.indices)
  return step


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  grad = tf.IndexedSlices(tf.constant(rng.normal(size=(FLAGS.rows, FLAGS.width)) * 1e-3, tf.float32),
                          tf.constant(rng.integers(1000, 5000, FLAGS.rows), tf.int32),
                          tf.constant([FLAGS.vocab, FLAGS.width]))
  variants = {
      "tf-keras AdamW (package default), IndexedSlices gradient": keras_variant(keras.optimizers.AdamW),
      "tf-keras AdamW, gradient made dense first": keras_variant(keras.optimizers.AdamW, densify=True),
      "tf-keras Adam (no weight decay)": keras_variant(keras.optimizers.Adam),
      "exact AdamW fused in one XLA kernel": fused_exact_variant(),
      "tf_distill LazyAdamW (--embedding_optimizer=lazy_adamw)": keras_variant(LazyAdamW),
  }
  times = {name: [] for name in variants}
  for step in variants.values():
    step(grad)
  for _ in range(FLAGS.repeats):
    for name, step in variants.items():
      start = time.perf_counter()
      step(grad)
      times[name].append(time.perf_counter() - start)
  base = np.median(times[next(iter(variants))])
  print(f"table {FLAGS.vocab} x {FLAGS.width}, gradient rows {FLAGS.rows}, "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads, median of {FLAGS.repeats}\n")
  print("| update | ms | vs package default |")
  print("|---|---|---|")
  for name, t in times.items():
    print(f"| {name} | {1e3 * np.median(t):.1f} | {np.median(t) / base:.2f}x |")


if __name__ == "__main__":
  app.run(main)

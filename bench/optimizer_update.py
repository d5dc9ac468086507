"""Time of one optimizer update of a trained 30522 x 384 word-embedding table, variant by variant, in one run; and
what else in the update grows with the vocab or with the number of variables.

    python3 bench/optimizer_update.py --rows=1024 --repeats=20 --vocabs=30522,119547 --student_layers=2,6

The gradient is what a batch-32 x length-32 step produces: IndexedSlices with --rows rows (one per token). Variants:
tf-keras AdamW as tf-keras builds it on a CPU (its `jit_compile` turned off without a GPU; sparse path: dense decay of
both moments, scatter-add, dense variable update, dense weight decay); the same with `jit_compile` on, each variable's
update one XLA computation (the package default: tf_distill.optimization.create_optimizer); the first after converting the gradient to dense (what clip_by_global_norm or the multi-replica
all-reduce does); AdamW without weight decay; the exact AdamW arithmetic fused into one XLA kernel; and a row-sparse
("lazy") Adam that touches only the gradient's rows. Each variant is timed round-robin with the others, median, at
each --vocabs table size (30522: BERT uncased; 119547: multilingual BERT).

The second table times the update of every other trainable variable of a BERT student (random init, hidden --width,
--student_layers deep; dense gradients) with AdamW without and with XLA and with LazyAdamW: the part of the update that grows with the
number of variables, not with the vocab.
"""

import time

import numpy as np
from absl import app, flags

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill.bert import BertClassifier, BertConfig
from tf_distill.optimization import LazyAdamW

flags.DEFINE_integer("rows", 1024, "Gradient rows (tokens in the batch).")
flags.DEFINE_list("vocabs", ["30522"], "Table rows, one measurement per value.")
flags.DEFINE_integer("width", 384, "Table width.")
flags.DEFINE_list("student_layers", ["2", "6"], "Depths of the students whose other variables are timed.")
flags.DEFINE_integer("repeats", 20, "Timed rounds.")
FLAGS = flags.FLAGS

B1, B2, EPS, LR, WD = 0.9, 0.999, 1e-6, 1e-4, 0.01


def keras_variant(vocab, optimizer_class, densify=False, jit_compile=False):
  var = tf.Variable(tf.random.normal([vocab, FLAGS.width], stddev=0.02))
  opt = (optimizer_class(learning_rate=LR, epsilon=EPS) if optimizer_class is keras.optimizers.Adam else
         optimizer_class(learning_rate=LR, weight_decay=WD, epsilon=EPS))
  opt.jit_compile = jit_compile  # tf-keras sets False without a GPU; tf_distill's create_optimizer sets True

  @tf.function
  def step(grad):
    g = tf.convert_to_tensor(grad) if densify else grad
    opt.apply_gradients([(g, var)])
  return step


def fused_exact_variant(vocab):
  """AdamW's exact arithmetic (all rows decay) in one XLA kernel: 1 read + 1 write of each of var, m, v."""
  var = tf.Variable(tf.random.normal([vocab, FLAGS.width], stddev=0.02))
  m = tf.Variable(tf.zeros_like(var))
  v = tf.Variable(tf.zeros_like(var))
  t = tf.Variable(0.0)

  @tf.function(jit_compile=True)
  def update(values, indices):
    t.assign_add(1.0)
    g = tf.math.unsorted_segment_sum(values, indices, vocab)
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


def round_robin(steps, args):
  """Median seconds of `step(*args)` for each step, timed round-robin after one warm-up call each."""
  times = {name: [] for name in steps}
  for step in steps.values():
    step(*args)
  for _ in range(FLAGS.repeats):
    for name, step in steps.items():
      start = time.perf_counter()
      step(*args)
      times[name].append(time.perf_counter() - start)
  return {name: float(np.median(t)) for name, t in times.items()}


def table_update(vocab):
  rng = np.random.default_rng(0)
  grad = tf.IndexedSlices(tf.constant(rng.normal(size=(FLAGS.rows, FLAGS.width)) * 1e-3, tf.float32),
                          tf.constant(rng.integers(1000, 5000, FLAGS.rows), tf.int32),
                          tf.constant([vocab, FLAGS.width]))
  variants = {
      "tf-keras AdamW as tf-keras builds it on a CPU (no XLA), IndexedSlices gradient":
          keras_variant(vocab, keras.optimizers.AdamW),
      "tf-keras AdamW with jit_compile (package default: create_optimizer)":
          keras_variant(vocab, keras.optimizers.AdamW, jit_compile=True),
      "tf-keras AdamW, gradient made dense first": keras_variant(vocab, keras.optimizers.AdamW, densify=True),
      "tf-keras Adam (no weight decay)": keras_variant(vocab, keras.optimizers.Adam),
      "exact AdamW fused in one XLA kernel": fused_exact_variant(vocab),
      "tf_distill LazyAdamW (--embedding_optimizer=lazy_adamw)": keras_variant(vocab, LazyAdamW, jit_compile=True),
  }
  return round_robin(variants, (grad,))


def other_variables_update(layers):
  """(variables, parameters, {optimizer: median s}) of one update of a student's variables but the word table."""
  config = BertConfig(vocab_size=1000, hidden_size=FLAGS.width, num_hidden_layers=layers,
                      num_attention_heads=max(FLAGS.width // 32, 1), intermediate_size=4 * FLAGS.width)
  model = BertClassifier(config).build_weights()
  table = model.embeddings.word_embeddings.embeddings
  variables = [v for v in model.trainable_variables if v is not table]
  grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
  steps = {}
  for name, optimizer_class, jit in (("AdamW", keras.optimizers.AdamW, False),
                                     ("AdamW jit", keras.optimizers.AdamW, True), ("LazyAdamW", LazyAdamW, True)):
    opt = optimizer_class(learning_rate=LR, weight_decay=WD, epsilon=EPS)
    opt.jit_compile = jit
    opt.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
    steps[name] = tf.function(lambda g, opt=opt: opt.apply_gradients(zip(g, variables)))
  return len(variables), sum(int(np.prod(v.shape)) for v in variables), round_robin(steps, (grads,))


def main(argv):
  del argv
  vocabs = [int(v) for v in FLAGS.vocabs]
  results = {vocab: table_update(vocab) for vocab in vocabs}
  names = list(results[vocabs[0]])
  print(f"table V x {FLAGS.width}, gradient rows {FLAGS.rows}, "
        f"{tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads, median of {FLAGS.repeats}\n")
  print("| update | " + " | ".join(f"ms, V = {v} | vs tf-keras on a CPU" for v in vocabs) + " |")
  print("|---|" + "---|---|" * len(vocabs))
  for name in names:
    cells = [f"{1e3 * results[v][name]:.1f} | {results[v][name] / results[v][names[0]]:.2f}x" for v in vocabs]
    print(f"| {name} | " + " | ".join(cells) + " |")
  print("\n| student's other variables (dense gradients) | variables | parameters | AdamW (no XLA) ms | AdamW jit ms "
        "(default) | LazyAdamW jit ms |")
  print("|---|---|---|---|---|---|")
  for layers in map(int, FLAGS.student_layers):
    count, params, times = other_variables_update(layers)
    print(f"| {layers} layers / {FLAGS.width} | {count} | {params / 1e6:.1f} M | {1e3 * times['AdamW']:.1f} | "
          f"{1e3 * times['AdamW jit']:.1f} | {1e3 * times['LazyAdamW']:.1f} |")


if __name__ == "__main__":
  app.run(main)

"""Train-step and forward time of the BERT classifier on this machine, with and without training the word
embeddings (AdamW as in training; real all-MiniLM-L6-v2 weights, layers cut to --layers).

    python bench/step_time.py --layers=6,2 --seq_lens=16,32,64 --batch_size=32
"""

import time

import numpy as np
from absl import app, flags

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill import pretrained
from tf_distill.optimization import create_optimizer

flags.DEFINE_list("layers", ["6", "2"], "Encoder depths to time (the first N pretrained layers).")
flags.DEFINE_list("seq_lens", ["16", "32", "64"], "Sequence lengths.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_list("embedding_optimizers", ["adamw"], "create_optimizer embedding_optimizer values to time "
                  "(trained word embeddings only), e.g. adamw,lazy_adamw.")
flags.DEFINE_integer("repeats", 10, "Timed repeats per measurement (after one warm-up).")
FLAGS = flags.FLAGS


def seconds_per_call(fn, x, repeats):
  fn(x)
  start = time.perf_counter()
  for _ in range(repeats):
    fn(x)
  return (time.perf_counter() - start) / repeats


def measure(num_layers, freeze, seq_len, embedding_optimizer="adamw"):
  model = pretrained.build_pretrained_classifier(pretrained.default_pretrained_dir(), 2)
  model.encoder_layers = model.encoder_layers[:num_layers]
  model.embeddings.word_embeddings.trainable = not freeze
  optimizer = create_optimizer(1e-5, 1000, 0.1, 0.01, embedding_optimizer)
  labels = tf.zeros([FLAGS.batch_size], tf.int32)

  @tf.function
  def train_step(x):
    with tf.GradientTape() as tape:
      logits = model(x, training=True)["logits"]
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss

  @tf.function
  def forward(x):
    return model(x, training=False)["logits"]

  rng = np.random.default_rng(0)
  x = {"input_ids": tf.constant(rng.integers(1000, 5000, (FLAGS.batch_size, seq_len)), tf.int32),
       "input_mask": tf.ones([FLAGS.batch_size, seq_len], tf.int32),
       "segment_ids": tf.zeros([FLAGS.batch_size, seq_len], tf.int32)}
  return seconds_per_call(train_step, x, FLAGS.repeats), seconds_per_call(forward, x, FLAGS.repeats)


def main(argv):
  del argv
  print(f"batch {FLAGS.batch_size}, {tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads\n")
  print("| layers | seq_len | word embeddings | train step (s) | forward (s) |")
  print("|---|---|---|---|---|")
  for num_layers in map(int, FLAGS.layers):
    for seq_len in map(int, FLAGS.seq_lens):
      for name in FLAGS.embedding_optimizers + ["frozen"]:
        step, fwd = measure(num_layers, name == "frozen", seq_len, "adamw" if name == "frozen" else name)
        label = "frozen" if name == "frozen" else f"trained ({name})"
        print(f"| {num_layers} | {seq_len} | {label} | {step:.3f} | {fwd:.3f} |", flush=True)


if __name__ == "__main__":
  app.run(main)

"""The cost of op determinism (tf_distill.determinism): teacher fine-tuning steps of the demo's shape, timed in
interleaved subprocesses with and without `enable_op_determinism` (it is process-wide, so each mode gets its own
process; rounds alternate the modes so machine drift reaches both alike).

    python bench/determinism.py --rounds=3 --steps=10

all-MiniLM-L6-v2 (real weights, 6 layers, 384 wide), batch 32, length 64, AdamW, word embeddings frozen as in
flags/common.flags. Prints the median step time of each mode and their ratio.
"""

import json
import subprocess
import sys

import numpy as np
from absl import app, flags

flags.DEFINE_integer("rounds", 3, "Rounds; each runs one process per mode.")
flags.DEFINE_integer("steps", 10, "Timed steps per process (after two warm-up steps).")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("seq_len", 64, "Sequence length.")
FLAGS = flags.FLAGS

_STEPS = """
import json, sys, time
import numpy as np
import tf_distill
import tensorflow as tf
from tf_distill import pretrained
from tf_distill.determinism import make_deterministic
from tf_distill.optimization import create_optimizer
mode, steps, batch, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if mode == "deterministic":
  make_deterministic(0)
else:
  import tf_keras; tf_keras.utils.set_random_seed(0)
model = pretrained.build_pretrained_classifier(pretrained.default_pretrained_dir(), 2)
model.embeddings.word_embeddings.trainable = False
optimizer = create_optimizer(1e-5, 1000, 0.1, 0.01)
rng = np.random.default_rng(0)
x = {"input_ids": tf.constant(rng.integers(1000, 5000, (batch, seq)), tf.int32),
     "input_mask": tf.ones([batch, seq], tf.int32), "segment_ids": tf.zeros([batch, seq], tf.int32)}
labels = tf.constant(rng.integers(0, 2, batch), tf.int32)
@tf.function
def step():
  with tf.GradientTape() as tape:
    logits = model(x, training=True)["logits"]
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
  optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
  return loss
step(); step()
times = []
for _ in range(steps):
  start = time.perf_counter(); step().numpy(); times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def main(argv):
  del argv
  times = {"seeded": [], "deterministic": []}
  for r in range(FLAGS.rounds):
    for mode in (("seeded", "deterministic") if r % 2 == 0 else ("deterministic", "seeded")):
      out = subprocess.run([sys.executable, "-c", _STEPS, mode, str(FLAGS.steps), str(FLAGS.batch_size),
                            str(FLAGS.seq_len)], capture_output=True, text=True, check=True).stdout
      times[mode].extend(json.loads(out.strip().splitlines()[-1]))
  seeded, deterministic = (float(np.median(times[m])) for m in ("seeded", "deterministic"))
  print(f"teacher step, batch {FLAGS.batch_size}, length {FLAGS.seq_len}, {FLAGS.rounds} rounds x {FLAGS.steps} "
        f"steps: seeded {seeded:.3f} s, deterministic {deterministic:.3f} s, deterministic / seeded "
        f"{deterministic / seeded:.3f}")


if __name__ == "__main__":
  app.run(main)

"""Reproducible runs: one call that seeds every generator a run draws from and makes TensorFlow's ops deterministic.

Call `make_deterministic(config.seed)` once per process, after the `tf.distribute` strategy (and any logical CPU
split, `tf_distill.distribute.configure_cpu_replicas`) is set up and before data pipelines, models or optimizers are
built: the seeds decide the initializers' and `ResumableDropout`'s seeds, which are drawn when layers are built, and
tf.data reads the determinism setting when a dataset is created.

What was measured on this 2-core CPU (TF 2.21, tf-keras 2.21; scripts in bench/determinism.py and
tests/test_determinism.py):
  - The one kernel found to give different bits from run to run under load is the CPU `ResourceScatterAdd` (and the
    other `ResourceScatter*` updates) with repeated indices and at least 1024 of them: TensorFlow then shards the
    updates over the intra-op threads with one lock per region of rows, so the order in which repeated rows are summed
    depends on thread scheduling (30 of 30 repeats differed with two busy loops running; 0 of 10 with op
    determinism, which makes the kernel serial).
  - Matmuls (oneDNN), batch matmuls, reductions, BiasAddGrad, softmax, unsorted/sorted segment sums and the dense
    conversion of IndexedSlices gave identical bits in every repeat, idle or loaded; so did the gradients of a
    2-layer, 384-wide BERT on a fixed batch and the weights after 20-200 `Distiller.fit` steps of 2- to 6-layer BERTs
    with dropout and length buckets. Keras' AdamW sums repeated embedding rows with `tf.unique` +
    `unsorted_segment_sum` before its scatter updates, so the training loop itself does not reach the racy kernel.

Guarantees with op determinism on: every TensorFlow op either runs a deterministic kernel or raises
`UnimplementedError`; tf.data's `deterministic` arguments and options are forced to True; random ops without a seed
raise instead of drawing from the clock. Same hardware, same software and the same number of threads and replicas
give the same bits. It does not cover work outside TensorFlow (Python threads, downloads) or a different core count.
Cost: the affected kernels run single-threaded and tf.data functions with stateful ops lose their parallelism; for
the online distillation step (bench/determinism.py, bench/RESULTS.md) the difference was within measurement noise.
"""

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras


def make_deterministic(seed: int, op_determinism: bool = True) -> None:
  """Seeds Python's `random`, NumPy's global generator and TensorFlow's global seed with `seed`, and (unless
  `op_determinism` is False) turns on `tf.config.experimental.enable_op_determinism()` for the rest of the process."""
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  keras.utils.set_random_seed(seed)
  if op_determinism:
    tf.config.experimental.enable_op_determinism()


def op_determinism_enabled() -> bool:
  """Whether `make_deterministic` (or `enable_op_determinism`) has turned op determinism on in this process."""
  from tensorflow.python.framework import config  # pylint: disable=import-outside-toplevel
  return bool(config.is_op_determinism_enabled())

"""BERT's optimiser: AdamW with linear warm-up then linear decay to zero; no decay on LayerNorm and biases."""

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras
from tf_keras.src.utils import tf_utils


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
  """lr(step) = peak * step / warmup_steps for step < warmup_steps, then peak * (total - step) / (total - warmup)."""

  def __init__(self, peak_learning_rate: float, total_steps: int, warmup_steps: int):
    super().__init__()
    if total_steps < 1:
      raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
      raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}")
    self.peak_learning_rate = peak_learning_rate
    self.total_steps = total_steps
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = self.peak_learning_rate * step / max(self.warmup_steps, 1)
    decay = self.peak_learning_rate * tf.maximum(self.total_steps - step, 0.0) / (self.total_steps - self.warmup_steps)
    return tf.where(step < self.warmup_steps, warmup, decay)

  def get_config(self):
    return {"peak_learning_rate": self.peak_learning_rate, "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps}


EMBEDDING_OPTIMIZERS = ("adamw", "lazy_adamw")


class LazyAdamW(keras.optimizers.AdamW):
  """AdamW whose sparse (IndexedSlices) gradients update only the rows they name ("lazy" Adam).

  For a row r named by the gradient (duplicates summed into g_r), with t the step and lr the learning rate:
      m_r <- b1 m_r + (1 - b1) g_r;   v_r <- b2 v_r + (1 - b2) g_r^2
      w_r <- w_r (1 - lr wd) - lr sqrt(1 - b2^t) / (1 - b1^t) * m_r / (sqrt(v_r) + eps)
  Rows the batch does not name are left as they are: their moments are not decayed, their weights get no update and
  no weight decay (exact AdamW moves every row with a non-zero moment and decays every row on every step). Dense
  gradients (every other variable, and all variables under a multi-replica strategy, whose gradients are summed
  dense) get exactly tf-keras AdamW's update. Cost per step: O(rows in the batch) instead of O(vocab) for the table.
  """

  def _apply_weight_decay(self, variables):
    del variables  # decay is applied inside update_step, per row for sparse gradients

  def update_step(self, gradient, variable):
    lr = tf.cast(self.learning_rate, variable.dtype)
    decay = lr * tf.cast(self.weight_decay or 0.0, variable.dtype) if self._use_weight_decay(variable) else 0.0
    if not isinstance(gradient, tf.IndexedSlices):
      if self._use_weight_decay(variable):
        variable.assign_sub(variable * decay)
      return super().update_step(gradient, variable)
    step = tf.cast(self.iterations + 1, variable.dtype)
    beta_1 = tf.cast(self.beta_1, variable.dtype)
    beta_2 = tf.cast(self.beta_2, variable.dtype)
    key = self._index_dict[self._var_key(variable)]
    m, v = self._momentums[key], self._velocities[key]
    rows, position = tf.unique(gradient.indices)
    g = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * g
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(g)
    alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
    w_rows = tf.gather(variable, rows) * (1 - decay) - alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_update(tf.IndexedSlices(w_rows, rows))


def create_optimizer(learning_rate: float, total_steps: int, warmup_proportion: float,
                     weight_decay: float, embedding_optimizer: str = "adamw") -> keras.optimizers.Optimizer:
  """BERT's AdamW; embedding_optimizer="lazy_adamw" updates embedding tables row-sparsely (see LazyAdamW).

  The update of each variable is XLA-compiled (`jit_compile`), on the CPU too: tf-keras turns it off without a GPU,
  but on a CPU it fuses the dense AdamW update of a 30522 x 384 embedding table (both moments, weight decay) into one
  pass, about 3x faster (bench/optimizer_update.py), with the same arithmetic (weights within 1e-8 of the unfused
  update; tests/test_lazy_adamw.py checks both optimizers against AdamW in numpy).
  """
  if embedding_optimizer not in EMBEDDING_OPTIMIZERS:
    raise ValueError(f"embedding_optimizer must be one of {list(EMBEDDING_OPTIMIZERS)}, got {embedding_optimizer!r}")
  schedule = WarmupLinearDecay(learning_rate, total_steps, int(total_steps * warmup_proportion))
  optimizer_class = LazyAdamW if embedding_optimizer == "lazy_adamw" else keras.optimizers.AdamW
  optimizer = optimizer_class(learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-6)
  optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
  optimizer.jit_compile = tf_utils.can_jit_compile()
  return optimizer

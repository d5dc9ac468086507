"""BERT's optimiser: AdamW with linear warm-up then linear decay to zero; no decay on LayerNorm and biases."""

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras


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


def create_optimizer(learning_rate: float, total_steps: int, warmup_proportion: float,
                     weight_decay: float) -> keras.optimizers.Optimizer:
  schedule = WarmupLinearDecay(learning_rate, total_steps, int(total_steps * warmup_proportion))
  optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-6)
  optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
  return optimizer

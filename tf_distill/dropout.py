"""Dropout whose random stream is part of the checkpoint, so a resumed run draws exactly the masks of an unbroken one.

Keras' `Dropout` keeps its random state inside the op kernel (or in a generator no checkpoint sees): a run killed and
restored from a checkpoint continues with different masks than the run that was never interrupted. Here every mask is
`stateless_dropout(x, rate, seed=(layer_seed, calls))`, where `calls` counts this layer's training calls and is a
(non-trainable) layer weight saved with the model. Under `tf.distribute` each replica mixes its replica id into the
seed.
"""

import random

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

_MAX_REPLICAS = 4096


class ResumableDropout(keras.layers.Layer):
  """`x * mask / (1 - rate)` in training, identity otherwise; masks keyed by (seed, call count, replica)."""

  def __init__(self, rate: float, seed: int = None, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    self.rate = float(rate)
    # Drawn from Python's generator, which keras.utils.set_random_seed seeds: the same seed gives the same layers.
    self.seed = random.randrange(2**31) if seed is None else int(seed)

  def build(self, input_shape):
    self.calls = self.add_weight("calls", shape=[], dtype=tf.int64, initializer="zeros", trainable=False,
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    super().build(input_shape)

  def call(self, x, training=None):
    if not training or self.rate == 0.0:
      return x
    context = tf.distribute.get_replica_context()
    replica = tf.cast(context.replica_id_in_sync_group if context else 0, tf.int64)
    seed = tf.stack([tf.constant(self.seed, tf.int64), self.calls * _MAX_REPLICAS + replica])
    self.calls.assign_add(1)
    return tf.nn.experimental.stateless_dropout(x, self.rate, seed=seed)

  def get_config(self):
    return {**super().get_config(), "rate": self.rate, "seed": self.seed}

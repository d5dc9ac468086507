"""Quantisation-aware distillation: int8 simulated in the student's forward pass where TFLite's full-int8 converter
quantises, so that distillation adapts the weights to it (the `qat` stage, `--stages=joint:3,qat:1`).

Why TensorFlow's own fake-quant ops and not `tensorflow-model-optimization`: tfmot's `quantize_model` /
`quantize_apply` take only Sequential and Functional Keras models, and both tf_distill students are subclassed models
whose attention, masking, LayerNorm and recurrence are written out in `call`; a per-layer `QuantizeConfig` cannot
reach the tensors between those ops (scores, softmax, residual sums, the LayerNorm's steps). So the layers mark their
quantisation points themselves, with `tf.quantization.fake_quant_*` ops, the ops tfmot's quantizers are made of.

What is simulated, following TFLite's full-int8 rules:
  weights      Dense kernels: symmetric int8 per output channel, q in [-127, 127], scale max|w| / 127
               (`per_channel_weights`); embedding tables: symmetric per tensor (`per_tensor_weights`).
  activations  per tensor, asymmetric, 256 levels over [min, max] with 0 exactly representable
               (`fake_quant_with_min_max_vars`); [min, max] is an exponential moving average (`MOMENTUM`) of each
               training batch's min and max, as tfmot's MovingAverageQuantizer keeps it, frozen at evaluation.
               Points: the embedding sum, every Dense output (and its input to GELU / tanh, a separate TFLite op),
               queries scaled by 1/sqrt(d), attention scores, masked scores, context, residual sums, the LayerNorm's
               centred and normalised values and its output; the BiLSTM's input projection, its final states and,
               in every step of its recurrence, what TFLite's int8 WHILE body requantises (the incoming h and c, the
               recurrent product h U per channel, the gate sum, i*g, f*c, the new c, the new h and the masked
               states). TFLite keeps only the loop-carried state between steps in float32; every op of the body is
               int8. A point inside the loop gathers its batch's extremes over all steps and moves its range once
               per batch (`Int8Ranges.observe`), as the converter's calibration takes min/max over all steps.
  fixed        TFLite's int8 SOFTMAX and LOGISTIC outputs are fixed to [0, 255/256] (scale 1/256), TANH's to
               [-1, 127/128] (scale 1/128): simulated on those ranges.
Gradients are straight-through (the fake-quant ops' own): 1 inside the range, 0 outside it for activations.

Use: `prepare(model)` once, before training and before a checkpoint is restored (it creates the range variables,
which are checkpointed with the student, so a resumed run continues them), then `set_simulated(model, True)` for the
epochs that simulate int8 (`tf_distill.schedules.StageSchedule` does it for the `qat` stage; `Distiller.simulate_int8`
retraces its step functions). The exported student is float32 with the weights learned under the simulation;
export_student's `full_int8` converter calibrates its own activation ranges (min/max over representative training
examples, without dropout), so the file quantises where training simulated it, over ranges close to, not equal to,
the moving averages (which see dropout). The learned ranges stay in the checkpoint; the export does not read them.
"""

from typing import Dict, Optional

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

MOMENTUM = 0.99  # of the activation ranges' moving averages: about the last 100 training batches


def per_channel_weights(kernel: tf.Tensor) -> tf.Tensor:
  """A Dense kernel float32 [in, out] as TFLite's per-output-channel int8 weights: round(w / s) * s with
  s = max_i |w[i, c]| / 127 per column c. The scale takes no gradient; the kernel gets it straight through."""
  limit = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(kernel), axis=0), 1e-8))
  return tf.quantization.fake_quant_with_min_max_vars_per_channel(kernel, -limit, limit, num_bits=8,
                                                                   narrow_range=True)


def per_tensor_weights(table: tf.Tensor) -> tf.Tensor:
  """A weight tensor as symmetric per-tensor int8: round(w / s) * s with s = max |w| / 127."""
  limit = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(table)), 1e-8))
  return tf.quantization.fake_quant_with_min_max_vars(table, -limit, limit, num_bits=8, narrow_range=True)


# TFLite's int8 outputs of SOFTMAX and LOGISTIC (scale 1/256, zero point -128) and of TANH (scale 1/128, zero 0).
UNIT_RANGE = (0.0, 255 / 256)
TANH_RANGE = (-1.0, 127 / 128)


def fixed_range(x: tf.Tensor, low: float, high: float) -> tf.Tensor:
  """x fake-quantised to 256 levels over the fixed range [low, high] (TFLite's SOFTMAX and TANH outputs)."""
  return tf.quantization.fake_quant_with_min_max_args(x, min=low, max=high, num_bits=8)


class Int8Ranges(keras.layers.Layer):
  """The activation ranges of one layer's quantisation points, and whether int8 is simulated now.

  One (min, max, batches seen) triple of non-trainable variables per point, created by the point's first call
  (eager: `prepare` runs one forward pass). Under `tf.distribute` each replica updates its own copy and reads give
  the mean over replicas, as Keras' BatchNormalization keeps its moving statistics.
  """

  def __init__(self, momentum: float = MOMENTUM, **kwargs):
    super().__init__(trainable=False, **kwargs)
    if not 0.0 <= momentum < 1.0:
      raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    self.momentum = momentum
    self.simulated = False
    self._ranges: Dict[str, tuple] = {}

  def _variables(self, point: str):
    if point not in self._ranges:
      def variable(name):
        return self.add_weight(name=f"{point}_{name}", shape=[], initializer="zeros", trainable=False,
                               synchronization=tf.VariableSynchronization.ON_READ,
                               aggregation=tf.VariableAggregation.MEAN)
      self._ranges[point] = (variable("min"), variable("max"), variable("batches"))
    return self._ranges[point]

  def quantize(self, point: str, x: tf.Tensor, training: Optional[bool]) -> tf.Tensor:
    """x fake-quantised over the point's range; in training the range first moves towards this batch's
    [min(x, 0), max(x, 0)] (the first batch sets it). Before any training batch x passes unchanged."""
    if training:
      values = tf.reshape(tf.stop_gradient(x), [-1])
      self.observe(point, tf.reduce_min(tf.concat([values, [0.0]], 0)), tf.reduce_max(tf.concat([values, [0.0]], 0)))
    return self.fake_quant(point, x)

  def observe(self, point: str, batch_low: tf.Tensor, batch_high: tf.Tensor):
    """Moves the point's range towards one training batch's [min(batch_low, 0), max(batch_high, 0)]; a point inside
    a loop (the BiLSTM's recurrence) gathers its batch's extremes over the steps and calls this once."""
    low, high, batches = self._variables(point)
    batch_low, batch_high = tf.minimum(batch_low, 0.0), tf.maximum(batch_high, 0.0)
    # a batch whose values are all 0 (or a replica's empty share of the last batch) moves nothing
    informative = tf.cast(batch_high > batch_low, tf.float32)
    keep = tf.where(batches > 0, self.momentum, 0.0)
    low.assign(low + informative * (1.0 - keep) * (batch_low - low))
    high.assign(high + informative * (1.0 - keep) * (batch_high - high))
    batches.assign_add(informative)

  def fake_quant(self, point: str, x: tf.Tensor) -> tf.Tensor:
    """x fake-quantised over the point's current range (x unchanged before the first training batch)."""
    low, high, batches = self._variables(point)
    quantized = tf.quantization.fake_quant_with_min_max_vars(x, tf.identity(low), tf.identity(high), num_bits=8)
    return tf.where(batches > 0, quantized, x)

  def get_config(self):
    return {**super().get_config(), "momentum": self.momentum}


def activation(layer: keras.layers.Layer, point: str, x: tf.Tensor, training: Optional[bool] = None) -> tf.Tensor:
  """`layer`'s quantisation point `point` applied to x while int8 is simulated; x itself otherwise."""
  ranges = getattr(layer, "int8_ranges", None)
  return ranges.quantize(point, x, training) if ranges is not None and ranges.simulated else x


def is_simulated(layer: keras.layers.Layer) -> bool:
  ranges = getattr(layer, "int8_ranges", None)
  return ranges is not None and ranges.simulated


class Int8Dense(keras.layers.Dense):
  """Keras' Dense (same variables, same maths) with int8 simulation: per-channel kernel, quantised output, and a
  quantised pre-activation when the activation is a TFLite op of its own (not ReLU, which FULLY_CONNECTED fuses).

  A rank-3 input is not accepted while simulating; tf_distill's models call their Dense layers on matrices."""

  simulates_int8 = True

  def call(self, inputs, training=None):
    if not is_simulated(self):
      return super().call(inputs)
    outputs = tf.matmul(inputs, per_channel_weights(self.kernel))
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    name = getattr(self.activation, "__name__", "")
    if name not in ("linear", "relu"):  # FULLY_CONNECTED fuses ReLU; GELU and tanh are ops of their own
      outputs = activation(self, "pre_activation", outputs, training)
    if name == "tanh":
      return fixed_range(self.activation(outputs), *TANH_RANGE)
    return activation(self, "output", self.activation(outputs), training)


class Int8Embedding(keras.layers.Embedding):
  """Keras' Embedding whose table is read as symmetric per-tensor int8 while simulating (TFLite's GATHER of an int8
  table returns its int8 rows: the output keeps the table's scale)."""

  simulates_int8 = True

  def call(self, inputs):
    if not is_simulated(self):
      return super().call(inputs)
    return tf.gather(per_tensor_weights(self.embeddings), tf.cast(inputs, tf.int32))


def _int8_layers(model: keras.Model):
  return [layer for layer in model.submodules
          if isinstance(layer, keras.layers.Layer) and getattr(type(layer), "simulates_int8", False)]


def prepare(model: keras.Model, momentum: float = MOMENTUM) -> keras.Model:
  """Gives every layer of `model` that simulates int8 its `Int8Ranges` and creates their variables with one eager
  forward pass per output set (`model.dummy_inputs()`, logits only and all outputs). Int8 is not yet simulated
  afterwards. Call it under the distribution strategy's scope, before restoring a checkpoint. Returns `model`."""
  layers = _int8_layers(model)
  if not layers:
    raise ValueError(f"{type(model).__name__} has no layers that simulate int8; quantisation-aware training needs "
                     "a tf_distill student (bert or bilstm)")
  for layer in layers:
    if getattr(layer, "int8_ranges", None) is None:
      layer.int8_ranges = Int8Ranges(momentum, name="int8_ranges")
  set_simulated(model, True)
  try:
    for logits_only in (True, False):
      model(model.dummy_inputs(), training=False, logits_only=logits_only)
  finally:
    set_simulated(model, False)
  return model


def is_prepared(model: keras.Model) -> bool:
  return any(getattr(layer, "int8_ranges", None) is not None for layer in _int8_layers(model))


def set_simulated(model: keras.Model, simulated: bool) -> bool:
  """Switches int8 simulation of a prepared model on or off; returns whether that changed anything (then traced
  functions of the model must be traced again: `Distiller.simulate_int8` does it)."""
  ranges = [layer.int8_ranges for layer in _int8_layers(model) if getattr(layer, "int8_ranges", None) is not None]
  if simulated and not ranges:
    raise ValueError("int8 simulation needs a prepared model: call tf_distill.quantization_aware.prepare(model) "
                     "first (DistillRun does for a run with a qat stage)")
  changed = any(r.simulated != simulated for r in ranges)
  for r in ranges:
    r.simulated = simulated
  return changed

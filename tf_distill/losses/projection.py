"""`Projection`: TinyBERT's learnable map from the student's width to the teacher's, for losses with
`needs_projection`."""

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

class Projection(keras.layers.Layer):
  """TinyBERT's learnable map from the student's width to the teacher's: h_s W_h + b.

  W_h: [student_hidden, units], b: [units] (TinyBERT's `fit_dense` is an `nn.Linear`, so it has a bias). Maps
  float32 [..., student_hidden] -> [..., units]; apply it to the student's states before a loss with
  `needs_projection` whenever the widths differ. It is trained with the student and dropped after distillation.
  """

  def __init__(self, units: int, use_bias: bool = True, initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    if units < 1:
      raise ValueError(f"Projection units must be >= 1, got {units}")
    self.units = int(units)
    self.use_bias = bool(use_bias)
    self.initializer_range = float(initializer_range)

  def build(self, input_shape):
    width = tf.TensorShape(input_shape)[-1]
    if width is None:
      raise ValueError(f"Projection needs a known input width, got input shape {input_shape}")
    self.kernel = self.add_weight("kernel", shape=[int(width), self.units],
                                  initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range))
    self.bias = self.add_weight("bias", shape=[self.units], initializer="zeros") if self.use_bias else None
    super().build(input_shape)

  def call(self, inputs):
    # One 2-D matmul over all positions. (tf.einsum("...i,ij->...j") took ~1 s per call on a [32, 64, 312] batch on
    # CPU, most of a TinyBERT step.)
    shape = tf.shape(inputs)
    flat = tf.matmul(tf.reshape(inputs, [-1, shape[-1]]), self.kernel)
    outputs = tf.reshape(flat, tf.concat([shape[:-1], [self.units]], axis=0))
    return tf.nn.bias_add(outputs, self.bias) if self.use_bias else outputs

  def get_config(self):
    return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
            "initializer_range": self.initializer_range}

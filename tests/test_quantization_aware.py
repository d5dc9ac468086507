"""Tests for tf_distill.quantization_aware (int8 simulated in training) and the qat stage of a DistillRun.

The fake-quantised values are checked against TFLite's int8 arithmetic written out in numpy (scale, nudged zero
point, round half up), the moving-average ranges against the recurrence by hand; a tiny quantisation-aware run
keeps a qat epoch's student, checkpoints its ranges and exports float32 and full-int8 files.
"""

import json
import os
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill import quantization_aware as qa
from tf_distill.configs import (BertStudentConfig, BiLstmStudentConfig, DataConfig, DistillConfig, StudentConfig,
                                TrainConfig)
from tf_distill.export import run_export, tflite
from tf_distill.run import DistillRun
from tf_distill.schedules import parse_stages, qat_start_epoch
from tf_distill.students.bilstm import STEP_POINTS, BidirectionalLstm, BiLstmClassifier, BiLstmConfig
from tf_distill.training import load_data

import tiny


def numpy_fake_quant(x, low, high, levels=256, narrow=False):
  """TensorFlow's FakeQuantWithMinMaxVars by hand: [low, high] nudged so that 0 is a level, then
  floor((clamp(x) - min) / scale + 0.5) * scale + min."""
  quant_min, quant_max = (1.0 if narrow else 0.0), levels - 1.0
  scale = (high - low) / (quant_max - quant_min)
  zero_point = np.clip(np.round(quant_min - low / scale), quant_min, quant_max)
  nudged_min, nudged_max = (quant_min - zero_point) * scale, (quant_max - zero_point) * scale
  clamped = np.clip(x, nudged_min, nudged_max)
  return np.floor((clamped - nudged_min) / scale + 0.5) * scale + nudged_min


class WeightQuantizationTest(tf.test.TestCase):

  def test_per_channel_kernel_is_symmetric_int8_per_output_column(self):
    kernel = (np.random.default_rng(0).normal(size=[7, 5]) * np.array([1, 10, 0.1, 3, 0.01])).astype(np.float32)
    scale = np.abs(kernel).max(axis=0) / 127.0
    expected = np.clip(np.floor(kernel / scale + 0.5), -127, 127) * scale
    self.assertAllClose(qa.per_channel_weights(tf.constant(kernel)), expected, atol=1e-6, rtol=1e-5)
    # At most 255 distinct values per column, and the largest |w| is exact.
    got = qa.per_channel_weights(tf.constant(kernel)).numpy()
    self.assertAllClose(np.abs(got).max(axis=0), np.abs(kernel).max(axis=0), rtol=1e-5)

  def test_per_tensor_table(self):
    table = np.random.default_rng(1).normal(size=[11, 4]).astype(np.float32)
    scale = np.abs(table).max() / 127.0
    self.assertAllClose(qa.per_tensor_weights(tf.constant(table)), np.floor(table / scale + 0.5) * scale,
                        atol=1e-6, rtol=1e-5)

  def test_weights_get_their_gradient_straight_through(self):
    kernel = tf.Variable(np.random.default_rng(2).normal(size=[3, 4]).astype(np.float32))
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(qa.per_channel_weights(kernel) * tf.constant(np.arange(12.0).reshape(3, 4), tf.float32))
    self.assertAllClose(tape.gradient(loss, kernel), np.arange(12.0).reshape(3, 4))

  def test_fixed_range(self):
    x = np.random.default_rng(5).uniform(-0.2, 1.2, 200).astype(np.float32)  # no ties between two levels
    self.assertAllClose(qa.fixed_range(tf.constant(x), 0.0, 1.0), numpy_fake_quant(x, 0.0, 1.0), atol=1e-6)


class Int8RangesTest(tf.test.TestCase):

  def test_moving_average_ranges_and_fake_quantised_values(self):
    ranges = qa.Int8Ranges(momentum=0.9)
    ranges.simulated = True
    rng = np.random.default_rng(3)
    batches = [rng.normal(size=[4, 6]).astype(np.float32) * s + o for s, o in ((1, 0.5), (3, 2), (0.5, -4))]
    x = tf.constant(batches[0])
    self.assertAllEqual(ranges.quantize("p", x, training=False), batches[0])  # no range yet: unchanged
    low = high = None
    for batch in batches:
      out = ranges.quantize("p", tf.constant(batch), training=True).numpy()
      batch_low, batch_high = min(batch.min(), 0.0), max(batch.max(), 0.0)
      low = batch_low if low is None else 0.9 * low + 0.1 * batch_low
      high = batch_high if high is None else 0.9 * high + 0.1 * batch_high
      self.assertAllClose(out, numpy_fake_quant(batch, low, high), atol=1e-5)
    low_var, high_var, count = ranges._variables("p")  # pylint: disable=protected-access
    self.assertAllClose([low_var.numpy(), high_var.numpy(), count.numpy()], [low, high, 3.0], rtol=1e-6)
    # Evaluation reads the range and does not move it.
    probe = rng.uniform(-6, 6, 50).astype(np.float32)
    self.assertAllClose(ranges.quantize("p", tf.constant(probe), training=False), numpy_fake_quant(probe, low, high),
                        atol=1e-5)
    self.assertAllClose(high_var.numpy(), high)

  def test_activation_gradient_is_straight_through_inside_the_range_only(self):
    ranges = qa.Int8Ranges()
    ranges.simulated = True
    ranges.quantize("p", tf.constant([-1.0, 1.0]), training=True)  # range [-1, 1]
    x = tf.constant([-2.0, -0.5, 0.3, 0.9, 3.0])
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = tf.reduce_sum(ranges.quantize("p", x, training=False))
    self.assertAllClose(tape.gradient(y, x), [0.0, 1.0, 1.0, 1.0, 0.0])

  def test_bad_momentum(self):
    with self.assertRaisesRegex(ValueError, r"momentum must be in \[0, 1\), got 1.5"):
      qa.Int8Ranges(momentum=1.5)


def numpy_bilstm(layer, x, mask, point=None):
  """BidirectionalLstm's [h_forward_last; h_backward_first] by hand in float32. With `point(key, v)` (int8
  simulated): kernels per-channel int8, the input projection and each step's points through `point`, gates on
  TFLite's fixed LOGISTIC / TANH ranges. Returns (states, {key: [min, max] over the steps of each point})."""
  sigmoid, tanh = lambda z: 1.0 / (1.0 + np.exp(-z)), np.tanh
  quantised = point is not None
  if quantised:
    sigmoid_q, tanh_q = (lambda z: numpy_fake_quant(sigmoid(z), 0.0, 255 / 256)), (
        lambda z: numpy_fake_quant(tanh(z), -1.0, 127 / 128))
  else:
    point, sigmoid_q, tanh_q = (lambda key, v: v), sigmoid, tanh

  def weights(w):
    if not quantised:
      return w
    scale = np.abs(w).max(axis=0) / 127.0
    return np.clip(np.floor(w / scale + 0.5), -127, 127) * scale

  u, (batch, steps, _) = layer.units, x.shape
  kernel = np.concatenate([layer.forward_kernel.numpy(), layer.backward_kernel.numpy()], 1)
  bias = np.concatenate([layer.forward_bias.numpy(), layer.backward_bias.numpy()])
  projected = point("projected", x.reshape(batch * steps, -1) @ weights(kernel) + bias).reshape(batch, steps, 8 * u)
  extremes, last = {}, []
  for direction, order, part in (("forward", range(steps), slice(0, 4 * u)),
                                 ("backward", reversed(range(steps)), slice(4 * u, 8 * u))):
    recurrent = weights(getattr(layer, f"{direction}_recurrent_kernel").numpy())
    h = c = np.zeros([batch, u], np.float32)

    def at(name, v, direction=direction):
      key = f"{direction}_{name}"
      low, high = extremes.get(key, (0.0, 0.0))
      extremes[key] = (min(low, v.min()), max(high, v.max()))
      return point(key, v)

    for t in order:
      m = mask[:, t:t + 1].astype(np.float32)
      h, c = at("h_in", h), at("c_in", c)
      z = at("z", projected[:, t, part] + at("recurrent", h @ recurrent))
      i, f, g, o = sigmoid_q(z[:, :u]), sigmoid_q(z[:, u:2 * u]), tanh_q(z[:, 2 * u:3 * u]), sigmoid_q(z[:, 3 * u:])
      new_c = at("c", at("fc", f * c) + at("ig", i * g))
      new_h = at("h", o * tanh_q(new_c))
      h, c = at("h_out", m * new_h + (1 - m) * h), at("c_out", m * new_c + (1 - m) * c)
    last.append(h)
  return np.concatenate(last, 1), extremes


class BiLstmRecurrenceTest(tf.test.TestCase):
  """TFLite's full-int8 WHILE body quantises every op of the LSTM step; the simulation must too."""

  def test_training_batch_sets_step_ranges_over_all_steps_then_evaluation_quantises_every_point(self):
    rng = np.random.default_rng(7)
    layer = BidirectionalLstm(3, name="bilstm")
    x = rng.normal(size=[3, 5, 4]).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], np.int32)
    float_states = layer(tf.constant(x), mask=tf.constant(mask)).numpy()
    self.assertAllClose(float_states, numpy_bilstm(layer, x, mask)[0], atol=1e-5)
    layer.int8_ranges = qa.Int8Ranges(momentum=0.5)
    layer.int8_ranges.simulated = True
    # The first training batch: int8 kernels and gates, the input projection over this batch's range (set before
    # it is read); the step points have no range yet (they pass values unchanged) and each gets its extremes over
    # all steps and examples.
    first = lambda key, v: numpy_fake_quant(v, min(v.min(), 0), max(v.max(), 0)) if key == "projected" else v
    expected, extremes = numpy_bilstm(layer, x, mask, point=first)
    self.assertAllClose(layer(tf.constant(x), mask=tf.constant(mask), training=True), expected, atol=1e-5)
    self.assertEqual(sorted(extremes), sorted(f"{d}_{name}" for d in ("forward", "backward") for name in STEP_POINTS))
    ranges = {"projected": [v.numpy() for v in layer.int8_ranges._variables("projected")[:2]]}  # pylint: disable=protected-access
    for key, (low, high) in extremes.items():
      got_low, got_high, batches = layer.int8_ranges._variables(key)  # pylint: disable=protected-access
      self.assertAllClose([got_low.numpy(), got_high.numpy(), batches.numpy()], [low, high, 1.0], atol=1e-5,
                          msg=key)
      ranges[key] = (got_low.numpy(), got_high.numpy())
    # Evaluation: int8 at every point over those ranges, kernels per channel, gates on fixed ranges.
    simulated = layer(tf.constant(x), mask=tf.constant(mask), training=False).numpy()
    by_hand, _ = numpy_bilstm(layer, x, mask, point=lambda key, v: numpy_fake_quant(v, *ranges[key]))
    self.assertAllClose(simulated, by_hand, atol=1e-4)
    self.assertGreater(np.abs(simulated - float_states).max(), 1e-3)  # int8 noise that the float model lacks
    # A second training batch moves each range halfway (momentum 0.5) to its extremes over the steps.
    x2 = 2.0 * x
    layer(tf.constant(x2), mask=tf.constant(mask), training=True)
    # (the input projection's range moved before this batch read it)
    ranges["projected"] = [v.numpy() for v in layer.int8_ranges._variables("projected")[:2]]  # pylint: disable=protected-access
    _, extremes2 = numpy_bilstm(layer, x2, mask, point=lambda key, v: numpy_fake_quant(v, *ranges[key]))
    got_low, got_high, _ = layer.int8_ranges._variables("backward_c")  # pylint: disable=protected-access
    self.assertAllClose([got_low.numpy(), got_high.numpy()],
                        [(a + b) / 2 for a, b in zip(ranges["backward_c"], extremes2["backward_c"])], atol=1e-4)


class PrepareTest(tf.test.TestCase, parameterized.TestCase):

  def _models(self):
    bilstm = BiLstmClassifier(BiLstmConfig(vocab_size=len(tiny.VOCAB), embedding_size=16, lstm_units=8,
                                           hidden_units=8)).build_weights()
    return {"bert": tiny.tiny_classifier(seed=1), "bilstm": bilstm}

  @parameterized.named_parameters(("bert", "bert"), ("bilstm", "bilstm"))
  def test_prepared_model_computes_the_same_until_simulated(self, name):
    model = self._models()[name]
    features = tiny.random_features(6, 10, lengths=[10, 7, 3, 10, 2, 5], seed=4)
    before = model(features, training=False)["logits"].numpy()
    trainable = [v.numpy() for v in model.trainable_variables]
    qa.prepare(model)
    self.assertTrue(qa.is_prepared(model))
    self.assertAllEqual(model(features, training=False)["logits"], before)  # bit for bit: nothing simulated
    self.assertEqual(len(model.trainable_variables), len(trainable))  # the ranges are not trained
    self.assertTrue(qa.set_simulated(model, True))
    self.assertFalse(qa.set_simulated(model, True))  # no change the second time
    model(features, training=True)  # sets the ranges from this batch (dropout on)
    simulated = model(features, training=False)["logits"].numpy()
    self.assertNotAllClose(simulated, before, atol=1e-9)
    # int8 noise, not a new model (the tiny BiLSTM's logits are about 0.02, its recurrence quantised at every step)
    self.assertAllClose(simulated, before, atol=0.25 * np.abs(before).max() + 1e-3)

  def test_unprepared_model_cannot_simulate(self):
    with self.assertRaisesRegex(ValueError, r"int8 simulation needs a prepared model: call "
                                            r"tf_distill.quantization_aware.prepare\(model\) first"):
      qa.set_simulated(tiny.tiny_classifier(), True)


class QatStageTest(tf.test.TestCase):

  def test_stage_grammar(self):
    self.assertEqual(qat_start_epoch(parse_stages("joint:2,qat:1")), 2)
    self.assertIsNone(qat_start_epoch(parse_stages("intermediate:1,prediction:1")))
    with self.assertRaisesRegex(ValueError, r"qat must be the last stage .* e.g. joint:3,qat:1"):
      parse_stages("qat:1,joint:1")

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.data_config = DataConfig(task_name="csv", max_seq_length=16, data_dir=tiny.write_csv_task(
        tempfile.mkdtemp(prefix="tf_distill_qat_"), num_train=48, num_dev=8, num_test=16))
    cls.output_dir = os.path.join(tempfile.mkdtemp(prefix="tf_distill_qat_run_"), "qat")
    cls.qat_run = DistillRun(cls.data_config, TrainConfig(output_dir=cls.output_dir, train_batch_size=8,
                                                      learning_rate=1e-3, seed=3),
                         DistillConfig(teacher_model=cls.shared.path, stages="joint:1,qat:1"),
                         StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))
    cls.summary = cls.qat_run.train_and_evaluate()

  def test_the_run_keeps_a_qat_student_and_scores_it_both_ways(self):
    summary = self.summary
    self.assertEqual(summary["best_epoch"], 2)  # the qat epoch, whatever the float epoch scored
    for key in ("dev_accuracy", "test_accuracy", "dev_accuracy_int8_simulated", "test_accuracy_int8_simulated"):
      self.assertBetween(summary[key], 0.0, 1.0)
    with open(os.path.join(self.output_dir, "eval_results.json"), encoding="utf-8") as f:
      self.assertIn("test_accuracy_int8_simulated", json.load(f))
    # Validation shows only what it computes.
    self.assertEqual(sorted(k for k in summary["history"] if k.startswith("val_")), ["val_accuracy", "val_loss"])
    # The best checkpoint holds the ranges learned in the qat epoch (a max above 0 for every point).
    reader = tf.train.load_checkpoint(self.qat_run.run_dir.best_weights)
    maxima = [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if "int8_ranges" in name and "_max/" in name]
    self.assertGreater(len(maxima), 10)
    self.assertTrue(all(value > 0 for value in maxima))

  def test_the_export_is_the_float32_student(self):
    """saved_model_cli and float32.tflite match the Keras student (errors() is empty); full_int8 converts."""
    result = run_export.export_student(self.qat_run.run_dir, os.path.join(self.get_temp_dir(), "export"), "student",
                                       tflite=("float32", "full_int8"), representative_examples=16,
                                       max_accuracy_drop=100.0)
    self.assertEqual(result.errors(), [])
    self.assertAllClose(result.report["keras_accuracy"], self.summary["test_accuracy"])
    self.assertTrue(result.report["full_int8"]["path"])

  def test_bilstm_student_trains_quantisation_aware_and_exports(self):
    output_dir = os.path.join(self.get_temp_dir(), "bilstm_qat")
    run = DistillRun(self.data_config, TrainConfig(output_dir=output_dir, train_batch_size=8, learning_rate=1e-3),
                     DistillConfig(teacher_model=self.shared.path, stages="joint:1,qat:1", kd_loss="mse",
                                   temperature=1.0),
                     StudentConfig(type="bilstm", bilstm=BiLstmStudentConfig(embedding_size=16, lstm_units=8,
                                                                             hidden_units=8)))
    summary = run.train_and_evaluate()
    self.assertEqual(summary["best_epoch"], 2)
    self.assertIn("test_accuracy_int8_simulated", summary)
    result = run_export.export_student(run.run_dir, os.path.join(self.get_temp_dir(), "bilstm_export"), "student",
                                       tflite=("float32", "full_int8"), representative_examples=16,
                                       max_accuracy_drop=100.0)
    self.assertEqual(result.errors(), [])
    # float_ops reads the loop body too: the gates' LOGISTIC and TANH exist only there, float32 in the float file.
    self.assertContainsSubset(["LOGISTIC", "TANH", "WHILE"], tflite.float_ops(result.report["float32"]["path"]))
    # Only the loop and the state it carries stay float32 in full int8: the body's ops are int8, which is why the
    # simulation quantises every step.
    self.assertEqual(result.report["full_int8"]["float_ops"], ["CONCATENATION", "WHILE", "ZEROS_LIKE"])

  def _continued(self, student):
    return DistillRun(self.data_config, TrainConfig(output_dir=os.path.join(self.get_temp_dir(), "continued")),
                      DistillConfig(teacher_model=self.shared.path, stages="qat:1"), student)

  def test_init_run_starts_from_the_runs_best_student(self):
    run = self._continued(StudentConfig(bert=BertStudentConfig(num_hidden_layers=1), init_run=self.output_dir))
    self.assertEqual(run.first_selected_epoch(), 0)
    student = run.build_model(load_data(run.data_config)).student
    best = self.qat_run.run_dir.load_model()
    self.assertEqual(len(student.trainable_variables), len(best.trainable_variables))
    for ours, theirs in zip(student.trainable_variables, best.trainable_variables):
      self.assertAllEqual(ours, theirs)

  def test_init_run_of_another_shape_or_with_init_layers_is_refused(self):
    with self.assertRaisesRegex(ValueError, r"--student_init_run=.* holds a student of another shape "
                                            r"\(num_hidden_layers: 1 there, 2 here\); pass the student flags"):
      run = self._continued(StudentConfig(bert=BertStudentConfig(num_hidden_layers=2), init_run=self.output_dir))
      run.build_model(load_data(run.data_config))
    with self.assertRaisesRegex(ValueError, r"--student_init_run=.* and --student_init_from_layers=1 both "
                                            r"initialise the student; pass one"):
      StudentConfig(bert=BertStudentConfig(num_hidden_layers=1, init_from_layers=(1,)),
                    init_run=self.output_dir).validate()
    with self.assertRaisesRegex(ValueError, r"--student_init_run=.* is this run's --output_dir; a continued run needs "
                                            r"a directory of its own"):
      DistillRun(self.data_config, TrainConfig(output_dir=self.output_dir + "/"),
                 DistillConfig(teacher_model=self.shared.path, stages="qat:1"),
                 StudentConfig(bert=BertStudentConfig(num_hidden_layers=1), init_run=self.output_dir))

  def test_refused_with_mixed_precision(self):
    with self.assertRaisesRegex(ValueError, r"--stages=joint:1,qat:1 simulates int8 on float32 activations; "
                                            r"--mixed_precision=mixed_bfloat16 cannot go with it"):
      DistillRun(DataConfig(task_name="csv", data_dir="unused", max_seq_length=16),
                 TrainConfig(output_dir=os.path.join(self.get_temp_dir(), "mixed"), mixed_precision="mixed_bfloat16"),
                 DistillConfig(teacher_model=tiny.shared_teacher().path, stages="joint:1,qat:1"),
                 StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))


if __name__ == "__main__":
  tf.test.main()

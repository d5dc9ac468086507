"""Tests for tf_distill.configs: every validate() error names the bad value, and save_json round-trips."""

import dataclasses
import json
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import tensorflow as tf

from tf_distill.configs import (BertStudentConfig, BiLstmStudentConfig, DataConfig, DistillConfig, StudentConfig,
                                TrainConfig, save_json)


class ConfigValidateTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("data", DataConfig()),
      ("csv_data", DataConfig(task_name="csv", data_dir="/data", labels=("a", "b"))),
      ("train", TrainConfig()),
      ("student", StudentConfig()),
      ("student_init", StudentConfig(bert=BertStudentConfig(num_hidden_layers=2, init_from_layers=(2, 5)))),
      ("student_width", StudentConfig(bert=BertStudentConfig(hidden_size=128, num_attention_heads=2,
                                                             intermediate_size=512))),
      ("student_bilstm", StudentConfig(type="bilstm", bilstm=BiLstmStudentConfig(lstm_units=8))),
      ("distill", DistillConfig(teacher_model="export/teacher")),
      ("distill_alpha_0_no_teacher", DistillConfig(alpha=0.0)),
      ("distill_alpha_bounds", DistillConfig(teacher_model="t", alpha=1.0, temperature=0.5)),
  )
  def test_valid_configs_return_themselves(self, config):
    self.assertIs(config.validate(), config)

  @parameterized.named_parameters(
      ("max_seq_length", DataConfig(max_seq_length=1),
       r"max_seq_length must be >= 2 \(\[CLS\] and \[SEP\]\), got 1"),
      ("csv_without_data_dir", DataConfig(task_name="csv"),
       r"task_name 'csv' reads train/dev/test files from --data_dir; pass --data_dir"),
      ("duplicate_labels", DataConfig(labels=("pos", "neg", "pos")),
       r"labels must be distinct, got \['pos', 'neg', 'pos'\]"),
  )
  def test_data_config_errors(self, config, message):
    with self.assertRaisesRegex(ValueError, message):
      config.validate()

  @parameterized.named_parameters(
      ("batch_size", dict(train_batch_size=0), r"train_batch_size must be > 0, got 0"),
      ("eval_batch_size", dict(eval_batch_size=-4), r"eval_batch_size must be > 0, got -4"),
      ("learning_rate", dict(learning_rate=0.0), r"learning_rate must be > 0, got 0.0"),
      ("epochs", dict(num_train_epochs=0), r"num_train_epochs must be > 0, got 0"),
      ("warmup", dict(warmup_proportion=1.0), r"warmup_proportion must be in \[0, 1\), got 1.0"),
      ("negative_warmup", dict(warmup_proportion=-0.1), r"warmup_proportion must be in \[0, 1\), got -0.1"),
      ("weight_decay", dict(weight_decay=-0.01), r"weight_decay must be a finite number >= 0, got -0.01"),
      ("learning_rate_nan", dict(learning_rate=float("nan")), r"learning_rate must be a finite number, got nan"),
      ("max_train_examples", dict(max_train_examples=0), r"max_train_examples must be >= 1 when set, got 0"),
  )
  def test_train_config_errors(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      TrainConfig(**kwargs).validate()

  @parameterized.named_parameters(
      ("layers", dict(num_hidden_layers=0), r"num_hidden_layers must be > 0, got 0"),
      ("hidden_size", dict(hidden_size=0), r"hidden_size must be > 0, got 0"),
      ("heads", dict(num_attention_heads=-1), r"num_attention_heads must be > 0, got -1"),
      ("intermediate_size", dict(intermediate_size=0), r"intermediate_size must be > 0, got 0"),
      ("init_layers_too_few", dict(num_hidden_layers=3, init_from_layers=(2, 5)),
       r"student_init_from_layers names 2 teacher layers \(2,5\) but the student has 3 layers; give one teacher "
       "layer per student layer"),
      ("init_layers_too_many", dict(num_hidden_layers=1, init_from_layers=(1, 3)),
       r"names 2 teacher layers \(1,3\) but the student has 1 layers"),
      ("init_layer_0", dict(num_hidden_layers=2, init_from_layers=(0, 2)),
       r"student_init_from_layers=0,2: teacher layers are numbered from 1 \(0 is the embeddings"),
  )
  def test_student_config_errors(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      StudentConfig(bert=BertStudentConfig(**kwargs)).validate()

  @parameterized.named_parameters(
      ("type", StudentConfig(type="cnn"), r"student_type must be one of \['bert', 'bilstm'\], got 'cnn'"),
      ("bilstm_units", StudentConfig(type="bilstm", bilstm=BiLstmStudentConfig(lstm_units=0)),
       r"lstm_units must be > 0, got 0"),
  )
  def test_student_type_errors(self, config, message):
    with self.assertRaisesRegex(ValueError, message):
      config.validate()

  @parameterized.named_parameters(
      ("alpha_above_1", dict(alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
      ("alpha_negative", dict(alpha=-0.5), r"alpha must be in \[0, 1\], got -0.5"),
      ("temperature_0", dict(temperature=0.0), r"temperature must be > 0, got 0.0"),
      ("temperature_negative", dict(temperature=-2.0), r"temperature must be > 0, got -2.0"),
      ("no_teacher", dict(teacher_model="", alpha=0.5),
       r"alpha=0.5 needs a teacher: pass --teacher_model=DIR \(a teacher SavedModel\)$"),
  )
  def test_distill_config_errors(self, kwargs, message):
    kwargs = {"teacher_model": "export/teacher", **kwargs}
    with self.assertRaisesRegex(ValueError, message):
      DistillConfig(**kwargs).validate()

  @parameterized.named_parameters(
      # The two misconfigurations that used to distil nothing silently / end in a traceback.
      ("alpha_schedule", dict(alpha_schedule="linear:0.5"),
       r"--alpha=0 trains on hard labels only \(the teacher's logits are not read\), but "
       r"--alpha_schedule=linear:0.5 would raise alpha during training; to distil with a schedule start above 0"),
      ("temperature_schedule", dict(temperature_schedule="flsw:1:1"),
       r"--temperature_schedule=flsw:1:1 shapes the distillation term, but --alpha=0 has none \(hard labels only\); "
       r"drop --temperature_schedule or set --alpha above 0"),
      ("linear_temperature", dict(temperature_schedule="linear:1"), r"--temperature_schedule=linear:1 shapes"),
      ("probability_shift", dict(probability_shift=True), r"--probability_shift=True shapes the distillation term"),
      ("teacher_cache", dict(teacher_cache="auto"),
       r"--teacher_cache=auto caches the teacher's outputs, but this run reads none"),
  )
  def test_alpha_0_refuses_what_shapes_a_distillation_term(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      DistillConfig(teacher_model="t", alpha=0.0, **kwargs).validate()

  def test_alpha_0_keeps_what_it_can_use(self):
    # A cache still serves intermediate matches; a schedule is fine once alpha starts above 0.
    for config in (DistillConfig(teacher_model="t", alpha=0.0, teacher_cache="auto", intermediate_matches="hidden_mse"),
                   DistillConfig(teacher_model="t", alpha=0.01, alpha_schedule="linear:0.5",
                                 temperature_schedule="flsw:1:1")):
      self.assertIs(config.validate(), config)

  def test_mse_needs_temperature_1(self):
    self.assertIs(DistillConfig(teacher_model="t", kd_loss="mse", temperature=1.0).validate().kd_loss, "mse")
    with self.assertRaisesRegex(ValueError, r"mse.*temperature.*2.0"):
      DistillConfig(teacher_model="t", kd_loss="mse", temperature=2.0).validate()

  def test_configs_are_frozen(self):
    with self.assertRaises(dataclasses.FrozenInstanceError):
      DistillConfig().alpha = 0.1  # pytype: disable=not-writable

  def test_save_json_writes_every_field(self):
    path = os.path.join(self.get_temp_dir(), "run", "config.json")
    data = DataConfig(task_name="csv", data_dir="/d", labels=("neg", "pos"))
    distill = DistillConfig(teacher_model="export/teacher", temperature=4.0, alpha=0.7, kd_loss="kl")
    save_json(path, data=data, distill=distill)
    with open(path, encoding="utf-8") as f:
      saved = json.load(f)
    self.assertEqual(sorted(saved), ["data", "distill"])
    self.assertEqual(DistillConfig(**saved["distill"]), distill)
    self.assertEqual({k: saved["distill"][k] for k in ("teacher_model", "temperature", "alpha", "kd_loss")},
                     {"teacher_model": "export/teacher", "temperature": 4.0, "alpha": 0.7, "kd_loss": "kl"})
    self.assertEqual(saved["data"]["labels"], ["neg", "pos"])
    self.assertEqual(DataConfig(**{**saved["data"], "labels": tuple(saved["data"]["labels"])}), data)


if __name__ == "__main__":
  tf.test.main()

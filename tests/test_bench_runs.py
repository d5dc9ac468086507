"""Tests for bench/bench_runs.py: a finished teacher is reused only when its recorded config agrees with the flags;
a preset's own settings and its no-distillation twin."""

import json
import os
import sys

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

from tf_distill.configs import DataConfig, TrainConfig
from tf_distill.run_dir import RunDir

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import bench_runs  # pylint: disable=wrong-import-position
import qat  # pylint: disable=wrong-import-position


class FineTunedTeacherTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    root = self.get_temp_dir()
    self.run_dir = os.path.join(root, "teacher")
    self.export_dir = os.path.join(root, "export")
    RunDir(self.run_dir).write_config(
        data=DataConfig(task_name="rotten_tomatoes", max_seq_length=64),
        train=TrainConfig(output_dir=self.run_dir, seed=1, num_train_epochs=1, learning_rate=5e-5))
    with open(os.path.join(self.run_dir, "eval_results.json"), "w", encoding="utf-8") as f:
      json.dump({"test_accuracy": 0.8}, f)
    os.makedirs(os.path.join(self.export_dir, "teacher"))

  def test_reuses_a_run_trained_as_asked(self):
    flags = ["--task_name=rotten_tomatoes", "--seed=1", "--num_train_epochs=1", "--learning_rate=5e-5",
             "--max_seq_length=64", "--max_train_examples=", "--flagfile=flags/teacher.flags"]
    self.assertEqual(bench_runs.fine_tuned_teacher(self.run_dir, self.export_dir, flags),
                     os.path.join(self.export_dir, "teacher"))

  def test_refuses_a_run_trained_otherwise(self):
    for flag, recorded in (("--seed=2", "--seed=1"), ("--num_train_epochs=3", "--num_train_epochs=1"),
                           ("--task_name=bbc_news", "--task_name=rotten_tomatoes"),
                           ("--max_train_examples=2000", "--max_train_examples=None")):
      with self.subTest(flag=flag):
        with self.assertRaisesRegex(SystemExit, f"{self.run_dir} was trained with {recorded}, not "
                                                f"{flag.split('=')[1]}; delete it or use another --work_dir"):
          bench_runs.fine_tuned_teacher(self.run_dir, self.export_dir, ["--task_name=rotten_tomatoes", flag])


class PresetTwinTest(tf.test.TestCase):

  def _preset(self, text):
    path = os.path.join(self.get_temp_dir(), "preset.flags")
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)
    return path

  def test_setting_is_the_files_own_last_value(self):
    preset = self._preset("# --stages=joint:9 in a comment\n--flagfile=flags/distill.flags\n--stages=intermediate:2\n"
                          "  --stages=intermediate:3,prediction:4\n--stages_other=1\n")
    self.assertEqual(bench_runs.preset_setting(preset, "stages"), "intermediate:3,prediction:4")
    self.assertIsNone(bench_runs.preset_setting(preset, "alpha"))
    self.assertEqual(bench_runs.stage_epochs(preset), 7)

  def test_twin_trains_the_stages_epochs_on_labels(self):
    staged = self._preset("--stages=intermediate:2,prediction:2\n--augmentation=tinybert:n=10\n")
    self.assertEqual(bench_runs.twin_flags(staged)[-1], "--num_train_epochs=4")
    self.assertEqual(bench_runs.twin_flags(self._preset("--alpha=1\n")), list(bench_runs.NO_DISTILLATION))
    self.assertIn("--alpha=0", bench_runs.NO_DISTILLATION)
    self.assertIn("--augmentation=", bench_runs.NO_DISTILLATION)


class QatSummaryTest(tf.test.TestCase):

  def test_summary_row_from_a_tables_per_seed_line(self):
    path = os.path.join(self.get_temp_dir(), "QAT.md")
    with open(path, "w", encoding="utf-8") as f:
      f.write("`python3 bench/qat.py ...`\n\nbbc_news, bilstm, seeds 1,2; drop: ...\n\n| table |\n\n"
              "Per seed (float, dynamic int8, PTQ full int8, QAT float, QAT full int8): "
              "seed 1: 0.8000, 0.7900, 0.7950, 0.8100, 0.8060; seed 2: 0.9000, 0.9000, 0.8800, 0.9100, 0.8930\n")
    row = qat.summarize([path]).splitlines()[-1]
    # By hand: float 0.85 ± 0.0707, QAT 0.8495 ± 0.0615 (0.087 / sqrt 2); PTQ drops 0.50 and 2.00 points (mean 1.25, sd 1.0607); QAT drops -0.60, +0.70
    # (mean 0.05, sd 0.9192); the worst QAT seed is 0.70 points below its float student: above the 0.5 bar.
    self.assertEqual(row, f"| bbc_news, bilstm, seeds 1,2 ({path}) | 0.8500 ± 0.0707 | 0.8375 ± 0.0601 "
                          "(+1.25 ± 1.06) | 0.8495 ± 0.0615 (+0.05 ± 0.92) | +0.70 | no |")

  def test_a_table_without_per_seed_line_is_refused(self):
    path = os.path.join(self.get_temp_dir(), "empty.md")
    with open(path, "w", encoding="utf-8") as f:
      f.write("a\nb\nc; d\n")
    with self.assertRaisesRegex(SystemExit, "has no per-seed line"):
      qat.summarize([path])

  def test_summarize_refuses_flags_it_would_ignore(self):
    for argv in (["--summarize=a.md", "--seeds=1"], ["--summarize=a.md", "--", "--augmentation="]):
      with self.assertRaises(SystemExit) as raised:
        qat.main(argv)
      self.assertEqual(raised.exception.code, 2, argv)  # argparse's usage error, before any table is read


if __name__ == "__main__":
  tf.test.main()

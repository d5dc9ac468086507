"""diagnostics: the [UNK] share counted by hand, and the teacher-vs-no-distillation dev check."""

import os

import numpy as np
import tensorflow as tf

from tf_distill import diagnostics
from tf_distill import report, tasks
from tests import tiny

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "film"]  # [UNK] = 1, specials 0, 2, 3, 4


def write_vocab(directory):
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, "vocab.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(VOCAB) + "\n")
  return path


class UnkTest(tf.test.TestCase):

  def features(self, rows):
    ids = np.array(rows, np.int32)
    return {"input_ids": ids, "input_mask": (ids > 0).astype(np.int32)}

  def test_fraction_counts_only_real_non_special_tokens(self):
    # text tokens: [5, 1, 1] and [1, 6] -> 3 of 5 are [UNK]; [CLS]/[SEP]/[PAD] and a masked-out [UNK] not counted
    ids = np.array([[2, 5, 1, 1, 3, 0], [2, 1, 6, 3, 1, 1]], np.int32)
    mask = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]], np.int32)
    self.assertAllClose(diagnostics.unk_fraction(ids, mask, 1, [0, 2, 3, 4]), 3 / 5)
    self.assertEqual(diagnostics.unk_fraction(ids[:, :1], mask[:, :1], 1, [0, 2, 3, 4]), 0.0)

  def test_warns_only_above_half(self):
    vocab = write_vocab(self.get_temp_dir())
    self.assertIsNone(diagnostics.unk_warning(self.features([[2, 5, 1, 3], [2, 6, 1, 3]]), vocab))  # 2 of 4
    line = diagnostics.unk_warning(self.features([[2, 1, 1, 3], [2, 6, 1, 3]]), vocab)  # 3 of 4
    self.assertIn("75% of the test split's tokens are [UNK]", line)
    self.assertIn("vocab does", line)


class TeacherCheckTest(tf.test.TestCase):

  def test_warns_when_the_teacher_does_not_beat_the_student(self):
    self.assertIsNone(diagnostics.teacher_warning(0.81, 0.80, "baseline"))
    for student in (0.81, 0.85):
      line = diagnostics.teacher_warning(0.81, student, "baseline")
      self.assertIn(f"0.8100 does not beat baseline's {student:.4f}", line)
      self.assertIn("3 epochs", line)

  def test_report_refuses_an_unknown_no_distillation_model(self):
    teacher_dir = self.get_temp_dir()
    write_vocab(os.path.join(teacher_dir, "assets.extra"))
    features = {"input_ids": np.array([[2, 5, 3]]), "input_mask": np.ones((1, 3), np.int32)}
    split = report.TestSplit(features, tasks.task_type_of("csv"), ["neg", "pos"])
    self.assertEqual(report.set_up_warnings(teacher_dir, split, {"a": "x"}, None), [])
    with self.assertRaisesRegex(ValueError, r"--no_distillation_model=b is not a name in --models \(a\)"):
      report.set_up_warnings(teacher_dir, split, {"a": "x"}, "b")

  def test_report_warns_when_the_student_is_the_teacher_itself(self):
    """The tiny teacher exported as a student: equal dev accuracy, so the teacher does not beat it."""
    teacher = tiny.shared_teacher()
    data_dir = tiny.write_csv_task(os.path.join(self.get_temp_dir(), "data"))
    split = report.test_split(teacher.path, data_dir, None)
    lines = report.set_up_warnings(teacher.path, split, {"twin": teacher.serving_path}, "twin", data_dir)
    self.assertLen(lines, 1)
    self.assertRegex(lines[0], r"dev accuracy (0\.\d{4}) does not beat twin's \1 ")


if __name__ == "__main__":
  tf.test.main()

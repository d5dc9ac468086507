"""The Python API example (the block after `<!-- api-example -->` in docs/api.md), executed as written on a tiny CSV
task.

Only the default pretrained model is pointed at a tiny one (`pretrained.default_pretrained_dir`), so the example runs
in seconds; everything else -- configs, runs, exports, parity checks -- is the real code path.
"""

import contextlib
import io
import os
import re
from unittest import mock

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf

from tf_distill import pretrained
from tf_distill.data.processors import CsvProcessor
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.run_dir import RunDir

import tiny


def readme_example() -> str:
  with open(os.path.join(tiny.REPO_ROOT, "docs", "api.md"), encoding="utf-8") as f:
    text = f.read()
  match = re.search(r"<!-- api-example -->\n```python\n(.*?)```", text, re.S)
  if not match:
    raise AssertionError("docs/api.md has no ```python block after <!-- api-example -->")
  return match.group(1)


class ReadmeExampleTest(tf.test.TestCase):

  def test_the_example_distils_and_exports(self):
    work = self.get_temp_dir()
    tiny.write_csv_task(os.path.join(work, "my_task"))
    # Six layers, as all-MiniLM-L6-v2 has, so that the example's init_from_layers=(2, 5) exists.
    pretrained_dir = tiny.write_pretrained_dir(os.path.join(work, "pretrained"),
                                               tiny.tiny_config(max_position_embeddings=64, num_hidden_layers=6))
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
      with mock.patch.object(pretrained, "default_pretrained_dir", return_value=pretrained_dir), \
          contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "docs/api.md:api-example", "exec"), {})  # pylint: disable=exec-used
    finally:
      os.chdir(cwd)
    out = printed.getvalue()
    # The student's test accuracy it printed is the one its best weights give on the test file, recomputed here.
    reported = float(re.search(r"student test accuracy (\d\.\d{4})", out).group(1))
    model = RunDir(os.path.join(work, "runs/student")).load_model()
    examples = CsvProcessor("text", "label", labels=list(tiny.LABELS)).get_test_examples(os.path.join(work, "my_task"))
    features = WordPieceTokenizer(os.path.join(work, "runs/student/vocab.txt")).encode(examples, 64,
                                                                                        list(tiny.LABELS))
    logits = model({k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False)["logits"]
    self.assertAlmostEqual(reported, float(np.mean(np.argmax(logits, -1) == features["label_ids"])), places=4)
    self.assertEqual(model.config.num_hidden_layers, 2)
    for path in ("export/teacher/1/saved_model.pb", "export/student/1/saved_model.pb",
                 "export/student_tflite/1/float32.tflite", "export/student_tflite/1/int8.tflite"):
      self.assertTrue(os.path.isfile(os.path.join(work, path)), path)
    self.assertIn("float32", out)


if __name__ == "__main__":
  tf.test.main()

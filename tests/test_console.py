"""Tests for tf_distill/console.py: a quiet console by default, everything with absl's --verbosity."""

import logging
import os
import re
import subprocess
import sys
from unittest import mock

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import logging as absl_logging
from absl.testing import parameterized
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_distill import console
from tf_distill.data import tfds_builders

import tiny

# An op, so TensorFlow initialises its devices (where the cuInit probe happens), then one warning of our own.
PROGRAM = ("import tf_distill, warnings, tensorflow as tf; print(int(tf.constant(1) + 1)); "
           "warnings.warn('our own warning')")
CPP_INFO_LINE = re.compile(r"^I\d{4} ", re.MULTILINE)


def run_program(*args):
  """Runs PROGRAM in a fresh Python with the user's environment minus the variables the console sets."""
  env = {k: v for k, v in tiny.subprocess_env().items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLED_DEVICE_TYPES", "CUDA_VISIBLE_DEVICES")}
  return subprocess.run([sys.executable, "-c", PROGRAM, *args], env=env, capture_output=True, text=True,
                        timeout=300, check=True)


# TFLite's every-run lines, one real C++ error, TensorFlow's Interpreter deprecation and a warning of our own, inside
# console.quiet_tflite at the verbosity given as the argument.
TFLITE_PROGRAM = """
import os, sys, warnings
import tf_distill
from tf_distill import console
console.configure(int(sys.argv[1]))
with console.quiet_tflite():
  os.write(2, b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32\\n")
  os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
  os.write(2, b"E0000 00:00:1796415553.901711   22665 util.cc:131] oneDNN supports DT_INT64 only on platforms with "
              b"AVX-512. Falling back to the default Eigen-based implementation if present.\\n")
  os.write(2, b"E0000 00:00:1796415553.901711   22665 kernel.cc:7] a real error\\n")
  warnings.warn("    Warning: tf.lite.Interpreter is deprecated and is scheduled for deletion in TF 2.20.")
  warnings.warn("our own warning")
print("done")
"""


class ConsoleSubprocessTest(tf.test.TestCase):

  def test_tflite_noise_is_dropped_when_quiet(self):
    for verbosity, shown in ((-1, False), (0, True)):
      result = subprocess.run([sys.executable, "-c", TFLITE_PROGRAM, str(verbosity)], env=tiny.subprocess_env(),
                              capture_output=True, text=True, timeout=300, check=True)
      self.assertEqual(result.stdout, "done\n")
      self.assertIn("kernel.cc:7] a real error", result.stderr)
      self.assertIn("UserWarning: our own warning", result.stderr)
      for noise in tiny.TFLITE_NOISE:
        self.assertEqual(noise in result.stderr, shown, (verbosity, noise, result.stderr))

  def test_default_is_quiet_but_keeps_our_warnings(self):
    result = run_program()
    self.assertEqual(result.stdout, "2\n")
    self.assertNotIn("cuInit", result.stderr)
    self.assertNotIn("cudart_stub", result.stderr)
    self.assertNotIn("absl::InitializeLog", result.stderr)
    self.assertNotRegex(result.stderr, CPP_INFO_LINE)
    self.assertNotIn("INFO", result.stderr)
    self.assertIn("UserWarning: our own warning", result.stderr)

  def test_verbosity_shows_tensorflow_logs(self):
    for args in (["-v", "1"], ["--verbosity=0"]):
      result = run_program(*args)
      self.assertEqual(result.stdout, "2\n")
      self.assertRegex(result.stderr, CPP_INFO_LINE, args)
      if not console.has_gpu_device():
        self.assertIn("failed call to cuInit", result.stderr, args)
      self.assertIn("UserWarning: our own warning", result.stderr)


class ConsoleTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("absent", ["--task_name=csv"], None),
      ("long_equals", ["--verbosity=1"], 1),
      ("long_space", ["--verbosity", "0"], 0),
      ("short_space", ["-v", "2"], 2),
      ("short_equals", ["-v=-1"], -1),
      ("last_wins", ["-v", "1", "--verbosity=0"], 0),
      ("after_double_dash", ["--", "-v", "1"], None),
      ("not_a_number", ["--verbosity=loud"], None),
      ("other_flag", ["--verbose_name=3", "v", "1"], None),
  )
  def test_requested_verbosity(self, argv, expected):
    self.assertEqual(console.requested_verbosity(argv), expected)

  def test_kept_import_lines(self):
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            "I0000 00:00:1796286811.031798    3146 cudart_stub.cc:31] Could not find cuda drivers\n"
            "/x.py:3: UserWarning: ours\n"
            "W0000 00:00:1796286811.031798    3146 a.cc:1] a warning\n"
            "E0000 00:00:1796286814.613561    3146 cuda_platform.cc:52] an error\n"
            "Traceback (most recent call last):\n")
    self.assertEqual(console.kept_import_lines(text, 2),
                     "/x.py:3: UserWarning: ours\n"
                     "E0000 00:00:1796286814.613561    3146 cuda_platform.cc:52] an error\n"
                     "Traceback (most recent call last):\n")
    self.assertEqual(console.kept_import_lines(text, 1).count("W0000"), 1)
    self.assertNotIn("E0000", console.kept_import_lines(text, 3))

  def test_configure_sets_python_log_levels(self):
    saved = absl_logging.get_verbosity()
    self.addCleanup(console.configure, saved)
    console.configure(console.QUIET)
    self.assertEqual(absl_logging.get_verbosity(), absl_logging.WARNING)
    self.assertEqual(logging.getLogger("tensorflow").level, logging.WARNING)
    self.assertFalse(console.shows_info())
    console.configure(1)
    self.assertEqual(absl_logging.get_verbosity(), absl_logging.DEBUG)
    self.assertEqual(logging.getLogger("tensorflow").level, logging.DEBUG)
    self.assertTrue(console.shows_info())

  def test_tfds_progress_bars_follow_verbosity(self):
    class FakeBuilder:
      def __init__(self, data_dir):
        del data_dir

      def download_and_prepare(self, download_config):
        del download_config

    self.addCleanup(console.configure, absl_logging.get_verbosity())
    for level, shown in ((console.QUIET, False), (0, True)):
      console.configure(level)
      with mock.patch.object(tfds, "display_progress_bar") as display:
        tfds_builders.prepare(FakeBuilder)
      display.assert_called_once_with(shown)

  def test_keras_progress_bar_only_on_a_terminal(self):
    for isatty, expected in ((True, 1), (False, 2)):
      with mock.patch.object(sys.stdout, "isatty", return_value=isatty):
        self.assertEqual(console.keras_verbose(), expected)

  def test_cpu_only_machine_skips_the_gpu_probe(self):
    if console.has_gpu_device():
      self.skipTest("this machine has a GPU")
    with mock.patch.dict(os.environ, {}, clear=True), mock.patch.object(console, "_verbosity", None):
      console.before_tensorflow()
      self.assertEqual(os.environ["TF_ENABLED_DEVICE_TYPES"], "CPU")
      self.assertEqual(os.environ["TF_CPP_MIN_LOG_LEVEL"], "2")
    with mock.patch.dict(os.environ, {"TF_CPP_MIN_LOG_LEVEL": "2"}, clear=True), \
        mock.patch.object(console, "_verbosity", 0):
      console.before_tensorflow()  # an explicit --verbosity wins over the environment
      self.assertNotIn("TF_ENABLED_DEVICE_TYPES", os.environ)
      self.assertEqual(os.environ["TF_CPP_MIN_LOG_LEVEL"], "0")


if __name__ == "__main__":
  tf.test.main()

"""pytest setup for the tests directory."""

import os
import sys

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `import tiny` from every test module


def pytest_collection_modifyitems(config, items):
  """Drops `tf.test.TestCase.test_session`: a deprecated context manager, not a test, that pytest collects and
  reports as skipped in every class ("Not a test.")."""
  del config
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  items[:] = [item for item in items
              if getattr(getattr(item, "obj", None), "__func__", None) is not tf.test.TestCase.test_session]

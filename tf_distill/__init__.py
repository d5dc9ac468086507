"""tf_distill: distil fine-tuned BERT classifiers into small, fast TensorFlow students.

transformers' TF BERT code and this package use Keras 2 (`tf_keras`). The environment variable below must be set
before TensorFlow is first imported, so importing `tf_distill` first is enough.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

"""tf_distill: distil fine-tuned BERT classifiers into small, fast TensorFlow students.

transformers' TF BERT code and this package use Keras 2 (`tf_keras`). Importing `tf_distill` sets the environment
TensorFlow reads when it loads (`TF_USE_LEGACY_KERAS`, and the console's log level: `tf_distill.console`, which peeks
at `sys.argv` for absl's `--verbosity`/`-v` since flags are parsed only later), then imports TensorFlow quietly.
So import `tf_distill` before TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tf_distill import console  # pylint: disable=wrong-import-position

console.before_tensorflow()
console.import_tensorflow()

__version__ = "0.1.0"

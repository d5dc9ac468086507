"""Checks an export before it ships: signatures, dtypes and shapes, `saved_model_cli run`, in-graph tokenisation
and the parity of the sibling TFLite files.

    tf_distill verify-export export/student          # the latest version
    tf_distill verify-export export/student/3 --text="a great movie" --text="a dull plot"

Prints a checklist and exits 0 when every check passes; otherwise exits 1 after one `error: <check>: <problem>`
line per failure on stderr. The checks are described in tf_distill/export/verify.py.
"""

import sys

from absl import app, flags

from tf_distill import console
from tf_distill.cli import common
from tf_distill.export import parity

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_multi_string("text", None, "A sample sentence (repeat the flag for more). Default: built-in "
                            "sentences with punctuation, accents, unknown words and one longer than max_seq_length.")
  flags.DEFINE_bool("saved_model_cli", True, "Run `saved_model_cli run` on the samples (a few seconds each).")
  flags.DEFINE_float("atol", parity.ATOL, "Largest |logit| difference allowed between a float32 variant "
                     "(saved_model_cli run, serving_text, a float32 .tflite file) and the loaded SavedModel.")
  flags.DEFINE_alias("atol_tflite", "atol")
  common.define_max_accuracy_drop_flag()


def main(argv) -> None:
  from tf_distill.export.verify import verify_export  # pylint: disable=import-outside-toplevel
  if len(argv) != 2:
    raise ValueError(f"verify-export takes one export directory (e.g. export/student or export/student/1), got "
                     f"{argv[1:]}")
  if FLAGS.atol < 0:
    raise ValueError(f"--atol (--atol_tflite) must be >= 0, got {FLAGS.atol}")
  with console.quiet_tflite():
    result = verify_export(argv[1], texts=FLAGS.text, run_cli=FLAGS.saved_model_cli, atol=FLAGS.atol,
                           max_accuracy_drop=FLAGS.max_accuracy_drop)
  print(result, flush=True)
  if not result.ok:
    for error in result.errors:
      print(f"error: {error}", file=sys.stderr)
    sys.exit(1)
  print(f"all {len(result.checks)} checks passed")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

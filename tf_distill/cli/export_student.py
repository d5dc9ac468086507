"""Exports a distilled student for TF Serving (SavedModel) and TFLite (float32, dynamic-range int8, full int8,
16x8, selective).

    python -m tf_distill.cli.export_student --output_dir=runs/student --export_dir=export

writes export/student/<version>/ (signatures serving_default and serving_text; the teacher is never exported with
it) and export/student_tflite/<version>/<variant>.tflite (--tflite, default float32,int8,full_int8), then checks
them against the Keras student on the test split: serving_default through `saved_model_cli run`, serving_text on
the examples' raw text, the TFLite files with the LiteRT interpreter, each with its test accuracy and the drop from
the Keras student's in points. full_int8, 16x8 and selective calibrate on --representative_examples training
examples. The figures are printed and written to export/student_tflite/<version>/parity.json. A quantised variant
more than --max_accuracy_drop points below the Keras student is not written (tf_distill.export.parity); the command
fails on it when --tflite named it, and prints a `warning:` line and succeeds when only the default asked for it.
It always fails on a float32 export further than 1e-3 from the Keras student. Check an export again
later with `tf_distill verify-export DIR`.
The library function is `tf_distill.export.run_export.export_student`.
"""

from absl import app, flags

from tf_distill import console
from tf_distill.cli import common
from tf_distill.export.run_export import export_student
from tf_distill.export.tflite import DEFAULT_VARIANTS, VARIANTS
from tf_distill.run_dir import RunDir

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines export_student's flags (in `flag_values`; tests pass their own)."""
  kw = {"flag_values": flag_values}
  common.define_export_flags("runs/student", "student", **kw)
  flags.DEFINE_list("tflite", list(DEFAULT_VARIANTS), f"TFLite variants to write, from {list(VARIANTS)}; empty for "
                    "none. A variant named here must ship: one that loses more than --max_accuracy_drop fails the "
                    "command; left at the default, such a variant is skipped with a warning.", **kw)
  flags.DEFINE_integer("parity_examples", 0, "Test examples used for the parity and accuracy checks (the first "
                       "ones); 0 for the whole test split.", lower_bound=0, **kw)
  flags.DEFINE_integer("representative_examples", 300, "Training examples (drawn at random, seed 0) that calibrate "
                       "the activation ranges of the full_int8, 16x8 and selective variants.", lower_bound=1, **kw)
  common.define_max_accuracy_drop_flag(**kw)
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS keeps prepared datasets.", **kw)
  flags.DEFINE_string("data_dir", None, "For task csv: the directory with the train and test files.", **kw)


def main(argv) -> None:
  del argv
  unknown = sorted(set(FLAGS.tflite) - set(VARIANTS))
  if unknown:
    raise ValueError(f"--tflite takes variants from {list(VARIANTS)}, got {unknown}")
  with console.quiet_tflite():
    result = export_student(RunDir(FLAGS.output_dir), FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                            tflite=FLAGS.tflite, parity_examples=FLAGS.parity_examples,
                            representative_examples=FLAGS.representative_examples,
                            max_accuracy_drop=FLAGS.max_accuracy_drop, data_dir=FLAGS.data_dir,
                            tfds_data_dir=FLAGS.tfds_data_dir,
                            required=FLAGS.tflite if FLAGS["tflite"].present else ())
  for line in result.lines():
    print(line)
  for warning in result.warnings():
    print(f"warning: {warning}")
  errors = result.errors()
  if errors:  # one line each, after the figures
    raise SystemExit("\n".join(f"error: {error}" for error in errors))


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

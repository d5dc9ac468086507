"""Compares exported models on the test split (`tf_distill.report`): accuracy (a tagger's entity F1), parameters, size
and batch-1 latency.

    python -m tf_distill.cli.report --teacher_model=export/teacher \
        --models=student:export/student,baseline:export/student_baseline \
        --tflite=int8:export/student_tflite

Prints a Markdown table and writes report.md, report.json and report.png to --report_dir.
"""

from absl import app, flags

from tf_distill import console, report
from tf_distill.cli import common
from tf_distill.export.serving import latest_version_dir

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines report's flags (in `flag_values`; tests pass their own)."""
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("teacher_model", "export/teacher", "Teacher SavedModel (model dir or version dir).", **kw)
  flags.DEFINE_list("models", ["student:export/student"], "name:path of further SavedModels to compare.", **kw)
  flags.DEFINE_list("tflite", [], "name:path of TFLite files, or of a *_tflite model dir (takes "
                    "<latest>/full_int8.tflite for a name containing full_int8, int8.tflite for one containing int8, "
                    "else float32.tflite).", **kw)
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS keeps prepared datasets.", **kw)
  flags.DEFINE_string("data_dir", None, "For task csv: the directory with the test file.", **kw)
  flags.DEFINE_integer("latency_examples", 300, "Test examples timed one at a time, per model.", **kw)
  flags.DEFINE_integer("latency_rounds", 5, "Round-robin rounds the latency examples are split into (at most "
                       "--latency_examples); each round times every model in turn.", lower_bound=1, **kw)
  flags.DEFINE_integer("num_threads", 2, "CPU threads for TFLite (TensorFlow uses all cores).", **kw)
  flags.DEFINE_string("no_distillation_model", None, "Name (in --models) of the student trained without "
                      "distillation: report warns when the teacher does not beat it on dev.", **kw)
  flags.DEFINE_string("report_dir", "export", "Where report.md, report.json and report.png are written.", **kw)


def _split_named(value: str):
  name, sep, path = value.partition(":")
  if not sep or not name or not path:
    raise ValueError(f"expected name:path, got {value!r}")
  return name, path


def main(argv) -> None:
  del argv
  with console.quiet_tflite():
    _report()


def _report() -> None:
  teacher_dir = latest_version_dir(FLAGS.teacher_model)
  split = report.test_split(teacher_dir, FLAGS.data_dir, FLAGS.tfds_data_dir)
  models = [_split_named(value) for value in FLAGS.models]
  for line in report.set_up_warnings(teacher_dir, split, dict(models), FLAGS.no_distillation_model,
                                     FLAGS.data_dir, FLAGS.tfds_data_dir):
    print(f"warning: {line}")
  text = report.write_report(teacher_dir, models, [_split_named(value) for value in FLAGS.tflite], split,
                             FLAGS.report_dir, FLAGS.latency_examples, FLAGS.latency_rounds, FLAGS.num_threads)
  print(f"\nTest split: {split.describe()}\n\n{text}\n")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

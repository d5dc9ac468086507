"""Exports a fine-tuned teacher as a SavedModel with `serving_default` and `distill` signatures.

    python -m tf_distill.cli.export_teacher --output_dir=runs/teacher --export_dir=export

writes export/teacher/<version>/; check it with `saved_model_cli show --dir export/teacher/1 --all`.
The library function is `tf_distill.export.run_export.export_run`.
"""

from absl import app, flags

from tf_distill.cli import common
from tf_distill.export.run_export import export_run
from tf_distill.run_dir import RunDir

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_export_flags("runs/teacher", "teacher")


def main(argv) -> None:
  del argv
  path = export_run(RunDir(FLAGS.output_dir), FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                    with_distill_signature=True)
  print(f"exported teacher to {path} (signatures: serving_default, distill)")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

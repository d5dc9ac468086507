"""Exports a fine-tuned teacher as a SavedModel with `serving_default` and `distill` signatures.

    python -m tf_distill.cli.export_teacher --output_dir=runs/teacher --export_dir=export

writes export/teacher/<version>/; check it with `saved_model_cli show --dir export/teacher/1 --all`.
"""

import json
import os

from absl import app, flags

from tf_distill.cli import common
from tf_distill.export.serving import export_classifier
from tf_distill.training import load_trained

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_export_flags("runs/teacher", "teacher")


def export_run(output_dir: str, export_dir: str, model_name: str, version, with_distill_signature: bool) -> str:
  """Exports the best model of a train_teacher/distill run; returns the version directory.

  serving_text tokenises as the run did: lower-casing and sentence pairs come from the run's config.json.
  """
  model = load_trained(output_dir)
  with open(os.path.join(output_dir, "labels.json"), encoding="utf-8") as f:
    info = json.load(f)
  with open(os.path.join(output_dir, "config.json"), encoding="utf-8") as f:
    data = json.load(f).get("data", {})
  metadata = {"labels": info["labels"], "max_seq_length": info["max_seq_length"], "task_name": info["task_name"],
              "do_lower_case": data.get("do_lower_case", True), "text_pairs": data.get("text_b_column") is not None}
  return export_classifier(model, export_dir, model_name, metadata, os.path.join(output_dir, "vocab.txt"),
                           with_distill_signature=with_distill_signature, version=version)


def main(argv) -> None:
  del argv
  path = export_run(FLAGS.output_dir, FLAGS.export_dir, FLAGS.model_name, FLAGS.version, with_distill_signature=True)
  print(f"exported teacher to {path} (signatures: serving_default, distill)")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

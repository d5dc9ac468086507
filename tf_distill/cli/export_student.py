"""Exports a distilled student for TF Serving (SavedModel) and TFLite (float32 and dynamic-range int8).

    python -m tf_distill.cli.export_student --output_dir=runs/student --export_dir=export

writes export/student/<version>/ (serving_default only: the teacher is never exported with it) and
export/student_tflite/<version>/{float32,int8}.tflite, then checks both against the Keras student on test examples:
the SavedModel through `saved_model_cli run`, the TFLite files with the LiteRT interpreter. The parity figures are
printed and written to export/student_tflite/<version>/parity.json.
"""

import dataclasses
import json
import os
import tempfile

from absl import app, flags

from tf_distill.cli import common
from tf_distill.cli.export_teacher import export_run
from tf_distill.configs import DataConfig
from tf_distill.export.serving import run_saved_model_cli
from tf_distill.export.tflite import QUANTIZATIONS, TFLiteClassifier, compare_logits, convert_saved_model
from tf_distill.training import load_data, load_trained, write_json

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_export_flags("runs/student", "student")
  flags.DEFINE_list("tflite", list(QUANTIZATIONS), f"TFLite variants to write, from {list(QUANTIZATIONS)}; "
                    "empty for none.")
  flags.DEFINE_integer("parity_examples", 256, "Test examples used for the parity checks.")
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS keeps prepared datasets.")
  flags.DEFINE_string("data_dir", None, "For task csv: the directory with the test file.")


def parity_features(output_dir: str, num_examples: int, data_dir=None, tfds_data_dir=None):
  """The first `num_examples` test examples of the run's task, encoded with the run's vocab."""
  with open(os.path.join(output_dir, "labels.json"), encoding="utf-8") as f:
    info = json.load(f)
  with open(os.path.join(output_dir, "config.json"), encoding="utf-8") as f:
    data_fields = json.load(f)["data"]
  data_fields.update(vocab_file=os.path.join(output_dir, "vocab.txt"), labels=tuple(info["labels"]),
                     data_dir=data_dir or data_fields.get("data_dir"),
                     tfds_data_dir=tfds_data_dir or data_fields.get("tfds_data_dir"))
  config = DataConfig(**{f.name: data_fields[f.name] for f in dataclasses.fields(DataConfig)})
  test = load_data(config, splits=("test",)).features["test"]
  return {k: v[:num_examples] for k, v in test.items()}


def main(argv) -> None:
  del argv
  unknown = sorted(set(FLAGS.tflite) - set(QUANTIZATIONS))
  if unknown:
    raise ValueError(f"--tflite takes variants from {list(QUANTIZATIONS)}, got {unknown}")
  saved_model = export_run(FLAGS.output_dir, FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                           with_distill_signature=False)
  version = os.path.basename(saved_model)
  tflite_dir = os.path.join(FLAGS.export_dir, f"{FLAGS.model_name}_tflite", version)
  features = parity_features(FLAGS.output_dir, FLAGS.parity_examples, FLAGS.data_dir, FLAGS.tfds_data_dir)
  keras_logits = load_trained(FLAGS.output_dir)(
      {k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False)["logits"].numpy()
  with tempfile.TemporaryDirectory() as work_dir:
    cli_parity = compare_logits(keras_logits, run_saved_model_cli(saved_model, features, work_dir)["logits"])
  print(f"SavedModel {saved_model} via saved_model_cli run: {cli_parity}")
  report = {"saved_model": saved_model, "saved_model_cli": dataclasses.asdict(cli_parity)}
  for quantization in FLAGS.tflite:
    path = convert_saved_model(saved_model, os.path.join(tflite_dir, f"{quantization}.tflite"), quantization)
    parity = compare_logits(keras_logits, TFLiteClassifier(path)(features))
    report[quantization] = {"path": path, "bytes": os.path.getsize(path), **dataclasses.asdict(parity)}
    print(f"TFLite {quantization} {path} ({os.path.getsize(path) / 2**20:.1f} MiB): {parity}")
  if FLAGS.tflite:
    write_json(os.path.join(tflite_dir, "parity.json"), report)
  worst = max(report[key]["max_abs_logit_diff"] for key in ("saved_model_cli", "float32") if key in report)
  if worst > 1e-3:
    raise RuntimeError(f"exported float32 logits differ from the Keras student by {worst:.2e} (> 1e-3): "
                       f"{report}")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

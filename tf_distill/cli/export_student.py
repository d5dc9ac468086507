"""Exports a distilled student for TF Serving (SavedModel) and TFLite (float32, dynamic-range int8, full int8).

    python -m tf_distill.cli.export_student --output_dir=runs/student --export_dir=export

writes export/student/<version>/ (signatures serving_default and serving_text; the teacher is never exported with
it) and export/student_tflite/<version>/{float32,int8,full_int8}.tflite, then checks them against the Keras student
on test examples: serving_default through `saved_model_cli run`, serving_text on the examples' raw text, the TFLite
files with the LiteRT interpreter, each with its test accuracy and the drop from the Keras student's in points.
full_int8 calibrates on --representative_examples training examples. The figures are printed and written to
export/student_tflite/<version>/parity.json. Check an export again later with `tf_distill verify-export DIR`.
"""

import dataclasses
import json
import os
import tempfile
from typing import Dict, List, Optional, Tuple

from absl import app, flags
import numpy as np

from tf_distill.cli import common
from tf_distill.configs import DataConfig
from tf_distill.data.processors import InputExample, get_processor
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.cli.export_teacher import export_run
from tf_distill.export.serving import file_sha256, run_saved_model_cli
from tf_distill.export.tflite import (FEATURE_KEYS, FULL_INT8, VARIANTS, TFLiteClassifier, compare_logits,
                                      convert_saved_model, float_ops)
from tf_distill.training import load_trained, write_json

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_export_flags("runs/student", "student")
  flags.DEFINE_list("tflite", list(VARIANTS), f"TFLite variants to write, from {list(VARIANTS)}; empty for none.")
  flags.DEFINE_integer("parity_examples", 256, "Test examples used for the parity and accuracy checks.")
  flags.DEFINE_integer("representative_examples", 300, "Training examples (drawn at random, seed 0) that calibrate "
                       "the activation ranges of the full_int8 variant.")
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS keeps prepared datasets.")
  flags.DEFINE_string("data_dir", None, "For task csv: the directory with the train and test files.")


def run_data_config(output_dir: str, data_dir: Optional[str] = None,
                    tfds_data_dir: Optional[str] = None) -> DataConfig:
  """The data settings of a training run (its config.json and labels.json), with the run's vocab."""
  with open(os.path.join(output_dir, "labels.json"), encoding="utf-8") as f:
    info = json.load(f)
  with open(os.path.join(output_dir, "config.json"), encoding="utf-8") as f:
    data_fields = json.load(f)["data"]
  data_fields.update(vocab_file=os.path.join(output_dir, "vocab.txt"), labels=tuple(info["labels"]),
                     data_dir=data_dir or data_fields.get("data_dir"),
                     tfds_data_dir=tfds_data_dir or data_fields.get("tfds_data_dir"))
  return DataConfig(**{f.name: data_fields[f.name] for f in dataclasses.fields(DataConfig) if f.name in data_fields})


def split_examples(config: DataConfig, split: str, num_examples: int,
                   seed: Optional[int] = None) -> Tuple[List[InputExample], Dict[str, np.ndarray]]:
  """`num_examples` examples of `split` (the first ones, or a random sample when `seed` is set) and their features."""
  kwargs = {}
  if config.task_name == "csv":
    kwargs = dict(text_column=config.text_column, label_column=config.label_column,
                  text_b_column=config.text_b_column, labels=list(config.labels))
  elif config.tfds_data_dir:
    kwargs = dict(tfds_data_dir=config.tfds_data_dir)
  examples = get_processor(config.task_name, **kwargs).get_examples(split, config.data_dir)
  if seed is None:
    examples = examples[:num_examples]
  elif len(examples) > num_examples:
    rng = np.random.default_rng(seed)
    examples = [examples[i] for i in sorted(rng.choice(len(examples), num_examples, replace=False))]
  tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
  return examples, tokenizer.encode(examples, config.max_seq_length, list(config.labels))


def parity_features(output_dir: str, num_examples: int, data_dir=None, tfds_data_dir=None):
  """The first `num_examples` test examples of the run's task, encoded with the run's vocab."""
  return split_examples(run_data_config(output_dir, data_dir, tfds_data_dir), "test", num_examples)[1]


def labelled_accuracy(logits: np.ndarray, label_ids: np.ndarray) -> Optional[float]:
  """Accuracy over the examples that have a label (label id >= 0); None when none has."""
  labelled = np.asarray(label_ids) >= 0
  if not labelled.any():
    return None
  return float(np.mean(np.argmax(logits[labelled], axis=-1) == np.asarray(label_ids)[labelled]))


def _serving_text_logits(saved_model: str, examples: List[InputExample], text_pairs: bool) -> np.ndarray:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  signature = tf.saved_model.load(saved_model).signatures["serving_text"]
  inputs = {"text": tf.constant([e.text_a for e in examples])}
  if text_pairs:
    inputs["text_b"] = tf.constant([e.text_b or "" for e in examples])
  return signature(**inputs)["logits"].numpy()


def _points(accuracy: Optional[float], reference: Optional[float]) -> Optional[float]:
  return None if accuracy is None or reference is None else round(100 * (reference - accuracy), 4)


def _describe_accuracy(entry: Dict) -> str:
  if entry["accuracy"] is None:
    return "no labelled test examples"
  return f"test accuracy {100 * entry['accuracy']:.2f}% ({-entry['accuracy_drop_points']:+.2f} points vs Keras)"


def main(argv) -> None:
  del argv
  unknown = sorted(set(FLAGS.tflite) - set(VARIANTS))
  if unknown:
    raise ValueError(f"--tflite takes variants from {list(VARIANTS)}, got {unknown}")
  if FLAGS.representative_examples < 1:
    raise ValueError(f"--representative_examples must be >= 1, got {FLAGS.representative_examples}")
  config = run_data_config(FLAGS.output_dir, FLAGS.data_dir, FLAGS.tfds_data_dir)
  saved_model = export_run(FLAGS.output_dir, FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                           with_distill_signature=False)
  version = os.path.basename(saved_model)
  tflite_dir = os.path.join(FLAGS.export_dir, f"{FLAGS.model_name}_tflite", version)
  examples, features = split_examples(config, "test", FLAGS.parity_examples)
  keras_logits = load_trained(FLAGS.output_dir)({k: features[k] for k in FEATURE_KEYS}, training=False)["logits"]
  keras_logits = keras_logits.numpy()
  keras_accuracy = labelled_accuracy(keras_logits, features["label_ids"])
  with tempfile.TemporaryDirectory() as work_dir:
    cli_parity = compare_logits(keras_logits, run_saved_model_cli(saved_model, features, work_dir)["logits"])
  print(f"SavedModel {saved_model} via saved_model_cli run: {cli_parity}")
  text_parity = compare_logits(keras_logits, _serving_text_logits(saved_model, examples,
                                                                    config.text_b_column is not None))
  print(f"SavedModel {saved_model} serving_text on the raw test text: {text_parity}")
  report = {"saved_model": saved_model, "saved_model_cli": dataclasses.asdict(cli_parity),
            "serving_text": dataclasses.asdict(text_parity), "keras_accuracy": keras_accuracy}
  representative = None
  if FULL_INT8 in FLAGS.tflite:
    representative = split_examples(config, "train", FLAGS.representative_examples, seed=0)[1]
  for quantization in FLAGS.tflite:
    path = convert_saved_model(saved_model, os.path.join(tflite_dir, f"{quantization}.tflite"), quantization,
                               representative_features=representative)
    logits = TFLiteClassifier(path)(features)
    accuracy = labelled_accuracy(logits, features["label_ids"])
    entry = {"path": path, "bytes": os.path.getsize(path), "sha256": file_sha256(path),
             **dataclasses.asdict(compare_logits(keras_logits, logits)),
             "accuracy": accuracy, "accuracy_drop_points": _points(accuracy, keras_accuracy)}
    if quantization == FULL_INT8:  # which ops, if any, had to stay float32
      entry.update(float_ops=float_ops(path), representative_examples=len(representative["input_ids"]))
    report[quantization] = entry
    print(f"TFLite {quantization} {path} ({entry['bytes'] / 2**20:.2f} MiB): {compare_logits(keras_logits, logits)}; "
          f"{_describe_accuracy(entry)}")
  if keras_accuracy is not None:
    print(f"Keras student test accuracy {100 * keras_accuracy:.2f}% on {int(np.sum(features['label_ids'] >= 0))} "
          "labelled examples")
  if FLAGS.tflite:
    write_json(os.path.join(tflite_dir, "parity.json"), report)
  worst = max(report[key]["max_abs_logit_diff"] for key in ("saved_model_cli", "serving_text", "float32")
              if key in report)
  if worst > 1e-3:
    raise RuntimeError(f"exported float32 logits differ from the Keras student by {worst:.2e} (> 1e-3): "
                       f"{report}")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

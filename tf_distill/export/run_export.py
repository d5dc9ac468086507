"""Exports the best model of a training run: `export_run` (a SavedModel, teacher or student) and `export_student`
(the student's SavedModel and TFLite variants, each checked against the Keras student on test examples).

    run = RunDir("runs/student")
    result = export_student(run, "export", "student")
    print("\\n".join(result.lines()))
    result.raise_on_float32_mismatch()

export_student writes `<export_dir>/<model_name>/<version>/` (signatures serving_default and serving_text; the
teacher is never exported with it) and `<export_dir>/<model_name>_tflite/<version>/{float32,int8,full_int8}.tflite`,
then compares each with the Keras student (`tf_distill.export.parity`): serving_default through
`saved_model_cli run`, serving_text on the examples' raw text, the TFLite files with the LiteRT interpreter, each
with its test accuracy and the drop from the Keras student's in points. full_int8 calibrates on
`representative_examples` training examples. The figures go to `<model_name>_tflite/<version>/parity.json`, which
verify-export reads.
"""

import dataclasses
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_distill.configs import DataConfig
from tf_distill.data.processors import InputExample, get_processor
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.export import parity
from tf_distill.export.serving import export_classifier, file_sha256, run_saved_model_cli
from tf_distill.export.tflite import FEATURE_KEYS, FULL_INT8, VARIANTS, TFLiteClassifier, convert_saved_model, float_ops
from tf_distill.run_dir import RunDir

# The exports compared as float32 with the Keras student: they fail export_student beyond parity.ATOL.
FLOAT32_CHECKS = ("saved_model_cli", "serving_text", parity.FLOAT32)


def export_run(run_dir: Union[RunDir, str], export_dir: str, model_name: str, version: Optional[int] = None,
               with_distill_signature: bool = True) -> str:
  """Exports the best model of a train_teacher/distill run to `<export_dir>/<model_name>/<version>/` (the next free
  version when `version` is None) and returns that directory.

  serving_text tokenises as the run did: lower-casing and sentence pairs come from the run's config.json.
  """
  run_dir = RunDir(run_dir)
  return export_classifier(run_dir.load_model(), export_dir, model_name, run_dir.export_metadata(),
                           run_dir.vocab_file, with_distill_signature=with_distill_signature, version=version)


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


@dataclasses.dataclass(frozen=True)
class StudentExport:
  """What `export_student` wrote and measured.

  saved_model:    the SavedModel version directory.
  tflite_dir:     where the .tflite files and parity.json are (written only when there are TFLite variants).
  figures:        "saved_model_cli", "serving_text" and each TFLite variant -> its parity with the Keras student.
  report:         the content of parity.json (file, size, sha256, parity, accuracy and drop of each export).
  num_labelled:   the test examples with a label, on which the accuracies are measured.
  atol:           the float32 tolerance (`raise_on_float32_mismatch`).
  """
  saved_model: str
  tflite_dir: str
  figures: Dict[str, parity.Parity]
  report: Dict
  num_labelled: int
  atol: float = parity.ATOL

  def lines(self) -> List[str]:
    """One line per export with its figures, then the Keras student's accuracy."""
    lines = [f"SavedModel {self.saved_model} via saved_model_cli run: {self.figures['saved_model_cli']}",
             f"SavedModel {self.saved_model} serving_text on the raw test text: {self.figures['serving_text']}"]
    for quantization in self.figures:
      if quantization in VARIANTS:
        entry = self.report[quantization]
        lines.append(f"TFLite {quantization} {entry['path']} ({entry['bytes'] / 2**20:.2f} MiB): "
                     f"{self.figures[quantization]}; {_describe_accuracy(entry)}")
    keras_accuracy = self.report["keras_accuracy"]
    if keras_accuracy is not None:
      lines.append(f"Keras student test accuracy {100 * keras_accuracy:.2f}% on {self.num_labelled} labelled "
                   "examples")
    return lines

  def raise_on_float32_mismatch(self) -> None:
    """Raises RuntimeError when a float32 export's logits are further than `atol` from the Keras student's."""
    checked = [self.figures[key] for key in FLOAT32_CHECKS if key in self.figures]
    if not all(parity.tolerance(atol=self.atol).allows(p) for p in checked):
      worst = max(p.max_abs_logit_diff for p in checked)
      raise RuntimeError(f"exported float32 logits differ from the Keras student by {worst:.2e} (> {self.atol:g}): "
                         f"{self.report}")


def _describe_accuracy(entry: Dict) -> str:
  if entry["accuracy"] is None:
    return "no labelled test examples"
  return f"test accuracy {100 * entry['accuracy']:.2f}% ({-entry['accuracy_drop_points']:+.2f} points vs Keras)"


def _serving_text_logits(saved_model: str, examples: List[InputExample], text_pairs: bool) -> np.ndarray:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  signature = tf.saved_model.load(saved_model).signatures["serving_text"]
  inputs = {"text": tf.constant([e.text_a for e in examples])}
  if text_pairs:
    inputs["text_b"] = tf.constant([e.text_b or "" for e in examples])
  return signature(**inputs)["logits"].numpy()


def export_student(run_dir: Union[RunDir, str], export_dir: str, model_name: str, version: Optional[int] = None,
                   tflite: Sequence[str] = VARIANTS, parity_examples: int = 256, representative_examples: int = 300,
                   data_dir: Optional[str] = None, tfds_data_dir: Optional[str] = None) -> StudentExport:
  """Exports a distill run's student (module docstring) and measures each export against the Keras student.

  Args:
    run_dir: the distill run.
    export_dir, model_name, version: as for `export_run`; the TFLite files go to `<model_name>_tflite/<version>/`.
    tflite: the TFLite variants to write, from `tflite.VARIANTS`; empty for none.
    parity_examples: the first test examples used for the parity and accuracy figures.
    representative_examples: training examples (drawn at random, seed 0) that calibrate full_int8.
    data_dir, tfds_data_dir: where the run's data is now, when it moved.

  Returns the figures; call `raise_on_float32_mismatch()` on them to fail on a float32 export that does not match.
  """
  run_dir = RunDir(run_dir)
  config = run_dir.data_config(data_dir, tfds_data_dir)
  saved_model = export_run(run_dir, export_dir, model_name, version, with_distill_signature=False)
  tflite_dir = os.path.join(export_dir, f"{model_name}_tflite", os.path.basename(saved_model))
  examples, features = split_examples(config, "test", parity_examples)
  label_ids = features["label_ids"]
  keras_logits = run_dir.load_model()({k: features[k] for k in FEATURE_KEYS}, training=False)["logits"].numpy()
  keras_accuracy = parity.labelled_accuracy(keras_logits, label_ids)
  with tempfile.TemporaryDirectory() as work_dir:
    cli_logits = run_saved_model_cli(saved_model, features, work_dir)["logits"]
  text_logits = _serving_text_logits(saved_model, examples, config.text_b_column is not None)
  figures = {"saved_model_cli": parity.compare_logits(keras_logits, cli_logits),
             "serving_text": parity.compare_logits(keras_logits, text_logits)}
  report = {"saved_model": saved_model, "saved_model_cli": dataclasses.asdict(figures["saved_model_cli"]),
            "serving_text": dataclasses.asdict(figures["serving_text"]), "keras_accuracy": keras_accuracy}
  representative = None
  if FULL_INT8 in tflite:
    representative = split_examples(config, "train", representative_examples, seed=0)[1]
  for quantization in tflite:
    path = convert_saved_model(saved_model, os.path.join(tflite_dir, f"{quantization}.tflite"), quantization,
                               representative_features=representative)
    logits = TFLiteClassifier(path)(features)
    figures[quantization] = parity.compare_logits(keras_logits, logits)
    accuracy = parity.labelled_accuracy(logits, label_ids)
    entry = {"path": path, "bytes": os.path.getsize(path), "sha256": file_sha256(path),
             **dataclasses.asdict(figures[quantization]),
             "accuracy": accuracy, "accuracy_drop_points": parity.accuracy_drop_points(accuracy, keras_accuracy)}
    if quantization == FULL_INT8:  # which ops, if any, had to stay float32
      entry.update(float_ops=float_ops(path), representative_examples=len(representative["input_ids"]))
    report[quantization] = entry
  if tflite:
    parity.write_report(tflite_dir, report)
  return StudentExport(saved_model, tflite_dir, figures, report, int(np.sum(label_ids >= 0)))

"""Exports the best model of a training run: `export_run` (a SavedModel, teacher or student) and `export_student`
(the student's SavedModel and TFLite variants, each checked against the Keras student on the test split).

    run = RunDir("runs/student")
    result = export_student(run, "export", "student")
    print("\\n".join(result.lines()))
    result.raise_on_failure()

export_student writes `<export_dir>/<model_name>/<version>/` (signatures serving_default and serving_text; the
teacher is never exported with it) and `<export_dir>/<model_name>_tflite/<version>/<variant>.tflite`, then compares
each with the Keras student (`tf_distill.export.parity`): serving_default through `saved_model_cli run`,
serving_text on the examples' raw text, the TFLite files with the LiteRT interpreter, each with its test accuracy
and the drop from the Keras student's in points. The calibrated variants (full_int8, 16x8, selective) calibrate on
`representative_examples` training examples. A quantised variant more than `max_accuracy_drop` points below the
Keras student is not written (no file is left under its name): `raise_on_failure` names it when it is one of the
`required` variants (those the user asked for by name), `warnings` when only the defaults asked for it, so that a
default export always finishes and says what it did not ship. The figures go to
`<model_name>_tflite/<version>/parity.json` and the examples with the Keras logits to `parity_examples.npz`, which
verify-export reads to check the files again.
"""

import dataclasses
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tf_distill.bert import use_outlier_safe_layer_norm
from tf_distill.configs import DataConfig
from tf_distill.export import parity
from tf_distill.export.serving import export_classifier, file_sha256, run_saved_model_cli
from tf_distill.export.tflite import (CALIBRATED, DEFAULT_VARIANTS, FEATURE_KEYS, VARIANTS, ConversionError,
                                      TFLiteClassifier, convert_saved_model, float_ops)
from tf_distill.run_dir import RunDir
from tf_distill.students import STUDENTS
from tf_distill.tasks import task_type_of
from tf_distill.tasks.base import Texts

SAVED_MODEL_CLI_ROWS = 256  # the test rows that the saved_model_cli check runs
# The exports compared as float32 with the Keras student: they fail export_student beyond parity.ATOL.
FLOAT32_CHECKS = ("saved_model_cli", "serving_text", parity.FLOAT32)


def export_run(run_dir: Union[RunDir, str], export_dir: str, model_name: str, version: Optional[int] = None,
               with_distill_signature: bool = True) -> str:
  """Exports the best model of a train_teacher/distill run to `<export_dir>/<model_name>/<version>/` (the next free
  version when `version` is None) and returns that directory.

  With `with_distill_signature` the export is a teacher (serving_default and distill, with the model's per-layer
  outputs and its BERT config in the metadata): a distilled BERT student exports as the teacher of a next, smaller
  student (a teacher-assistant chain, `tf_distill.chain`). A BiLSTM run is refused: it has no intermediates.

  serving_text tokenises as the run did: lower-casing and sentence pairs come from the run's config.json. A student
  export (without the distill signature) computes its LayerNorms in outlier-safe steps (`bert.LayerNorm`): the
  same outputs, and a full-int8 TFLite file that keeps them.
  """
  run_dir = RunDir(run_dir)
  if with_distill_signature:
    _check_can_teach(run_dir)
  model = run_dir.load_model()
  if not with_distill_signature:  # a student: its LayerNorms in the steps full-int8 TFLite represents well
    use_outlier_safe_layer_norm(model)
  return export_classifier(model, export_dir, model_name, run_dir.export_metadata(),
                           run_dir.vocab_file, with_distill_signature=with_distill_signature, version=version)


def _check_can_teach(run_dir: RunDir) -> None:
  """A teacher export shapes and teaches the next student with BERT's hidden states and attention; a run whose
  model has none (the BiLSTM) is refused before anything is written."""
  model_type = run_dir.read_model_config().get("model_type", "bert")
  if not STUDENTS.get(model_type).intermediate_outputs:
    raise ValueError(f"{run_dir.path} holds a {model_type} student, which has no BERT hidden states or attention "
                     "to teach the next student with; only a BERT run exports as a teacher: export it with "
                     "export_student")


def split_examples(config: DataConfig, split: str, num_examples: int,
                   seed: Optional[int] = None) -> Tuple[Texts, Dict[str, np.ndarray]]:
  """`num_examples` examples of `split` (the first ones, or a random sample when `seed` is set) as raw text and
  features (`tf_distill.tasks.TaskType.export_examples` of the run's task type)."""
  return task_type_of(config.task_name).export_examples(config, split, num_examples, seed)


@dataclasses.dataclass(frozen=True)
class StudentExport:
  """What `export_student` wrote and measured.

  saved_model:    the SavedModel version directory.
  tflite_dir:     where the .tflite files, parity.json and parity_examples.npz are (only with TFLite variants).
  figures:        "saved_model_cli", "serving_text" and each TFLite variant -> its parity with the Keras student.
  checks:         each quantised TFLite variant -> its accuracy check (parity.accuracy_check).
  report:         the content of parity.json (file, size, sha256, parity, accuracy and drop of each export).
  num_labelled:   the test examples with a label, on which the accuracies are measured.
  atol:           the float32 tolerance.
  unconvertible:  the variants the TFLite converter cannot produce for this model -> why (nothing written).
  required:       the variants whose refusal for accuracy is an error; the others' refusals are warnings.
  metric, unit:   what "accuracy" is for the run's task type and what it counts (`TaskType.metric_title`,
                  `TaskType.unit`: a tagger's entity F1, over words).
  """
  saved_model: str
  tflite_dir: str
  figures: Dict[str, parity.Parity]
  checks: Dict[str, parity.AccuracyCheck]
  report: Dict
  num_labelled: int
  atol: float = parity.ATOL
  unconvertible: Dict[str, str] = dataclasses.field(default_factory=dict)  # variant -> the converter's refusal
  required: Tuple[str, ...] = VARIANTS
  metric: str = "accuracy"
  unit: str = "examples"

  @property
  def refused(self) -> List[str]:
    """The quantised variants not written: their accuracy dropped beyond the threshold."""
    return [variant for variant, check in self.checks.items() if not check.ok]

  def _refusals(self) -> List[Tuple[str, str]]:
    """(variant, why) of every variant not written because it lost too much accuracy."""
    return [(v, f"TFLite {v} not written: {self.checks[v]}; {_fix_for(v)}") for v in self.refused]

  def lines(self) -> List[str]:
    """One line per export with its figures, then the Keras student's accuracy."""
    lines = [f"SavedModel {self.saved_model} via saved_model_cli run: {self.figures['saved_model_cli']}",
             f"SavedModel {self.saved_model} serving_text on the raw test text: {self.figures['serving_text']}"]
    for variant in self.figures:
      if variant in VARIANTS:
        entry = self.report[variant]
        where = (f"{entry['path']} ({entry['bytes'] / 2**20:.2f} MiB)" if entry.get("path") else
                 f"NOT WRITTEN ({entry['bytes'] / 2**20:.2f} MiB)")
        lines.append(f"TFLite {variant} {where}: {self.figures[variant]}; {_describe_accuracy(entry, self.metric)}")
    keras_accuracy = self.report["keras_accuracy"]
    if keras_accuracy is not None:
      lines.append(f"Keras student test {self.metric} {100 * keras_accuracy:.2f}% on {self.num_labelled} labelled "
                   f"{self.unit}")
    return lines

  def errors(self) -> List[str]:
    """One line per failure: a float32 export further than `atol` from the Keras student, a refused variant."""
    errors = []
    checked = [(key, self.figures[key]) for key in FLOAT32_CHECKS if key in self.figures]
    for key, figures in checked:
      if not parity.tolerance(self.atol).allows(figures):
        errors.append(f"exported float32 {key} logits differ from the Keras student by "
                      f"{figures.max_abs_logit_diff:.2e} (> {self.atol:g}): the export does not compute the model")
    errors += [why for variant, why in self._refusals() if variant in self.required]
    return errors + [f"TFLite {why}" for why in self.unconvertible.values()]

  def warnings(self) -> List[str]:
    """One line per variant that only the defaults asked for and that lost too much accuracy to be written (the
    export succeeds). A variant the converter cannot produce stays an error."""
    return [f"{why} (a default variant: the export goes on without it)"
            for variant, why in self._refusals() if variant not in self.required]

  def raise_on_failure(self) -> None:
    """Raises RuntimeError with `errors()`, one per line, when there are any (`warnings()` do not raise)."""
    errors = self.errors()
    if errors:
      raise RuntimeError("\n".join(errors))


def _fix_for(variant: str) -> str:
  others = [v for v in ("16x8", "selective") if v != variant]
  qat = ("continue the student quantisation-aware (scripts/distill.sh --student_init_run=RUN "
         "--output_dir=NEW_RUN --stages=qat:1, the run's other flags, and --student_init_from_layers= for a BERT), "
         if variant == "full_int8" else "")
  return (f"{qat}try --tflite={','.join(others)} (finer or selective quantisation), calibrate on more examples "
          "(--representative_examples), or raise --max_accuracy_drop if the loss is acceptable")


def _describe_accuracy(entry: Dict, metric: str = "accuracy") -> str:
  if entry["accuracy"] is None:
    return "no labelled test examples"
  return f"test {metric} {100 * entry['accuracy']:.2f}% ({-entry['accuracy_drop_points']:+.2f} points vs Keras)"


def _serving_text_outputs(saved_model: str, texts: Texts, batch_size: int = 64) -> Dict[str, np.ndarray]:
  """serving_text's outputs on `texts`, `batch_size` inputs at a time (a QA reader's span search holds
  [batch, seq, seq] scores), joined; outputs padded per batch (a tagger's words) are padded to the widest with ""
  or 0."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  signature = tf.saved_model.load(saved_model).signatures["serving_text"]
  rows = len(next(iter(texts.values())))
  batches = [{key: value.numpy() for key, value in signature(
      **{k: tf.constant(v[i:i + batch_size]) for k, v in texts.items()}).items()}
             for i in range(0, max(rows, 1), batch_size)]
  return {key: _joined([batch[key] for batch in batches]) for key in batches[0]}


def _joined(arrays: List[np.ndarray]) -> np.ndarray:
  """`arrays` concatenated on axis 0, each first padded on axis 1 (when it has one) to the widest."""
  if arrays[0].ndim < 2:
    return np.concatenate(arrays)
  width = max(array.shape[1] for array in arrays)
  pad = lambda a: np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2),
                         constant_values=b"" if a.dtype.kind in "OS" else 0)
  return np.concatenate([pad(array) for array in arrays])


def _batched_logits(model, features: Dict[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
  return np.concatenate([model({k: features[k][i:i + batch_size] for k in FEATURE_KEYS}, training=False)
                         ["logits"].numpy() for i in range(0, len(features["input_ids"]), batch_size)])


def export_student(run_dir: Union[RunDir, str], export_dir: str, model_name: str, version: Optional[int] = None,
                   tflite: Sequence[str] = DEFAULT_VARIANTS, parity_examples: Optional[int] = None,
                   representative_examples: int = 300, max_accuracy_drop: float = parity.MAX_ACCURACY_DROP,
                   data_dir: Optional[str] = None, tfds_data_dir: Optional[str] = None,
                   required: Optional[Sequence[str]] = None) -> StudentExport:
  """Exports a distill run's student (module docstring) and measures each export against the Keras student.

  Args:
    run_dir: the distill run.
    export_dir, model_name, version: as for `export_run`; the TFLite files go to `<model_name>_tflite/<version>/`.
    tflite: the TFLite variants to write, from `tflite.VARIANTS`; empty for none.
    parity_examples: the first test examples used for the parity and accuracy figures; None for the whole split.
    representative_examples: training examples (drawn at random, seed 0) that calibrate the CALIBRATED variants.
    max_accuracy_drop: points of test accuracy a quantised variant may lose against the Keras student.
    data_dir, tfds_data_dir: where the run's data is now, when it moved.
    required: the variants (of `tflite`) that must be written: a refused one is an error, the others' refusals are
      warnings. None: all of `tflite`. The command line passes the variants named by --tflite, none for its default.

  Returns the figures; call `raise_on_failure()` on them to fail on a float32 export that does not match or a
  required quantised variant that was refused; `warnings()` names the other variants not written.
  """
  unknown = sorted(set(tflite) - set(VARIANTS))
  if unknown:
    raise ValueError(f"unknown TFLite variants {unknown}; use some of {list(VARIANTS)}")
  required = tuple(tflite if required is None else required)
  if not set(required) <= set(tflite):
    raise ValueError(f"required TFLite variants {sorted(set(required) - set(tflite))} are not among the variants to "
                     f"write {list(tflite)}")
  if representative_examples < 1:
    raise ValueError(f"representative_examples must be >= 1, got {representative_examples}")
  if max_accuracy_drop < 0:
    raise ValueError(f"max_accuracy_drop must be >= 0 points, got {max_accuracy_drop}")
  run_dir = RunDir(run_dir)
  config = run_dir.data_config(data_dir, tfds_data_dir)
  task = task_type_of(config.task_name)
  texts, features = split_examples(config, "test", parity_examples or 2**62)  # first: a task type may refuse
  saved_model = export_run(run_dir, export_dir, model_name, version, with_distill_signature=False)
  tflite_dir = os.path.join(export_dir, f"{model_name}_tflite", os.path.basename(saved_model))
  labels = run_dir.labels
  keras_logits = _batched_logits(run_dir.load_model(), features)
  keras_quality = task.quality(keras_logits, features, labels)
  # saved_model_cli runs its input as one batch: the first SAVED_MODEL_CLI_ROWS rows (a QA reader's 3,000 windows
  # of 256 pieces at once would need gigabytes for attention alone).
  cli_rows = {key: value[:SAVED_MODEL_CLI_ROWS] if len(value) == len(features["input_ids"]) else value
              for key, value in features.items()}
  with tempfile.TemporaryDirectory() as work_dir:
    cli_logits = run_saved_model_cli(saved_model, cli_rows, work_dir)["logits"]
  keras_scored = task.scored(keras_logits, features)  # what every export's logits are compared with
  compare = lambda reference, candidate: parity.compare_logits(reference, candidate, task.scored_unit)
  figures = {"saved_model_cli": compare(task.scored(keras_logits[:SAVED_MODEL_CLI_ROWS], cli_rows),
                                        task.scored(cli_logits, cli_rows)),
             "serving_text": compare(*task.text_parity(_serving_text_outputs(saved_model, texts), features,
                                                       keras_logits))}
  report = {"saved_model": saved_model, "saved_model_cli": dataclasses.asdict(figures["saved_model_cli"]),
            "serving_text": dataclasses.asdict(figures["serving_text"]), "keras_accuracy": keras_quality,
            "metric": task.metric_title, "max_accuracy_drop": max_accuracy_drop}
  representative = None
  if any(variant in CALIBRATED for variant in tflite):
    representative = split_examples(config, "train", representative_examples, seed=0)[1]
  checks, unconvertible = {}, {}
  for variant in tflite:
    path = os.path.join(tflite_dir, f"{variant}.tflite")
    try:
      candidate = convert_saved_model(saved_model, os.path.join(tflite_dir, f".{variant}.candidate.tflite"), variant,
                                      representative_features=representative)
    except ConversionError as e:
      unconvertible[variant] = str(e)
      report[variant] = {"path": None, "error": str(e), "required": variant in required}
      continue
    logits = TFLiteClassifier(candidate)(features)
    figures[variant] = compare(keras_scored, task.scored(logits, features))
    quality = task.quality(logits, features, labels)
    entry = {"path": path, "bytes": os.path.getsize(candidate), "sha256": file_sha256(candidate),
             **dataclasses.asdict(figures[variant]),
             "accuracy": quality, "accuracy_drop_points": parity.accuracy_drop_points(quality, keras_quality)}
    if variant in CALIBRATED:  # which ops, if any, stayed float32
      entry.update(float_ops=float_ops(candidate), representative_examples=len(representative["input_ids"]))
    if parity.is_quantized(variant):
      checks[variant] = parity.quality_check(quality, keras_quality, figures[variant].argmax_agreement,
                                             max_accuracy_drop, task.metric_title)
      entry.update(accepted=checks[variant].ok, required=variant in required)
    if checks.get(variant) is None or checks[variant].ok:
      os.replace(candidate, path)
    else:  # not deployable: no file under its name, not even one left from an earlier export to this version
      for stale in (candidate, path):
        if os.path.exists(stale):
          os.remove(stale)
      entry["path"] = None
    report[variant] = entry
  if tflite:
    parity.write_report(tflite_dir, report)
    parity.write_examples(tflite_dir, features, keras_logits)
  num_labelled = task.labelled(features)
  return StudentExport(saved_model, tflite_dir, figures, checks, report, num_labelled, unconvertible=unconvertible,
                       required=required, metric=task.metric_title, unit=task.unit)

"""Export parity: how far an exported model is from the Keras student, and how far is close enough.

One comparison and two rules, for export_student (each export against the Keras student on the test split) and
verify-export (each file again, later):

  compare_logits     max |logit diff| and argmax agreement; `labelled_accuracy` and `accuracy_drop_points` add the
                     test accuracy and its drop in points. A tagger's logits are compared at its scored words
                     (`tf_distill.tasks.TaskType.scored`).
  tolerance          float32 variants (saved_model_cli, serving_text, float32.tflite) must match the Keras logits
                     within `atol` (ATOL).
  quality_check      quantised variants (int8, full_int8, 16x8, selective) must keep the test quality -- accuracy,
                     a tagger's entity F1 (`TaskType.quality`) -- at most `max_drop` points (MAX_ACCURACY_DROP)
                     below the Keras student's on the same examples. Without labels the Keras student's own
                     predictions stand in for them, so the drop is the share of predictions that changed (never less
                     than the accuracy drop could be). `accuracy_check` is the classifier's case.

export_student does not write a quantised file that fails quality_check; verify-export rejects one.
"""

import dataclasses
import json
import os
from typing import Dict, Optional

import numpy as np

ATOL = 1e-3  # largest |logit diff| of a float32 variant
MAX_ACCURACY_DROP = 1.0  # points of test accuracy a quantised variant may lose against the Keras student
FLOAT32 = "float32"
PARITY_FILE = "parity.json"  # written by export_student next to the .tflite files, read by verify-export


@dataclasses.dataclass(frozen=True)
class Parity:
  max_abs_logit_diff: float
  argmax_agreement: float
  num_examples: int
  unit: str = "examples"  # what a row is: `TaskType.scored_unit`

  def __str__(self):
    return (f"max |logit diff| {self.max_abs_logit_diff:.2e}, argmax agreement {100 * self.argmax_agreement:.2f}% "
            f"on {self.num_examples} {self.unit}")


def compare_logits(reference: np.ndarray, candidate: np.ndarray, unit: str = "examples") -> Parity:
  """`reference` and `candidate`: logits float32 [n, labels] of the same predictions, n `unit`s."""
  reference, candidate = np.asarray(reference), np.asarray(candidate)
  if reference.shape != candidate.shape:
    raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
  return Parity(float(np.max(np.abs(reference - candidate))),
                float(np.mean(reference.argmax(-1) == candidate.argmax(-1))), int(reference.shape[0]), unit)


def labelled_accuracy(logits: np.ndarray, label_ids: np.ndarray) -> Optional[float]:
  """Accuracy over the examples that have a label (label id >= 0); None when none has."""
  labelled = np.asarray(label_ids) >= 0
  if not labelled.any():
    return None
  return float(np.mean(np.argmax(logits[labelled], axis=-1) == np.asarray(label_ids)[labelled]))


def accuracy_drop_points(accuracy: Optional[float], reference: Optional[float]) -> Optional[float]:
  """How many points `accuracy` is below `reference` (negative: above); None when either is unknown."""
  return None if accuracy is None or reference is None else round(100 * (reference - accuracy), 4)


def is_quantized(tflite_name: str) -> bool:
  """Whether a TFLite variant or file name (`int8`, `full_int8.tflite`, ...) is quantised: all but float32 are."""
  return not os.path.basename(tflite_name).startswith(FLOAT32)


@dataclasses.dataclass(frozen=True)
class Tolerance:
  """The largest max |logit diff| allowed, and the rule that set it, in words."""
  limit: float
  rule: str

  def allows(self, parity: Parity) -> bool:
    return parity.max_abs_logit_diff <= self.limit


def tolerance(atol: float = ATOL) -> Tolerance:
  """A float32 variant's tolerance: max |logit diff| <= atol."""
  return Tolerance(atol, f"tolerance {atol:g}")


@dataclasses.dataclass(frozen=True)
class AccuracyCheck:
  """A quantised variant against the Keras student on the same examples.

  accuracy, reference: the variant's and the Keras student's `metric` (vs labels, or the agreement with the Keras
  predictions when there are no labels: then reference is 1); drop_points: how far the variant is below, in points.
  """
  accuracy: float
  reference: float
  drop_points: float
  max_drop: float
  against: str  # "labels" or "Keras predictions"
  metric: str = "accuracy"

  @property
  def ok(self) -> bool:
    return self.drop_points <= self.max_drop

  def __str__(self):
    return (f"{self.metric} {100 * self.accuracy:.2f}% vs the Keras student's {100 * self.reference:.2f}% "
            f"({self.against}): {self.drop_points:+.2f} points drop, threshold {self.max_drop:g}")


def quality_check(value: Optional[float], reference: Optional[float], agreement: float,
                  max_drop: float = MAX_ACCURACY_DROP, metric: str = "accuracy") -> AccuracyCheck:
  """The quality rule of the module docstring. value, reference: the variant's and the Keras student's `metric` on
  the same examples (None without labels); agreement: the share of the variant's predictions equal to the Keras
  student's, which stands in when there are no labels."""
  if max_drop < 0:
    raise ValueError(f"the accuracy-drop threshold must be >= 0 points, got {max_drop}")
  if value is None or reference is None:
    return AccuracyCheck(agreement, 1.0, accuracy_drop_points(agreement, 1.0), max_drop, "Keras predictions", metric)
  return AccuracyCheck(value, reference, accuracy_drop_points(value, reference), max_drop, "labels", metric)


def accuracy_check(logits: np.ndarray, keras_logits: np.ndarray, label_ids: Optional[np.ndarray] = None,
                   max_drop: float = MAX_ACCURACY_DROP) -> AccuracyCheck:
  """`quality_check` of a classifier. logits, keras_logits: float32 [batch, labels] of the same examples;
  label_ids: int [batch], -1 where an example has no label (None: none has)."""
  value = reference = None
  if label_ids is not None:
    value, reference = labelled_accuracy(logits, label_ids), labelled_accuracy(keras_logits, label_ids)
  agreement = float(np.mean(np.argmax(logits, -1) == np.argmax(keras_logits, -1)))
  return quality_check(value, reference, agreement, max_drop)


def write_report(tflite_dir: str, report: Dict) -> str:
  """Writes export_student's figures to `<tflite_dir>/parity.json`; returns its path."""
  path = os.path.join(tflite_dir, PARITY_FILE)
  os.makedirs(tflite_dir, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2, sort_keys=True)
  return path


def read_report(tflite_dir: str) -> Dict:
  """The figures export_student wrote to `<tflite_dir>/parity.json`; {} when there is no readable file."""
  path = os.path.join(tflite_dir, PARITY_FILE)
  if not os.path.isfile(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except ValueError:
    return {}


EXAMPLES_FILE = "parity_examples.npz"  # the test examples export_student measured, with the Keras logits


def write_examples(tflite_dir: str, features: Dict[str, np.ndarray], keras_logits: np.ndarray) -> str:
  """Writes the examples export_student measured (their features: int32 input_ids/input_mask/segment_ids [n, seq],
  label_ids [n] or a tagger's [n, seq], -1 where unlabelled, and what its task type's `quality` reads) and the Keras
  student's logits on them, so verify-export can check the TFLite files' quality later without the data; returns
  the path."""
  path = os.path.join(tflite_dir, EXAMPLES_FILE)
  tmp_path = path + ".tmp.npz"
  np.savez_compressed(tmp_path, keras_logits=np.asarray(keras_logits, np.float32),
                      **{key: _stored(value) for key, value in features.items()})
  os.replace(tmp_path, path)
  return path


def _stored(value) -> np.ndarray:
  """Integer features as int32; float (float32) and str arrays, a QA export's decoding settings and contexts, keep
  their kind: np.load reads all three without pickle."""
  value = np.asarray(value)
  if value.dtype.kind == "f":
    return value.astype(np.float32)
  return value if value.dtype.kind == "U" else value.astype(np.int32)


def read_examples(tflite_dir: str) -> Optional[Dict[str, np.ndarray]]:
  """What `write_examples` wrote; None when there is no readable file."""
  path = os.path.join(tflite_dir, EXAMPLES_FILE)
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path) as data:
      return {key: data[key] for key in data.files}
  except (OSError, ValueError):
    return None

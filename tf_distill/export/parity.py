"""Export parity: how far an exported model's logits are from a reference, and how far is close enough.

One comparison and one tolerance rule, for export_student (each export against the Keras student, on test
examples) and verify-export (each file against the SavedModel's serving_default, on sample sentences):

  compare_logits     max |logit diff| and argmax agreement; `labelled_accuracy` and `accuracy_drop_points` add the
                     test accuracy and its drop in points where the examples have labels.
  tolerance          float32 variants (saved_model_cli, serving_text, float32.tflite) are allowed `atol` (ATOL);
                     quantised ones (int8, full_int8) the larger of `quantized_tolerance` (QUANTIZED_TOLERANCE)
                     times the reference's largest |logit| and twice the max |logit diff| that parity.json records
                     for the file (full int8 can be that coarse on small models).

export_student fails on float32 variants beyond ATOL and records the quantised variants' figures in parity.json
without judging them (their measured diff becomes what verify-export later allows twice of).
"""

import dataclasses
import json
import os
from typing import Dict, Optional

import numpy as np

ATOL = 1e-3  # largest |logit diff| of a float32 variant
QUANTIZED_TOLERANCE = 0.2  # a quantised variant's, as a fraction of the reference's largest |logit|
FLOAT32 = "float32"
PARITY_FILE = "parity.json"  # written by export_student next to the .tflite files, read by verify-export


@dataclasses.dataclass(frozen=True)
class Parity:
  max_abs_logit_diff: float
  argmax_agreement: float
  num_examples: int

  def __str__(self):
    return (f"max |logit diff| {self.max_abs_logit_diff:.2e}, argmax agreement {100 * self.argmax_agreement:.2f}% "
            f"on {self.num_examples} examples")


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> Parity:
  """`reference` and `candidate`: logits float32 [batch, labels] of the same examples."""
  reference, candidate = np.asarray(reference), np.asarray(candidate)
  if reference.shape != candidate.shape:
    raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
  return Parity(float(np.max(np.abs(reference - candidate))),
                float(np.mean(reference.argmax(-1) == candidate.argmax(-1))), int(reference.shape[0]))


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


def tolerance(quantized: bool = False, reference: Optional[np.ndarray] = None, atol: float = ATOL,
              quantized_tolerance: float = QUANTIZED_TOLERANCE, recorded: Optional[Dict] = None) -> Tolerance:
  """The tolerance rule of the module docstring.

  Args:
    quantized: whether the variant is quantised (`is_quantized`).
    reference: the reference logits float32 [batch, labels]; needed for a quantised variant.
    atol: a float32 variant's tolerance.
    quantized_tolerance: a quantised variant's, as a fraction of the largest |reference logit|.
    recorded: what parity.json records for the file (its `max_abs_logit_diff`, `accuracy_drop_points`), if anything.
  """
  if not quantized:
    return Tolerance(atol, f"tolerance {atol:g}")
  if reference is None:
    raise ValueError("a quantised variant's tolerance scales with the reference logits; pass reference")
  recorded = recorded or {}
  recorded_diff = recorded.get("max_abs_logit_diff")
  limit = max(quantized_tolerance * float(np.max(np.abs(reference))), 2 * (recorded_diff or 0.0))
  if recorded_diff is None:
    rule = f"quantised, tolerance {quantized_tolerance} x max |logit| = {limit:.3g}"
  else:
    rule = (f"quantised, tolerance {limit:.3g}: the larger of {quantized_tolerance} x max |logit| and twice the "
            f"{recorded_diff:.3g} that {PARITY_FILE} records")
  if recorded.get("accuracy_drop_points") is not None:
    rule += f"; test accuracy {recorded['accuracy_drop_points']:.2f} points below Keras at export"
  return Tolerance(limit, rule)


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

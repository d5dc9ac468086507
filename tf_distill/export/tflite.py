"""TFLite export of a student SavedModel and parity checks with the `ai-edge-litert` interpreter.

Variants: `float32` (no optimisation) and `int8` (dynamic-range quantisation: int8 weights, float activations).
The files keep the `serving_default` signature, so a caller passes `input_ids`, `input_mask`, `segment_ids` of any
[batch, seq_len] and reads `logits` / `probabilities`.
"""

import dataclasses
import os
from typing import Dict

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

QUANTIZATIONS = ("float32", "int8")


def convert_saved_model(saved_model_dir: str, output_path: str, quantization: str = "float32") -> str:
  """Converts the `serving_default` signature of `saved_model_dir` to a .tflite file (written atomically)."""
  if quantization not in QUANTIZATIONS:
    raise ValueError(f"unknown quantization {quantization!r}; use one of {list(QUANTIZATIONS)}")
  converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["serving_default"])
  if quantization == "int8":
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
  flatbuffer = converter.convert()
  os.makedirs(os.path.dirname(output_path) or ".", exist_ok=True)
  tmp_path = output_path + ".tmp"
  with open(tmp_path, "wb") as f:
    f.write(flatbuffer)
  os.replace(tmp_path, output_path)
  return output_path


class TFLiteClassifier:
  """Runs the `serving_default` signature of a .tflite file with the LiteRT interpreter."""

  def __init__(self, path: str, num_threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(path):
      raise FileNotFoundError(f"TFLite file {path!r} does not exist; run scripts/export_student.sh first")
    self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
    self.runner = self.interpreter.get_signature_runner("serving_default")

  def __call__(self, features: Dict[str, np.ndarray]) -> np.ndarray:
    """Logits float32 [batch, labels] for int32 features [batch, seq]."""
    out = self.runner(**{k: np.asarray(features[k], np.int32) for k in ("input_ids", "input_mask", "segment_ids")})
    return out["logits"]


@dataclasses.dataclass(frozen=True)
class Parity:
  max_abs_logit_diff: float
  argmax_agreement: float
  num_examples: int

  def __str__(self):
    return (f"max |logit diff| {self.max_abs_logit_diff:.2e}, argmax agreement {100 * self.argmax_agreement:.2f}% "
            f"on {self.num_examples} examples")


def compare_logits(reference: np.ndarray, candidate: np.ndarray) -> Parity:
  reference, candidate = np.asarray(reference), np.asarray(candidate)
  if reference.shape != candidate.shape:
    raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
  return Parity(float(np.max(np.abs(reference - candidate))),
                float(np.mean(reference.argmax(-1) == candidate.argmax(-1))), int(reference.shape[0]))

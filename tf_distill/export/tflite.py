"""TFLite export of a student SavedModel and its interpreter (`ai-edge-litert`); parity is in parity.py.

Variants:
  float32:   no optimisation.
  int8:      dynamic-range quantisation: int8 weights, float32 activations. Needs no data.
  full_int8: full-integer quantisation: int8 weights and activations, with activation ranges calibrated on
             `representative_features` (a few hundred training examples at their real lengths, fed one at a time).
             Ops are restricted to TFLITE_BUILTINS_INT8. The inputs stay int32 ids (GATHER reads the int8 embedding
             tables with int32 indices, and the int32 shape/index arithmetic is not quantised); the mask is cast to
             float and quantised once, and logits/probabilities are dequantised to float32 at the end, so callers
             see the same interface. A BERT student converts with int8 kernels only (`float_ops` is empty). The
             converter keeps what it cannot quantise in float32 (the BiLSTM student's WHILE op and the state it
             carries between steps; the ops of the loop's body are int8), and should the INT8-only conversion fail,
             it is retried with TFLITE_BUILTINS allowed as well; `float_ops(path)` lists the float32 ops of every
             subgraph and export_student records them in parity.json.
  16x8:      int16 activations, int8 weights (TFLite's EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8),
             calibrated the same way; ops without a 16x8 kernel stay float32. About the size of full_int8, with
             256x finer activation steps.
  selective: full_int8 with the tensors that quantise worst kept in float32: the quantization debugger
             (tf.lite.experimental.QuantizationDebugger) measures each op's error on `DEBUG_EXAMPLES`
             representative examples, and every op whose RMSE exceeds `SELECTIVE_RMSE_IN_STEPS` quantisation steps
             (rmse / scale, the statistic of TensorFlow's debugger guide) is denylisted.
The files keep the `serving_default` signature (never `serving_text`: tensorflow_text ops are not TFLite builtins),
so a caller passes `input_ids`, `input_mask`, `segment_ids` of any [batch, seq_len] and reads `logits` /
`probabilities`. A reader's files (an export with `serving.UNMASKED_SIGNATURE`) are converted from that signature
and keep its name: `logits`, `start_logits`, `end_logits` with the computed logit at padding positions, which the
caller masks (a full-int8 tensor holding MASKED_LOGIT and logits of a few units in one scale loses the logits).
"""

import csv
import io
import os
from typing import Dict, Iterable, List, Optional

from absl import logging
import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf
import tensorflow_text  # noqa: F401  (tf_distill exports carry serving_text: its ops must be known to load them)


QUANTIZATIONS = ("float32", "int8")  # the variants that need no data
FULL_INT8 = "full_int8"
INT16X8 = "16x8"
SELECTIVE = "selective"
CALIBRATED = (FULL_INT8, INT16X8, SELECTIVE)  # the variants calibrated on representative examples
VARIANTS = QUANTIZATIONS + CALIBRATED
DEFAULT_VARIANTS = QUANTIZATIONS + (FULL_INT8,)
DEBUG_EXAMPLES = 50
SELECTIVE_RMSE_IN_STEPS = 0.7
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")
# Ops that only convert between float32 and int8 (or cast the int32 mask), which every full-int8 model has at
# its edges.
_BOUNDARY_OPS = ("QUANTIZE", "DEQUANTIZE", "CAST")


class ConversionError(ValueError):
  """The TFLite converter cannot produce this variant of the model (one line: the variant, why, what to use)."""


def convert_saved_model(saved_model_dir: str, output_path: str, quantization: str = "float32",
                        representative_features: Optional[Dict[str, np.ndarray]] = None) -> str:
  """Converts the `serving_default` signature of `saved_model_dir` to a .tflite file (written atomically).

  `representative_features` (int32 [n, seq] `input_ids`, `input_mask`, `segment_ids`) is required for the
  `CALIBRATED` variants and unused otherwise.
  """
  if quantization not in VARIANTS:
    raise ValueError(f"unknown quantization {quantization!r}; use one of {list(VARIANTS)}")
  signature = source_signature(saved_model_dir)
  if quantization in CALIBRATED:
    flatbuffer = _convert_calibrated(saved_model_dir, signature, quantization, representative_features)
  else:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[signature])
    if quantization == "int8":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
      flatbuffer = converter.convert()
    except Exception as e:  # pylint: disable=broad-except  (ConverterError and others, with MLIR dumps)
      raise ConversionError(f"{quantization}: the TFLite converter cannot convert this model "
                            f"({_last_line(e)})") from None
  os.makedirs(os.path.dirname(output_path) or ".", exist_ok=True)
  tmp_path = output_path + ".tmp"
  with open(tmp_path, "wb") as f:
    f.write(flatbuffer)
  os.replace(tmp_path, output_path)
  return output_path


def source_signature(saved_model_dir: str) -> str:
  """The signature a TFLite file is converted from: `serving.UNMASKED_SIGNATURE` when the export's metadata lists
  it (a reader), else serving_default."""
  from tf_distill.export import serving  # pylint: disable=import-outside-toplevel  (serving imports the tasks)
  try:
    signatures = serving.read_metadata(saved_model_dir).get("signatures", ())
  except FileNotFoundError:  # a SavedModel from elsewhere
    signatures = ()
  return serving.UNMASKED_SIGNATURE if serving.UNMASKED_SIGNATURE in signatures else "serving_default"


def _convert_calibrated(saved_model_dir: str, signature: str, quantization: str,
                        features: Optional[Dict[str, np.ndarray]]) -> bytes:
  if features is None or any(key not in features for key in FEATURE_KEYS):
    raise ValueError(f"{quantization} calibrates activation ranges on representative examples: pass "
                     f"representative_features with {list(FEATURE_KEYS)} (a few hundred training examples)")
  num_examples = len(features["input_ids"])
  if num_examples == 0:
    raise ValueError(f"{quantization} needs at least one representative example, got none")

  def representative_dataset():
    for i in range(num_examples):  # batches of 1, as the interpreter is usually run on device
      yield {key: np.asarray(features[key][i:i + 1], np.int32) for key in FEATURE_KEYS}

  def converter(supported_ops):
    result = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[signature])
    result.optimizations = [tf.lite.Optimize.DEFAULT]
    result.representative_dataset = representative_dataset
    result.target_spec.supported_ops = supported_ops
    return result

  if quantization == INT16X8:  # ops without a 16x8 kernel (the position ids' RANGE) stay as they are
    try:
      return converter([tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                        tf.lite.OpsSet.TFLITE_BUILTINS]).convert()
    except Exception as e:  # pylint: disable=broad-except  (the calibrator raises RuntimeError and others)
      raise ConversionError(f"{INT16X8}: the TFLite converter cannot quantise this model "
                            f"({_last_line(e)}); use {FULL_INT8} or {SELECTIVE}") from None
  if quantization == SELECTIVE:
    return _selective(saved_model_dir, signature,
                      converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]),
                      representative_dataset)
  try:
    return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8]).convert()
  except Exception as e:  # pylint: disable=broad-except  (the converter raises ConverterError and others)
    logging.warning("%s: some ops have no int8 kernel (%s); converting again with float32 TFLITE_BUILTINS "
                    "allowed for them", FULL_INT8, _last_line(e))
    return converter([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]).convert()


def _last_line(error: Exception) -> str:
  text = str(error).strip()
  return text.splitlines()[-1] if text else type(error).__name__


def worst_tensors(statistics: Iterable[Dict[str, str]], rmse_in_steps: float = SELECTIVE_RMSE_IN_STEPS) -> List[str]:
  """The tensors of the debugger's layer statistics (rows of its CSV dump) whose RMSE exceeds `rmse_in_steps`
  quantisation steps: sqrt(mean_squared_error) / scale > rmse_in_steps."""
  return [row["tensor_name"] for row in statistics
          if float(row["scale"]) > 0 and float(row["mean_squared_error"]) ** 0.5 / float(row["scale"]) > rmse_in_steps]


def _selective(saved_model_dir: str, signature: str, converter, representative_dataset) -> bytes:
  """full_int8 with the ops the quantization debugger finds worst (module docstring) left in float32."""
  float_model = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[signature]).convert()
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  input_names = [d["name"] for d in Interpreter(model_content=float_model).get_input_details()]
  order = [next(key for key in FEATURE_KEYS if key in name) for name in input_names]

  def debug_dataset():  # the debugger takes inputs as lists in the model's input order
    for _, example in zip(range(DEBUG_EXAMPLES), representative_dataset()):
      yield [example[key] for key in order]

  debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=debug_dataset)
  debugger.run()
  statistics = io.StringIO()
  debugger.layer_statistics_dump(statistics)
  statistics.seek(0)
  worst = worst_tensors(csv.DictReader(statistics))
  logging.info("%s: %d ops kept in float32: %s", SELECTIVE, len(worst), worst)
  selective = tf.lite.experimental.QuantizationDebugger(
      converter=converter, debug_dataset=debug_dataset,
      debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=worst))
  return selective.get_nondebug_quantized_model()


def float_ops(path: str) -> List[str]:
  """Sorted names of the ops in a .tflite file, in every subgraph (control-flow bodies too), that read or write a
  float32 tensor, leaving out the float32 <-> int8 and int32 -> float32 conversions at a quantised model's edges.
  Empty for a fully int8 model. The BiLSTM student's full_int8 file gives ["CONCATENATION", "WHILE", "ZEROS_LIKE"]:
  its loop carries the recurrent state in float32 between steps, while every op of the loop's body is int8."""
  from ai_edge_litert import schema_py_generated as schema  # pylint: disable=import-outside-toplevel
  with open(path, "rb") as f:
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(f.read(), 0))
  names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
  found = set()
  for graph in model.subgraphs:
    for op in graph.operators:
      code = model.operatorCodes[op.opcodeIndex]
      name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
      tensors = [i for i in list(op.inputs) + list(op.outputs) if i >= 0]
      if name not in _BOUNDARY_OPS and any(graph.tensors[i].type == schema.TensorType.FLOAT32 for i in tensors):
        found.add(name)
  return sorted(found)


class TFLiteClassifier:
  """Runs the `serving_default` signature of a .tflite file (a reader's: its only one, `serving_unmasked`) with the
  LiteRT interpreter; a file with neither is refused with the signatures it has."""

  def __init__(self, path: str, num_threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    if not os.path.isfile(path):
      raise FileNotFoundError(f"TFLite file {path!r} does not exist; run scripts/export_student.sh first")
    self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
    signatures = list(self.interpreter.get_signature_list())
    if "serving_default" not in signatures and len(signatures) != 1:
      raise ValueError(f"TFLite file {path!r} has no serving_default signature and not exactly one signature "
                       f"({signatures}); convert it with scripts/export_student.sh")
    self.runner = self.interpreter.get_signature_runner(
        "serving_default" if "serving_default" in signatures else signatures[0])

  def __call__(self, features: Dict[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Logits float32 [batch, labels] for int32 features [batch, seq], run `batch_size` rows at a time (the
    interpreter sizes every tensor for the batch: a QA reader's attention over 3,000 windows of 256 pieces would
    take gigabytes)."""
    starts = range(0, max(len(features["input_ids"]), 1), batch_size)
    return np.concatenate([self.runner(**{k: np.asarray(features[k][i:i + batch_size], np.int32)
                                          for k in FEATURE_KEYS})["logits"] for i in starts])

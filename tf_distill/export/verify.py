"""Checks that an exported model works before it ships: `verify_export(path) -> VerifyResult`.

The checks, in order (each one records a pass or a one-line failure; later checks are skipped when what they need
is missing):
  saved_model   `path` (a version directory, or a model directory: its highest version) holds a readable
                saved_model.pb.
  metadata      assets.extra/tf_distill.json has labels and max_seq_length, and assets.extra/vocab.txt matches its
                vocab_sha256.
  signatures    the signatures the metadata lists (serving_default, serving_text and a reader's serving_unmasked;
                exports older than the "signatures" key: serving_default) are all in saved_model.pb.
  serving_default / serving_text  inputs and outputs have the expected names, dtypes and shapes:
                input_ids/input_mask/segment_ids int32 [batch, seq] and text (text_b; a QA export's question
                and context) string [batch] ->
                the outputs of the export's task type (`TaskType.signature_outputs`, found from the head in the
                metadata's model_config): a classifier's logits/probabilities float32 [batch, num_labels].
  load          tf.saved_model.load succeeds.
  saved_model_cli  `saved_model_cli run` of serving_default on sample sentences, tokenised in Python with the
                export's vocab and lower-casing, succeeds and matches the loaded SavedModel (and likewise
                serving_text, given the raw sentences).
  text_tokenization  serving_text on the raw sentences gives the logits of serving_default on the Python
                tokenisation (`TaskType.text_parity`): the in-graph WordPiece matches tf_distill.data.tokenization.
  tflite:<file> every .tflite in the sibling `<model>_tflite/<version>/` loads, is the file export_student
                checked (its sha256 in parity.json, when recorded), and: a float32 file matches the SavedModel's
                serving_default within `atol`; a quantised one keeps the quality (accuracy, a tagger's entity F1, a
                QA reader's SQuAD F1):
                on the test examples export_student stored (parity_examples.npz) it is at most
                `max_accuracy_drop` points below the Keras student's recorded logits there
                (tf_distill.export.parity.quality_check).
Every float32 comparison (saved_model_cli, text_tokenization, float32 .tflite files) allows the same `atol`.
"""

import dataclasses
import glob
import hashlib
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.export import parity, serving
from tf_distill.export.parity import PARITY_FILE, compare_logits
from tf_distill.export.tflite import FEATURE_KEYS, TFLiteClassifier
from tf_distill.tasks import TaskType, task_type_of_export

# The last one is longer than any max_seq_length and gets truncated.
SAMPLE_TEXTS = ("a great movie", "The plot was dull, and the ending far too long...",
                "Ünïcödé café! [SEP] naïve?", "zzqx unknownword " * 40)
SAMPLE_TEXTS_B = ("it was fun", "worst film ever", "", "and so on " * 40)
TEXT_SIGNATURE = "serving_text"
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class Check:
  name: str
  ok: bool
  detail: str

  def __str__(self):
    return f"[{'ok' if self.ok else 'FAIL'}] {self.name}: {self.detail}"


@dataclasses.dataclass
class VerifyResult:
  """The checks run on one export directory, in order."""
  path: str
  checks: List[Check] = dataclasses.field(default_factory=list)

  @property
  def ok(self) -> bool:
    return all(check.ok for check in self.checks)

  @property
  def errors(self) -> List[str]:
    """One line per failed check: `<check>: <what is wrong>`."""
    return [f"{check.name}: {check.detail}" for check in self.checks if not check.ok]

  def check(self, name: str, ok: bool, detail: str) -> bool:
    self.checks.append(Check(name, bool(ok), " ".join(str(detail).split())))
    return bool(ok)

  def __str__(self):
    return "\n".join([f"verify-export {self.path}"] + [str(check) for check in self.checks])


def _first_line(error: BaseException) -> str:
  """`Type: message` on one line; for TensorFlow's long messages, the line that names the problem."""
  lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()] or [""]
  message = next((line for line in lines if "not registered" in line), lines[0])
  return f"{type(error).__name__}: {message[:300]}"


def _read_signature_defs(path: str, result: VerifyResult):
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
  pb_path = os.path.join(path, "saved_model.pb")
  if not os.path.isfile(pb_path):
    result.check("saved_model", False, f"no saved_model.pb in {path}; pass an export version directory such as "
                                       "export/student/1, or its model directory")
    return None
  proto = saved_model_pb2.SavedModel()
  try:
    with open(pb_path, "rb") as f:
      proto.ParseFromString(f.read())
  except Exception as e:  # pylint: disable=broad-except  (protobuf's DecodeError and friends)
    result.check("saved_model", False, f"{pb_path} cannot be parsed ({_first_line(e)}); the file is truncated or "
                                       "corrupt: export again")
    return None
  serve = [graph for graph in proto.meta_graphs if "serve" in graph.meta_info_def.tags]
  if not serve:
    result.check("saved_model", False, f"{pb_path} has no MetaGraph tagged 'serve'; export again")
    return None
  result.check("saved_model", True, pb_path)
  return serve[0].signature_def


def _check_metadata(path: str, result: VerifyResult) -> Optional[Dict]:
  try:
    metadata = serving.read_metadata(path)
  except (OSError, ValueError) as e:
    result.check("metadata", False, _first_line(e))
    return None
  missing = [key for key in ("labels", "max_seq_length") if key not in metadata]
  if missing:
    result.check("metadata", False, f"assets.extra/{serving.METADATA_FILE} lacks {missing}; export again")
    return None
  vocab = os.path.join(path, "assets.extra", "vocab.txt")
  if not os.path.isfile(vocab):
    result.check("metadata", False, f"no assets.extra/vocab.txt in {path}; export again")
    return None
  with open(vocab, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  if metadata.get("vocab_sha256") not in (None, digest):
    result.check("metadata", False, f"assets.extra/vocab.txt has sha256 {digest[:12]}..., the metadata says "
                                    f"{metadata['vocab_sha256'][:12]}...; the vocab was replaced after export")
    return None
  result.check("metadata", True, f"{len(metadata['labels'])} labels {metadata['labels']}, max_seq_length "
                                 f"{metadata['max_seq_length']}, do_lower_case {metadata.get('do_lower_case', True)}")
  return metadata


_DTYPE_NAMES = {dtype.as_datatype_enum: dtype.name for dtype in (tf.int32, tf.int64, tf.string, tf.float32,
                                                                   tf.float16, tf.int8)}


def _describe(tensor_info) -> str:
  dims = "?" if tensor_info.tensor_shape.unknown_rank else [d.size for d in tensor_info.tensor_shape.dim]
  return f"{_DTYPE_NAMES.get(tensor_info.dtype, f'dtype#{tensor_info.dtype}')} {dims}"


def _check_signature(name: str, signature_def, inputs: Dict[str, str], outputs: Dict[str, Tuple[str, list]],
                     result: VerifyResult) -> bool:
  """`inputs` maps each expected input to "int32" (shape [batch, seq]) or "string" (shape [batch]); `outputs` each
  expected output to its dtype and shape (None where free)."""
  expected = {"inputs": {k: (dtype, [None, None] if dtype == "int32" else [None]) for k, dtype in inputs.items()},
              "outputs": outputs}
  problems = []
  for kind, found in (("inputs", signature_def.inputs), ("outputs", signature_def.outputs)):
    if set(found) != set(expected[kind]):
      problems.append(f"{kind} are {sorted(found)}, expected {sorted(expected[kind])}")
      continue
    for tensor_name, (dtype, shape) in expected[kind].items():
      info = found[tensor_name]
      dims = [d.size for d in info.tensor_shape.dim]
      shape_ok = (not info.tensor_shape.unknown_rank and len(dims) == len(shape)
                  and all(want is None or got in (-1, want) for got, want in zip(dims, shape)))
      if _DTYPE_NAMES.get(info.dtype) != dtype or not shape_ok:
        shape_text = "[" + ", ".join("batch" if i == 0 else ("seq" if want is None else str(want))
                                     for i, want in enumerate(shape)) + "]"
        problems.append(f"{kind[:-1]} {tensor_name} is {_describe(info)}, expected {dtype} {shape_text}")
  detail = "; ".join(problems) if problems else (
      f"{', '.join(f'{k} {_describe(v)}' for k, v in sorted(signature_def.inputs.items()))} -> "
      f"{', '.join(f'{k} {_describe(v)}' for k, v in sorted(signature_def.outputs.items()))}")
  return result.check(name, not problems, detail)


def sample_inputs(metadata: Dict, vocab_file: str, texts: Sequence[str] = SAMPLE_TEXTS,
                  texts_b: Sequence[str] = SAMPLE_TEXTS_B) -> Dict:
  """Raw sample inputs of serving_text (`text`, and `text_b` for sentence-pair models; a QA export's `question` and
  `context`) and their Python encoding (int32 features [n, max_seq_length], as the export's task type encodes them:
  `TaskType.sample_inputs`), with the export's vocab and lower-casing. A sentence made of the vocab's own words is
  added, so that a small vocab sees known tokens too."""
  with open(vocab_file, encoding="utf-8") as f:
    words = [w.strip() for w in f if w.strip().isalpha() and w.strip().islower()][:12]
  texts = list(texts) + [" ".join(words) or "a"]
  texts_b = [texts_b[i] if i < len(texts_b) else " ".join(reversed(words)) for i in range(len(texts))]
  tokenizer = WordPieceTokenizer(vocab_file, do_lower_case=metadata.get("do_lower_case", True))
  raw, features = task_type_of_export(metadata).sample_inputs(texts, texts_b, metadata, tokenizer)
  return {"raw": raw, "features": features}


def tflite_dir_for(version_dir: str) -> str:
  """`<root>/<model>_tflite/<version>` for the SavedModel `<root>/<model>/<version>`."""
  version_dir = os.path.abspath(version_dir)
  model_dir, version = os.path.split(version_dir)
  return f"{model_dir}_tflite{os.sep}{version}"


def verify_export(path: str, texts: Optional[Sequence[str]] = None, run_cli: bool = True,
                  atol: float = parity.ATOL, max_accuracy_drop: float = parity.MAX_ACCURACY_DROP,
                  work_dir: Optional[str] = None) -> VerifyResult:
  """Runs the checks of the module docstring on the export at `path`; never raises for a broken export.

  Args:
    path: an export version directory (`export/student/1`) or model directory (`export/student`: latest version).
    texts: sample sentences; default `SAMPLE_TEXTS`.
    run_cli: run `saved_model_cli run` (a few seconds per signature).
    atol: tolerance of every float32 comparison: saved_model_cli, serving_text and float32 .tflite files against
      the loaded serving_default.
    max_accuracy_drop: points of test accuracy a quantised .tflite file may lose against the Keras student.
    work_dir: where saved_model_cli writes its inputs and outputs; default a temporary directory.
  """
  version_dir = serving.latest_version_dir(path)
  result = VerifyResult(version_dir)
  if not os.path.isdir(version_dir):
    result.check("saved_model", False, f"{path} is not a directory; pass an export version directory such as "
                                       "export/student/1, or its model directory")
    return result
  signature_defs = _read_signature_defs(version_dir, result)
  if signature_defs is None and not os.path.isfile(os.path.join(version_dir, "saved_model.pb")):
    return result  # not an export at all
  metadata = _check_metadata(version_dir, result)
  if signature_defs is None or metadata is None:
    return result
  expected = list(metadata.get("signatures", [DEFAULT_SIGNATURE]))
  expected = [s for s in expected if s in (DEFAULT_SIGNATURE, TEXT_SIGNATURE, serving.UNMASKED_SIGNATURE)]
  expected = expected or [DEFAULT_SIGNATURE]
  present = sorted(k for k in signature_defs if not k.startswith("__"))
  missing = [s for s in expected if s not in signature_defs]
  if not result.check("signatures", not missing,
                      f"missing {missing} (the export has {present}); export again" if missing else
                      f"{present}"):
    expected = [s for s in expected if s in signature_defs]
  task = task_type_of_export(metadata)
  outputs = task.signature_outputs(len(metadata["labels"]))
  signature_ok = {}
  if DEFAULT_SIGNATURE in expected:
    signature_ok[DEFAULT_SIGNATURE] = _check_signature(DEFAULT_SIGNATURE, signature_defs[DEFAULT_SIGNATURE],
                                                       {k: "int32" for k in FEATURE_KEYS},
                                                       outputs[DEFAULT_SIGNATURE], result)
  if TEXT_SIGNATURE in expected:
    text_inputs = {name: "string" for name in task.text_inputs(metadata)}
    signature_ok[TEXT_SIGNATURE] = _check_signature(TEXT_SIGNATURE, signature_defs[TEXT_SIGNATURE], text_inputs,
                                                    outputs[TEXT_SIGNATURE], result)
  try:
    loaded = tf.saved_model.load(version_dir)
  except Exception as e:  # pylint: disable=broad-except
    result.check("load", False, f"tf.saved_model.load failed: {_first_line(e)}")
    return result
  result.check("load", True, "tf.saved_model.load")
  vocab_file = os.path.join(version_dir, "assets.extra", "vocab.txt")
  sample = sample_inputs(metadata, vocab_file, texts or SAMPLE_TEXTS)
  reference = None
  if signature_ok.get(DEFAULT_SIGNATURE):
    try:
      reference = loaded.signatures[DEFAULT_SIGNATURE](
          **{k: tf.constant(sample["features"][k]) for k in FEATURE_KEYS})["logits"].numpy()
    except Exception as e:  # pylint: disable=broad-except
      result.check("serving_default run", False, _first_line(e))
  if reference is not None and run_cli:
    _check_cli(version_dir, sample, reference, signature_ok.get(TEXT_SIGNATURE, False), atol, work_dir, task,
               result)
  if reference is not None and signature_ok.get(TEXT_SIGNATURE):
    try:
      text_outputs = loaded.signatures[TEXT_SIGNATURE](**{k: tf.constant(v) for k, v in sample["raw"].items()})
      figures = compare_logits(*task.text_parity({k: v.numpy() for k, v in text_outputs.items()},
                                                 sample["features"], reference))
      ok = parity.tolerance(atol=atol).allows(figures)
      result.check("text_tokenization", ok,
                   f"serving_text on raw text vs serving_default on Python WordPiece ids: {figures}"
                   + ("" if ok else f" (> {atol}: the in-graph tokenisation differs from tf_distill.data.tokenization)"))
    except Exception as e:  # pylint: disable=broad-except
      result.check("text_tokenization", False, f"serving_text failed: {_first_line(e)}")
  if reference is not None:
    _check_tflite(version_dir, sample["features"], reference, atol, max_accuracy_drop, task, metadata["labels"],
                  result)
  return result


def _check_cli(version_dir: str, sample: Dict, reference: np.ndarray, with_text: bool, atol: float,
               work_dir: Optional[str], task: TaskType, result: VerifyResult) -> None:
  features = sample["features"]
  runs = [(DEFAULT_SIGNATURE, {k: features[k] for k in FEATURE_KEYS})]
  if with_text and not any(";" in t for texts in sample["raw"].values() for t in texts):
    runs.append((TEXT_SIGNATURE, sample["raw"]))
  with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
    for signature, inputs in runs:
      name = f"saved_model_cli {signature}"
      try:
        outputs = serving.run_saved_model_cli(version_dir, inputs, os.path.join(tmp, signature), signature)
      except Exception as e:  # pylint: disable=broad-except
        result.check(name, False, _first_line(e))
        continue
      try:
        figures = (compare_logits(task.scored(reference, features), task.scored(outputs["logits"], features))
                   if signature == DEFAULT_SIGNATURE else compare_logits(*task.text_parity(outputs, features,
                                                                                           reference)))
      except KeyError as e:
        result.check(name, False, f"saved_model_cli returned {sorted(outputs)}, no {e}")
        continue
      ok = parity.tolerance(atol=atol).allows(figures)
      result.check(name, ok, f"vs the loaded serving_default: {figures}" + ("" if ok else f" (> {atol})"))


def _check_tflite(version_dir: str, features: Dict[str, np.ndarray], reference: np.ndarray, atol: float,
                  max_accuracy_drop: float, task: TaskType, labels: Sequence[str], result: VerifyResult) -> None:
  tflite_dir = tflite_dir_for(version_dir)
  if not os.path.isdir(tflite_dir):
    result.check("tflite", True, f"no {tflite_dir}; nothing to compare")
    return
  paths = sorted(glob.glob(os.path.join(tflite_dir, "*.tflite")))
  if not paths:
    result.check("tflite", False, f"{tflite_dir} holds no .tflite file; export again with --tflite=...")
    return
  parity_report = parity.read_report(tflite_dir)
  examples = parity.read_examples(tflite_dir)
  for path in paths:
    file_name = os.path.basename(path)
    name = f"tflite:{file_name}"
    quantized = parity.is_quantized(file_name)
    try:
      model = TFLiteClassifier(path)
      figures = compare_logits(task.scored(reference, features), task.scored(model(features), features))
      logits = model(examples) if quantized and examples is not None else None
    except Exception as e:  # pylint: disable=broad-except
      result.check(name, False, f"{path} does not run ({_first_line(e)}); the file is truncated, corrupt or not "
                                "from this model: export again")
      continue
    recorded = parity_report.get(file_name[:-len(".tflite")], {})
    if recorded.get("sha256") not in (None, serving.file_sha256(path)):
      result.check(name, False, f"{file_name} is not the file export_student checked (its sha256 differs from "
                                f"{PARITY_FILE}; vs SavedModel: {figures}): it was replaced, export again")
      continue
    if not quantized:
      ok = parity.tolerance(atol).allows(figures)
      result.check(name, ok, f"vs SavedModel: {figures} (tolerance {atol:g})" + (
          "" if ok else f"; {file_name} does not compute this model: a file of another model or version. Export "
                        "again"))
    elif examples is None:
      result.check(name, False, f"{parity.EXAMPLES_FILE} is missing from {tflite_dir}, so the accuracy of this "
                                "quantised file cannot be checked: export again with export_student")
    else:
      keras_logits = examples["keras_logits"]
      agreement = compare_logits(task.scored(keras_logits, examples), task.scored(logits, examples)).argmax_agreement
      check = parity.quality_check(task.quality(logits, examples, labels), task.quality(keras_logits, examples, labels),
                                   agreement, max_accuracy_drop, task.metric_title)
      result.check(name, check.ok, f"on the {len(logits)} test examples of {parity.EXAMPLES_FILE}: {check}" + (
          "" if check.ok else f"; {file_name} loses too much accuracy to ship: export again with another "
                              "quantisation (--tflite=16x8 or selective)"))

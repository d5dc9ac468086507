"""SavedModel export in TF Serving layout: `<export_root>/<model_name>/<version>/`.

Signatures (inputs int32 [batch, seq_len], seq_len free up to `max_seq_length` in the metadata):
  serving_default: input_ids, input_mask, segment_ids -> logits [batch, labels], probabilities [batch, labels]
                   (a tagger's: [batch, seq, tags]; a span model's: [batch, 2, seq] plus start_logits and
                   end_logits [batch, seq], its task type's `serving_outputs`)
  distill (teachers): the same inputs -> logits, probabilities, embeddings [batch, seq, hidden],
                      hidden_states [layers, batch, seq, hidden], attention_scores / attention_probs
                      [layers, batch, heads, seq, seq], attention_queries / attention_keys / attention_values
                      [layers, batch, seq, hidden] (heads concatenated)
  serving_text: text string [batch] (and text_b string [batch] when the metadata has "text_pairs": true)
                -> logits, probabilities (a tagger: words, tags, word_logits; a reader: question and context in,
                the answer out; its task type's `text_signature`);
                WordPiece tokenisation in the graph (see text_signature.py), the vocab
                is the SavedModel asset `assets/vocab.txt`. Loading needs the tensorflow_text ops: this module
                imports tensorflow_text, so import it (or tensorflow_text) before `tf.saved_model.load`.
  serving_unmasked (models whose head gives padding MASKED_LOGIT, the span head): serving_default's logits,
                start_logits and end_logits with the computed logit at padding positions instead, and no
                probabilities. The TFLite files are converted from it (`tflite.convert_saved_model`): full int8 has
                one scale per tensor, and -10000 beside logits of a few units would leave those a step or two of it.
                Real positions are serving_default's.

`assets.extra/` (TF Serving's folder for files it does not load) carries `tf_distill.json` (labels, max_seq_length,
vocab hash, BERT config) and the `vocab.txt` the model was trained with. A version directory is written under a
temporary name, reloaded and checked, then renamed, so a partial export never appears under a version number.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Dict, Optional

import tf_distill  # noqa: F401
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops of serving_text, needed to load any export)

from tf_distill.bert import BertClassifier, input_signature, logits_layout
from tf_distill.export import text_signature
from tf_distill.tasks import task_type_for_head

METADATA_FILE = "tf_distill.json"
UNMASKED_SIGNATURE = "serving_unmasked"  # what TFLite files are converted from, when an export has it
DISTILL_OUTPUTS = ("logits", "probabilities", "embeddings", "hidden_states", "attention_scores", "attention_probs",
                   "attention_queries", "attention_keys", "attention_values")
SERVING_OUTPUTS = ("logits", "probabilities")


def file_sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def next_version(model_dir: str) -> int:
  """1 + the largest integer version directory in `model_dir` (1 when there is none)."""
  versions = [int(d) for d in os.listdir(model_dir) if re.fullmatch(r"\d+", d)] if os.path.isdir(model_dir) else []
  return max(versions, default=0) + 1


class _ClassifierModule(tf.Module):
  """Holds the Keras model and its signatures; only the model's variables are saved."""

  def __init__(self, model: BertClassifier):
    super().__init__()
    self.model = model

  @tf.function(input_signature=[input_signature()])
  def serve(self, inputs):
    logits = self.model(inputs, training=False, logits_only=True)["logits"]
    return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1),
            **task_type_for_head(getattr(self.model.config, "head", "pooled")).serving_outputs(logits)}

  @tf.function(input_signature=[input_signature()])
  def distill(self, inputs):
    out = self.model(inputs, training=False)
    stacked = {k: tf.stack(out[k]) for k in DISTILL_OUTPUTS if isinstance(out.get(k), list)}
    return {"logits": out["logits"], "probabilities": tf.nn.softmax(out["logits"], axis=-1),
            **{k: out[k] for k in ("embeddings",) if k in out}, **stacked}


def export_classifier(model: BertClassifier, export_root: str, model_name: str, metadata: Dict, vocab_file: str,
                      with_distill_signature: bool, version: Optional[int] = None) -> str:
  """Writes `model` as `<export_root>/<model_name>/<version>/` and returns that path.

  `metadata` must hold `labels` and `max_seq_length`; the vocab hash and BERT config are added here.
  """
  model_dir = os.path.join(export_root, model_name)
  os.makedirs(model_dir, exist_ok=True)
  version = next_version(model_dir) if version is None else version
  final_dir = os.path.join(model_dir, str(version))
  if os.path.exists(final_dir):
    raise FileExistsError(f"{final_dir} already exists; versions are never overwritten. Pick a new --version or "
                          "leave it unset to take the next free one")
  if not os.path.isfile(vocab_file):
    raise FileNotFoundError(f"vocab file {vocab_file!r} does not exist; the export ships the vocab the model was "
                            "trained with")
  tmp_dir = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
  shutil.rmtree(tmp_dir, ignore_errors=True)
  try:
    _write_export(model, tmp_dir, model_name, version, metadata, vocab_file, with_distill_signature)
    os.rename(tmp_dir, final_dir)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  return final_dir


def _write_export(model: BertClassifier, tmp_dir: str, model_name: str, version: int, metadata: Dict,
                  vocab_file: str, with_distill_signature: bool) -> None:
  module = _ClassifierModule(model)
  signatures = {"serving_default": module.serve.get_concrete_function()}
  if with_distill_signature:
    signatures["distill"] = module.distill.get_concrete_function()
  head = getattr(model.config, "head", "pooled")
  if logits_layout(head).padding_logit != 0.0:  # a BERT span model: the only one that masks padding

    @tf.function(input_signature=[input_signature()])
    def serve_unmasked(inputs):
      logits = model(inputs, training=False, logits_only=True, mask_padding=False)["logits"]
      return {"logits": logits, **task_type_for_head(head).serving_outputs(logits)}

    signatures[UNMASKED_SIGNATURE] = serve_unmasked.get_concrete_function()
  do_lower_case, text_pairs = metadata.get("do_lower_case", True), metadata.get("text_pairs", False)
  with tempfile.TemporaryDirectory() as vocab_dir:  # saved into assets/, so the export is self-contained
    module.text_encoder = text_signature.TextEncoder(
        text_signature.write_asset_vocab(vocab_file, os.path.join(vocab_dir, "vocab.txt")), do_lower_case,
        metadata["max_seq_length"])
    task_type = task_type_for_head(getattr(model.config, "head", "pooled"))
    text_function = task_type.text_signature(module.serve, module.text_encoder, metadata)
    if text_function is not None:
      signatures["serving_text"] = text_function
    tf.saved_model.save(module, tmp_dir, signatures=signatures)
  extra = os.path.join(tmp_dir, "assets.extra")
  os.makedirs(extra, exist_ok=True)
  shutil.copyfile(vocab_file, os.path.join(extra, "vocab.txt"))
  metadata = {**metadata, "num_labels": len(metadata["labels"]), "vocab_sha256": file_sha256(vocab_file),
              "model_type": model.config.model_type, "model_config": model.config.to_dict(),
              "model_name": model_name, "version": version,
              "do_lower_case": do_lower_case, "text_pairs": text_pairs, "signatures": sorted(signatures)}
  with open(os.path.join(extra, METADATA_FILE), "w", encoding="utf-8") as f:
    json.dump(metadata, f, indent=2, sort_keys=True)
  _check_export(tmp_dir, signatures)


def _check_export(path: str, signatures: Dict) -> None:
  loaded = tf.saved_model.load(path)
  missing = set(signatures) - set(loaded.signatures)
  if missing:
    raise RuntimeError(f"export at {path} lost signatures {sorted(missing)}; the export is incomplete")


def read_metadata(saved_model_dir: str) -> Dict:
  path = os.path.join(saved_model_dir, "assets.extra", METADATA_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{saved_model_dir} has no assets.extra/{METADATA_FILE}; it was not exported by "
                            "tf_distill (use scripts/export_teacher.sh or scripts/export_student.sh)")
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def latest_version_dir(path: str) -> str:
  """`path` itself when it is a SavedModel, else its highest integer version subdirectory."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  if os.path.isdir(path):
    versions = [int(d) for d in os.listdir(path) if re.fullmatch(r"\d+", d)]
    if versions:
      return os.path.join(path, str(max(versions)))
  return path


# `saved_model_cli` itself, run after importing tensorflow_text: the stock command cannot load an export whose
# serving_text signature uses tensorflow_text ops (it fails with "Op type not registered 'RegexSplitWithOffsets'").
SAVED_MODEL_CLI_WITH_TEXT_OPS = ("import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli; "
                                 "sys.argv[0] = 'saved_model_cli'; sys.exit(saved_model_cli.main())")


def saved_model_cli_command() -> list:
  """argv prefix that runs `saved_model_cli` with the tensorflow_text ops registered; append e.g. `run --dir ...`."""
  import sys  # pylint: disable=import-outside-toplevel
  return [sys.executable, "-c", SAVED_MODEL_CLI_WITH_TEXT_OPS]


def run_saved_model_cli(saved_model_dir: str, features: Dict, work_dir: str,
                        signature: str = "serving_default") -> Dict:
  """Runs `signature` through the real `saved_model_cli run` and returns its outputs as numpy arrays.

  For serving_default, `features` holds int32 arrays [batch, seq] (other keys, e.g. label_ids, are not passed);
  they are passed as .npy files. For serving_text, it holds the signature's inputs, lists of strings (`text`, maybe
  `text_b`; a QA export's `question` and `context`), passed as --input_exprs (which cannot hold ";"). The outputs
  are read back from --outdir.
  """
  import subprocess  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  os.makedirs(work_dir, exist_ok=True)
  inputs, exprs = [], []
  for key, value in features.items():
    if signature == "serving_default" and key not in ("input_ids", "input_mask", "segment_ids"):
      continue  # e.g. label_ids
    if isinstance(value, (list, tuple)) or np.asarray(value).dtype.kind in "OSU":
      texts = [str(v.decode("utf-8") if isinstance(v, bytes) else v) for v in value]
      if any(";" in t for t in texts):
        raise ValueError(f"saved_model_cli --input_exprs splits on ';'; {key} must not contain it, got {texts}")
      exprs.append(f"{key}={texts!r}")
    else:
      path = os.path.join(work_dir, f"{key}.npy")
      np.save(path, np.asarray(value, np.int32))
      inputs.append(f"{key}={path}")
  outdir = os.path.join(work_dir, "outputs")
  command = saved_model_cli_command() + ["run", "--dir", saved_model_dir, "--tag_set", "serve", "--signature_def",
                                         signature, "--outdir", outdir, "--overwrite"]
  if inputs:
    command += ["--inputs", ";".join(inputs)]
  if exprs:
    command += ["--input_exprs", ";".join(exprs)]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"saved_model_cli run failed on {saved_model_dir}:\n{result.stderr[-2000:]}")
  # allow_pickle: string outputs (a tagger's words and tags) are object arrays, in files saved_model_cli just wrote.
  return {name[:-len(".npy")]: np.load(os.path.join(outdir, name), allow_pickle=True) for name in os.listdir(outdir)}

"""The on-disk layout of a teacher cache, its `manifest.json`, and the checks before a cache is read.

A cache is a directory of sharded TFRecords plus `manifest.json`:

  part-00000-of-00004.tfrecord ...   one tf.train.Example per training example:
      index   int64          position of the example in the training features (the join key)
      length  int64          real token count (sum of input_mask)
      logits  float32 [labels]  raw, before any temperature (T is applied at train time); a tagger's
              per-token logits are a "sequence" output, float16 [len, labels], and so are a span model's
              [2, len] logits, stored sequence axis first as [len, 2] (`sequence_layouts` below)
      <intermediate>  bytes  float16, trimmed to the example's real length, in the per-example layout below
  manifest.json  the key fields, outputs, their kinds, layers, dtypes, per-example shapes, shard list,
                 num_examples, the teacher's labels/num_labels/bert_config, created; for per-position logits and
                 probabilities, `sequence_layouts` {name: {"axis": a, "padding": v}}: the axis of the batched
                 output that runs over the sequence (1 for a tagger, 2 for a span model's [batch, 2, seq]) and the
                 value of positions past an example's length (0, or the span head's MASKED_LOGIT for its logits);
                 absent in caches from before span models: axis 1, padding 0

Per-example layouts on disk (len = the example's real length, L = the stored layers in `manifest["layers"]` order):

  logits, probabilities:                          float32 [labels]; a tagger's: float16 [len, labels]
  embeddings:                                     float16 [len, hidden]
  hidden_states, attention_queries/keys/values:   float16 [len, L, hidden]
  attention_scores, attention_probs:              float16 [len, len, L, heads]

The manifest is written last and the directory is renamed into place, so a directory without a manifest is an
interrupted build and is refused.
"""

import json
import os
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from tf_distill.data.tokenization import FEATURE_KEYS
from tf_distill.teacher_cache.errors import CacheError
from tf_distill.teacher_cache.key import CacheKey

MANIFEST_FILE = "manifest.json"

# Output name -> kind. "example": float32 per example; the others are float16 and variable-length.
KINDS = {
    "logits": "example",
    "probabilities": "example",
    "embeddings": "sequence",
    "hidden_states": "layer_sequence",
    "attention_queries": "layer_sequence",
    "attention_keys": "layer_sequence",
    "attention_values": "layer_sequence",
    "attention_scores": "layer_attention",
    "attention_probs": "layer_attention",
}
PER_LAYER = ("layer_sequence", "layer_attention")


DEFAULT_SEQUENCE_LAYOUT = {"axis": 1, "padding": 0.0}


def sequence_layout(manifest: Mapping, name: str) -> Dict:
  """{"axis", "padding"} of a "sequence" output `name` that is per-position logits or probabilities (module
  docstring); the tagger's layout for caches that do not say."""
  return dict(manifest.get("sequence_layouts", {}).get(name, DEFAULT_SEQUENCE_LAYOUT))


def output_kind(name: str, batched_rank: int) -> str:
  """The kind of output `name` whose batched value has rank `batched_rank`: its `KINDS` entry, except that a
  tagger's logits and probabilities ([batch, seq, labels], one row per position) are a "sequence"."""
  kind = KINDS[name]
  return "sequence" if kind == "example" and batched_rank == 3 else kind


def manifest_kinds(manifest: Mapping) -> Dict[str, str]:
  """Output name -> kind of a cache: the manifest's "kinds" (written since per-token logits), else `KINDS`."""
  return {name: manifest.get("kinds", {}).get(name, KINDS[name]) for name in manifest.get("outputs", [])}


def is_per_layer(name: str) -> bool:
  """True for the outputs stored per teacher layer (hidden_states, attention_*)."""
  return KINDS[name] in PER_LAYER


def ragged_dims(kind: str) -> int:
  """How many leading per-example axes of an output of `kind` have the example's real length: 0, 1, or 2 for
  attention maps."""
  return {"example": 0, "layer_attention": 2}.get(kind, 1)


def check_outputs(outputs: Sequence[str]) -> Tuple[str, ...]:
  """`outputs` as a tuple; CacheError when it is empty, repeats a name or names an output that cannot be cached."""
  outputs = tuple(outputs)
  if not outputs:
    raise CacheError("outputs is empty; cache at least ('logits',)")
  unknown = [name for name in outputs if name not in KINDS]
  if unknown:
    raise CacheError(f"unknown teacher outputs {unknown}; cacheable outputs are {sorted(KINDS)}")
  if len(set(outputs)) != len(outputs):
    raise CacheError(f"outputs lists a name twice: {list(outputs)}")
  return outputs


def check_features(features: Mapping[str, np.ndarray]) -> int:
  """The number of examples in the tokenised training `features`; CacheError when they are not [n, seq] each."""
  missing = [key for key in FEATURE_KEYS if key not in features]
  if missing:
    raise CacheError(f"features lack {missing}; pass the tokenised training features (WordPieceTokenizer.encode)")
  shapes = {key: np.shape(features[key]) for key in FEATURE_KEYS}
  if len(set(shapes.values())) != 1 or len(shapes["input_ids"]) != 2:
    raise CacheError(f"features must all be [num_examples, max_seq_length]; got shapes {shapes}")
  if shapes["input_ids"][0] == 0:
    raise CacheError("features hold no examples; check the training split")
  return shapes["input_ids"][0]


def describe_teacher(teacher) -> Optional[Dict]:
  """{"labels", "num_labels", "bert_config"} of a `SavedModelTeacher` (None for a teacher without them), as the
  manifest stores them so a cache opened without its teacher can still describe it."""
  if teacher is None or not all(hasattr(teacher, name) for name in ("labels", "num_labels", "bert_config")):
    return None
  return {"labels": list(teacher.labels), "num_labels": int(teacher.num_labels),
          "bert_config": dict(teacher.bert_config)}


def read_manifest(cache_dir: str) -> Dict:
  """The manifest of `cache_dir`; CacheError when the cache is missing or was never finished."""
  if not os.path.isdir(cache_dir):
    raise CacheError(f"no teacher cache at {cache_dir}", "build one with --teacher_cache=build (or auto)")
  path = os.path.join(cache_dir, MANIFEST_FILE)
  if not os.path.isfile(path):
    raise CacheError(f"incomplete teacher cache at {cache_dir}: no {MANIFEST_FILE} (an interrupted build?); "
                     f"found {sorted(os.listdir(cache_dir))[:5]}", "rebuild it with --teacher_cache=build")
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise CacheError(f"corrupt {path}: {e}", "rebuild the cache with --teacher_cache=build") from e


def check_manifest(manifest: Mapping, cache_dir: str, expected_key: CacheKey, outputs: Sequence[str],
                   layers: Optional[Sequence[int]] = None) -> None:
  """Raises CacheError naming every reason the cache in `cache_dir` cannot serve `expected_key` and `outputs`."""
  outputs = check_outputs(outputs)
  problems = expected_key.differences(manifest.get("key_fields", {}))
  missing = [name for name in outputs if name not in manifest.get("outputs", [])]
  if missing:
    problems.append(f"missing outputs {missing}: the cache holds {manifest.get('outputs')}")
  if layers is not None and any(is_per_layer(name) for name in outputs):
    absent = [layer for layer in layers if layer not in (manifest.get("layers") or [])]
    if absent:
      problems.append(f"missing teacher layers {absent}: the cache holds layers {manifest.get('layers')}")
  for shard in manifest.get("shards", []):
    path = os.path.join(cache_dir, shard["file"])
    if not os.path.isfile(path):
      problems.append(f"incomplete cache: shard {shard['file']} is missing")
    elif os.path.getsize(path) != shard["bytes"]:
      problems.append(f"incomplete cache: shard {shard['file']} has {os.path.getsize(path)} bytes, the manifest "
                      f"says {shard['bytes']}")
  if problems:
    raise CacheError(f"teacher cache at {cache_dir} cannot be used: " + "; ".join(problems),
                     "rebuild it with --teacher_cache=build (auto rebuilds by itself)")

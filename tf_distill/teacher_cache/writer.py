"""`build_cache`: queries the teacher once on every training example and writes the cache (layout: manifest.py)."""

import dataclasses
import datetime
import json
import os
import shutil
import time
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import logits_layout
from tf_distill.data.tokenization import FEATURE_KEYS
from tf_distill.teacher_cache.key import CacheKey
from tf_distill.teacher_cache.errors import FORMAT_VERSION, CacheError
from tf_distill.teacher_cache.manifest import (MANIFEST_FILE, check_features, check_outputs, describe_teacher,
                                               is_per_layer, output_kind, ragged_dims)


def teacher_sequence_layouts(teacher, outputs: Sequence[str]) -> Dict[str, Dict]:
  """{"axis", "padding"} of the teacher's per-position logits and probabilities (`manifest.sequence_layouts`), from
  the head in its bert_config (`tf_distill.bert.logits_layout`): the tagger's axis 1 when it has no head or no
  config, or none at all."""
  try:
    head = dict(teacher.bert_config).get("head")
  except (AttributeError, ValueError):  # a teacher without metadata (TeacherError, CacheError are ValueErrors)
    head = None
  layout = logits_layout(head)
  axis = layout.sequence_axis or 1
  return {name: {"axis": axis, "padding": layout.padding_logit if name == "logits" else 0.0}
          for name in outputs if name in ("logits", "probabilities")}


def build_cache(teacher: Callable, features: Mapping[str, np.ndarray], cache_dir: str, key: CacheKey,
                outputs: Sequence[str] = ("logits",), layers: Optional[Sequence[int]] = None, batch_size: int = 64,
                num_shards: int = 4) -> Dict:
  """Queries `teacher` on every example of `features` and writes the cache to `cache_dir`; returns the manifest.

  `teacher(features, outputs=...)` is a `SavedModelTeacher` (or anything with its call signature) that provides
  `outputs`; `layers` picks teacher layers for the per-layer outputs (None: all). Examples are sent in order of
  length with per-batch padding trimmed, so the build costs about one length-bucketed online epoch of teacher
  forwards. The cache is written to a temporary directory and renamed over `cache_dir` at the end. The teacher's
  `labels`, `num_labels` and `bert_config` (when it has them) go into the manifest.
  """
  outputs = check_outputs(outputs)
  num_examples = check_features(features)
  if batch_size < 1:
    raise CacheError(f"batch_size must be >= 1, got {batch_size}")
  if num_shards < 1:
    raise CacheError(f"num_shards must be >= 1, got {num_shards}")
  if layers is not None:
    layers = [int(layer) for layer in layers]
    if not layers or min(layers) < 0:
      raise CacheError(f"layers must be non-empty teacher layer indices >= 0, got {layers}")
  _check_teacher(teacher, outputs)
  start = time.time()
  lengths = np.maximum(np.asarray(features["input_mask"]).sum(axis=1), 1).astype(np.int64)
  order = np.argsort(lengths, kind="stable")
  cache_dir = os.path.abspath(cache_dir)
  parent = os.path.dirname(cache_dir)
  os.makedirs(parent, exist_ok=True)
  tmp_dir = os.path.join(parent, f".{os.path.basename(cache_dir)}.tmp-{os.getpid()}")
  shutil.rmtree(tmp_dir, ignore_errors=True)
  os.makedirs(tmp_dir)
  # Traced once for any [batch, width]: inside a tf.function the teacher's signature call is inlined and the outputs
  # not asked for are pruned (an eager call of the `distill` signature computes and stacks all of them).
  spec = {k: tf.TensorSpec([None, None], tf.int32) for k in FEATURE_KEYS}
  query = tf.function(lambda batch: teacher(batch, outputs=outputs), input_signature=[spec], autograph=False)
  shard_names = [f"part-{s:05d}-of-{num_shards:05d}.tfrecord" for s in range(num_shards)]
  counts = [0] * num_shards
  shapes, dtypes, kinds = {}, {}, {}
  layouts = teacher_sequence_layouts(teacher, outputs)
  try:
    writers = [tf.io.TFRecordWriter(os.path.join(tmp_dir, name)) for name in shard_names]
    try:
      for batch_number, begin in enumerate(range(0, num_examples, batch_size)):
        rows = order[begin:begin + batch_size]
        width = int(lengths[rows].max())
        batch = {k: tf.constant(np.asarray(features[k])[rows, :width], tf.int32) for k in FEATURE_KEYS}
        result = _query(query, batch, outputs)
        kinds = {name: output_kind(name, result[name].ndim) for name in outputs}
        for i, row in enumerate(rows):
          record = {"index": _int64(int(row)), "length": _int64(int(lengths[row]))}
          for name in outputs:
            value = _per_example(kinds[name], result[name], i, int(lengths[row]), layers,
                                 layouts.get(name, {}).get("axis", 1))
            if kinds[name] == "example":
              value = value.astype(np.float32)
              record[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value.reshape(-1)))
              shapes[name] = list(value.shape)
            else:
              value = _to_float16(name, value)
              record[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.tobytes()]))
              ragged = ragged_dims(kinds[name])
              shapes[name] = ["len"] * ragged + list(value.shape[ragged:])
            dtypes[name] = value.dtype.name
          shard = batch_number % num_shards
          writers[shard].write(tf.train.Example(features=tf.train.Features(feature=record)).SerializeToString())
          counts[shard] += 1
    finally:
      for writer in writers:
        writer.close()
    num_layers = next((result[name].shape[0] for name in outputs if is_per_layer(name)), None)
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key.digest,
        "key_fields": dataclasses.asdict(key),
        "outputs": list(outputs),
        "kinds": kinds,
        "sequence_layouts": {name: layout for name, layout in layouts.items() if kinds.get(name) == "sequence"},
        "layers": layers if layers is not None else (list(range(int(num_layers))) if num_layers else None),
        "dtypes": dtypes,
        "shapes": shapes,
        "num_examples": int(num_examples),
        "max_seq_length": int(np.shape(features["input_ids"])[1]),
        "teacher": describe_teacher(teacher),
        "shards": [{"file": name, "num_records": count,
                    "bytes": os.path.getsize(os.path.join(tmp_dir, name))} for name, count in zip(shard_names, counts)],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.time() - start, 3),
    }
    with open(os.path.join(tmp_dir, MANIFEST_FILE), "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=2, sort_keys=True)
    _replace_dir(tmp_dir, cache_dir)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)
  return manifest


def _per_example(kind: str, value: np.ndarray, i: int, length: int, layers: Optional[Sequence[int]],
                 sequence_axis: int = 1) -> np.ndarray:
  """Example i of a batched teacher output of `kind` (per-layer outputs stacked on a leading layer axis), trimmed to
  `length`, in the on-disk layout of manifest.py; a "sequence" output's batched `sequence_axis` comes first
  ([batch, 2, seq] span logits -> [len, 2])."""
  if kind == "example":
    return value[i]
  if kind == "sequence":
    return np.moveaxis(value[i], sequence_axis - 1, 0)[:length]
  if layers is not None:
    value = value[list(layers)]
  if kind == "layer_sequence":                       # [L, b, s, h] -> [len, L, h]
    return np.transpose(value[:, i, :length], (1, 0, 2))
  return np.transpose(value[:, i, :, :length, :length], (2, 3, 0, 1))  # [L, b, H, s, s] -> [len, len, L, H]


def _to_float16(name: str, x: np.ndarray) -> np.ndarray:
  half = x.astype(np.float16)
  if not np.all(np.isfinite(half)) and np.all(np.isfinite(x)):
    raise CacheError(f"teacher output {name!r} has values beyond the float16 range (max |x| = "
                     f"{float(np.max(np.abs(x))):.4g} > 65504); it cannot be cached in float16")
  return half


def _check_teacher(teacher, outputs: Tuple[str, ...]) -> None:
  """CacheError before any work when a teacher source (one with `available_outputs`) cannot serve `outputs`."""
  available = getattr(teacher, "available_outputs", None)
  missing = [name for name in outputs if available is not None and name not in available]
  if missing:
    raise CacheError(f"the teacher ({teacher}) does not provide output {', '.join(map(repr, missing))} (it has "
                     f"{sorted(available)}); pass a teacher export with a distill signature "
                     "(scripts/export_teacher.sh writes one)")


def _query(query: Callable, batch: Dict[str, tf.Tensor], outputs: Tuple[str, ...]) -> Dict[str, np.ndarray]:
  try:
    result = query(batch)
  except KeyError as e:
    raise CacheError(f"the teacher does not provide output {e}; load it with "
                     f"SavedModelTeacher(path, required_outputs={list(outputs)}) so it uses the distill "
                     "signature") from e
  missing = [name for name in outputs if name not in result]
  if missing:
    raise CacheError(f"the teacher returned {sorted(result)} but the cache needs {missing}")
  # Per-layer outputs come as lists over layers (the TeacherSource layout); stacked here to [layers, batch, ...].
  return {name: np.stack([np.asarray(v) for v in result[name]]) if isinstance(result[name], (list, tuple))
          else np.asarray(result[name]) for name in outputs}


def _int64(value: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def _replace_dir(src: str, dst: str) -> None:
  """Renames `src` to `dst`, replacing an existing `dst` (the old one is moved aside first, then removed)."""
  old = None
  if os.path.lexists(dst):
    old = f"{dst}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(dst, old)
  os.rename(src, dst)
  if old:
    shutil.rmtree(old, ignore_errors=True)

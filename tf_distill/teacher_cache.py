"""Teacher-output cache: query the teacher once, then train later epochs on the student alone.

`--teacher_cache=off|build|use|auto`. A cache is a directory of sharded TFRecords plus `manifest.json`:

  part-00000-of-00004.tfrecord ...   one tf.train.Example per training example:
      index   int64          position of the example in the training features (the join key)
      length  int64          real token count (sum of input_mask)
      logits  float32 [labels]  raw, before any temperature (T is applied at train time)
      <intermediate>  bytes  float16, trimmed to the example's real length, in the per-example layout below
  manifest.json  the key fields, outputs, layers, dtypes, per-example shapes, shard list, num_examples, created

The manifest is written last and the directory is renamed into place, so a directory without a manifest is an
interrupted build and is refused. A cache is keyed by the teacher SavedModel (sha256 over saved_model.pb and
variables/), the vocab, max_seq_length, a fingerprint of the tokenised training features and the augmentation seed;
`open_cache` names every field that differs. The stored outputs only need to cover the requested ones.

Per-example layouts on disk (len = the example's real length) and what `TeacherCache.__call__` returns (the
layouts of the teacher's `distill` signature, so a loss cannot tell a cached teacher from an online one):

  logits, probabilities:           float32 [labels]                -> float32 [batch, labels]
  embeddings:                      float16 [len, hidden]           -> float32 [batch, seq, hidden]
  hidden_states, attention_queries/keys/values:
                                   float16 [len, layers, hidden]   -> float32 [layers, batch, seq, hidden]
  attention_scores, attention_probs:
                                   float16 [len, len, layers, heads] -> float32 [layers, batch, heads, seq, seq]

Positions at or beyond an example's real length come back as 0 (online, padded positions carry values that the
masked losses ignore; attention_probs towards padding is ~0 online too).
"""

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

MODES = ("off", "build", "use", "auto")
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")
INDEX_KEY = "example_index"

# Output name -> kind. "example": float32 per example; the others are float16 and variable-length.
_KINDS = {
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
_PER_LAYER = ("layer_sequence", "layer_attention")


class CacheError(ValueError):
  """A teacher cache is missing, incomplete, or does not match this run."""


@dataclasses.dataclass(frozen=True)
class CacheKey:
  """What the cached teacher outputs depend on. `digest` is the hex key stored in the manifest."""
  teacher_sha256: str
  vocab_sha256: str
  max_seq_length: int
  data_fingerprint: str
  seed: int
  format_version: int = FORMAT_VERSION

  @property
  def digest(self) -> str:
    payload = json.dumps(dataclasses.asdict(self), sort_keys=True).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()

  def __str__(self) -> str:
    return self.digest

  def differences(self, stored: Mapping) -> List[str]:
    """Human-readable reasons why a cache built under `stored` (a manifest's key fields) cannot serve this key."""
    reasons = {
        "teacher_sha256": "teacher changed (the teacher SavedModel's saved_model.pb/variables hash differs)",
        "vocab_sha256": "vocab changed (the vocab file's sha256 differs)",
        "max_seq_length": "max_seq_length differs",
        "data_fingerprint": "training data changed (the tokenised training features differ)",
        "seed": "augmentation seed differs",
        "format_version": "cache format version differs",
    }
    out = []
    for name, reason in reasons.items():
      mine, theirs = getattr(self, name), stored.get(name)
      if mine != theirs:
        out.append(f"{reason}: cache has {_short(theirs)}, this run has {_short(mine)}")
    return out


def _short(value) -> str:
  return f"{value[:12]}..." if isinstance(value, str) and len(value) > 16 else repr(value)


def _hash_files(paths: Iterable[Tuple[str, str]]) -> str:
  """sha256 over (name, contents) pairs, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  for name, path in paths:
    digest.update(name.encode("utf-8") + b"\0")
    with open(path, "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
  return digest.hexdigest()


def teacher_fingerprint(teacher_path: str) -> str:
  """sha256 over a SavedModel's saved_model.pb and every file under variables/ (names included)."""
  graph = os.path.join(teacher_path, "saved_model.pb")
  if not os.path.isfile(graph):
    raise CacheError(f"{teacher_path!r} is not a SavedModel (no saved_model.pb); pass the teacher version directory")
  files = [("saved_model.pb", graph)]
  variables = os.path.join(teacher_path, "variables")
  for root, _, names in sorted(os.walk(variables)):
    for name in sorted(names):
      path = os.path.join(root, name)
      files.append((os.path.relpath(path, teacher_path), path))
  return _hash_files(files)


def features_fingerprint(features: Mapping[str, np.ndarray]) -> str:
  """sha256 over the teacher inputs (input_ids, input_mask, segment_ids): dtype, shape and bytes.

  It changes whenever the data file, the tokenizer, the vocab, max_seq_length or max_train_examples change the
  examples the teacher sees, so it is a stricter key than the data file's path or hash.
  """
  digest = hashlib.sha256()
  for key in FEATURE_KEYS:
    if key not in features:
      raise CacheError(f"features lack {key!r}; pass the tokenised training features (WordPieceTokenizer.encode)")
    array = np.ascontiguousarray(features[key])
    digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode("utf-8"))
    digest.update(array.tobytes())
  return digest.hexdigest()


def cache_key(teacher_path: str, vocab_file: str, max_seq_length: int, data_fingerprint: str,
              seed: int = 0) -> CacheKey:
  """The key of a cache of `teacher_path`'s outputs on the data fingerprinted by `data_fingerprint`.

  Which outputs are stored is not part of the key: a cache serves any request for a subset of its outputs.
  """
  if not os.path.isfile(vocab_file):
    raise CacheError(f"vocab file {vocab_file!r} does not exist; pass the --vocab_file the data was tokenised with")
  return CacheKey(teacher_sha256=teacher_fingerprint(teacher_path), vocab_sha256=_hash_files([("", vocab_file)]),
                  max_seq_length=int(max_seq_length), data_fingerprint=str(data_fingerprint), seed=int(seed))


def _check_outputs(outputs: Sequence[str]) -> Tuple[str, ...]:
  outputs = tuple(outputs)
  if not outputs:
    raise CacheError("outputs is empty; cache at least ('logits',)")
  unknown = [name for name in outputs if name not in _KINDS]
  if unknown:
    raise CacheError(f"unknown teacher outputs {unknown}; cacheable outputs are {sorted(_KINDS)}")
  if len(set(outputs)) != len(outputs):
    raise CacheError(f"outputs lists a name twice: {list(outputs)}")
  return outputs


def _check_features(features: Mapping[str, np.ndarray]) -> int:
  missing = [key for key in FEATURE_KEYS if key not in features]
  if missing:
    raise CacheError(f"features lack {missing}; pass the tokenised training features (WordPieceTokenizer.encode)")
  shapes = {key: np.shape(features[key]) for key in FEATURE_KEYS}
  if len(set(shapes.values())) != 1 or len(shapes["input_ids"]) != 2:
    raise CacheError(f"features must all be [num_examples, max_seq_length]; got shapes {shapes}")
  if shapes["input_ids"][0] == 0:
    raise CacheError("features hold no examples; check the training split")
  return shapes["input_ids"][0]


def _ragged_dims(name: str) -> int:
  """How many leading per-example axes have the example's real length: 0, 1, or 2 for attention maps."""
  return {"example": 0, "layer_attention": 2}.get(_KINDS[name], 1)


def _per_example(name: str, value: np.ndarray, i: int, length: int, layers: Optional[Sequence[int]]) -> np.ndarray:
  """Example i of a batched teacher output, trimmed to `length`, in the on-disk layout of the module docstring."""
  kind = _KINDS[name]
  if kind == "example":
    return value[i]
  if kind == "sequence":
    return value[i, :length]
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


def build_cache(teacher: Callable, features: Mapping[str, np.ndarray], cache_dir: str, key: CacheKey,
                outputs: Sequence[str] = ("logits",), layers: Optional[Sequence[int]] = None, batch_size: int = 64,
                num_shards: int = 4) -> Dict:
  """Queries `teacher` on every example of `features` and writes the cache to `cache_dir`; returns the manifest.

  `teacher(features, outputs=...)` is a `SavedModelTeacher` (or anything with its call signature) that provides
  `outputs`; `layers` picks teacher layers for the per-layer outputs (None: all). Examples are sent in order of
  length with per-batch padding trimmed, so the build costs about one length-bucketed online epoch of teacher
  forwards. The cache is written to a temporary directory and renamed over `cache_dir` at the end.
  """
  outputs = _check_outputs(outputs)
  num_examples = _check_features(features)
  if batch_size < 1:
    raise CacheError(f"batch_size must be >= 1, got {batch_size}")
  if num_shards < 1:
    raise CacheError(f"num_shards must be >= 1, got {num_shards}")
  if layers is not None:
    layers = [int(layer) for layer in layers]
    if not layers or min(layers) < 0:
      raise CacheError(f"layers must be non-empty teacher layer indices >= 0, got {layers}")
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
  shapes, dtypes = {}, {}
  try:
    writers = [tf.io.TFRecordWriter(os.path.join(tmp_dir, name)) for name in shard_names]
    try:
      for batch_number, begin in enumerate(range(0, num_examples, batch_size)):
        rows = order[begin:begin + batch_size]
        width = int(lengths[rows].max())
        batch = {k: tf.constant(np.asarray(features[k])[rows, :width], tf.int32) for k in FEATURE_KEYS}
        result = _query(query, batch, outputs)
        for i, row in enumerate(rows):
          record = {"index": _int64(int(row)), "length": _int64(int(lengths[row]))}
          for name in outputs:
            value = _per_example(name, result[name], i, int(lengths[row]), layers)
            if _KINDS[name] == "example":
              value = value.astype(np.float32)
              record[name] = tf.train.Feature(float_list=tf.train.FloatList(value=value.reshape(-1)))
              shapes[name] = list(value.shape)
            else:
              value = _to_float16(name, value)
              record[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.tobytes()]))
              ragged = _ragged_dims(name)
              shapes[name] = ["len"] * ragged + list(value.shape[ragged:])
            dtypes[name] = value.dtype.name
          shard = batch_number % num_shards
          writers[shard].write(tf.train.Example(features=tf.train.Features(feature=record)).SerializeToString())
          counts[shard] += 1
    finally:
      for writer in writers:
        writer.close()
    num_layers = next((result[name].shape[0] for name in outputs if _KINDS[name] in _PER_LAYER), None)
    manifest = {
        "format_version": FORMAT_VERSION,
        "key": key.digest,
        "key_fields": dataclasses.asdict(key),
        "outputs": list(outputs),
        "layers": layers if layers is not None else (list(range(int(num_layers))) if num_layers else None),
        "dtypes": dtypes,
        "shapes": shapes,
        "num_examples": int(num_examples),
        "max_seq_length": int(np.shape(features["input_ids"])[1]),
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
  return {name: np.asarray(result[name]) for name in outputs}


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


def read_manifest(cache_dir: str) -> Dict:
  """The manifest of `cache_dir`; CacheError when the cache is missing or was never finished."""
  if not os.path.isdir(cache_dir):
    raise CacheError(f"no teacher cache at {cache_dir}; build one with --teacher_cache=build (or auto)")
  path = os.path.join(cache_dir, MANIFEST_FILE)
  if not os.path.isfile(path):
    raise CacheError(f"incomplete teacher cache at {cache_dir}: no {MANIFEST_FILE} (an interrupted build?); "
                     f"found {sorted(os.listdir(cache_dir))[:5]}. Rebuild it with --teacher_cache=build")
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise CacheError(f"corrupt {path}: {e}; rebuild the cache with --teacher_cache=build") from e


def check_manifest(manifest: Mapping, cache_dir: str, expected_key: CacheKey, outputs: Sequence[str],
                   layers: Optional[Sequence[int]] = None) -> None:
  """Raises CacheError naming every reason the cache in `cache_dir` cannot serve `expected_key` and `outputs`."""
  outputs = _check_outputs(outputs)
  problems = expected_key.differences(manifest.get("key_fields", {}))
  missing = [name for name in outputs if name not in manifest.get("outputs", [])]
  if missing:
    problems.append(f"missing outputs {missing}: the cache holds {manifest.get('outputs')}")
  if layers is not None and any(_KINDS[name] in _PER_LAYER for name in outputs):
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
    raise CacheError(f"teacher cache at {cache_dir} cannot be used: " + "; ".join(problems) +
                     ". Rebuild it with --teacher_cache=build (auto rebuilds by itself)")


def open_cache(cache_dir: str, expected_key: CacheKey, outputs: Sequence[str] = ("logits",),
               layers: Optional[Sequence[int]] = None) -> "TeacherCache":
  """Reads a cache after checking it against `expected_key`; raises CacheError naming what differs."""
  manifest = read_manifest(cache_dir)
  check_manifest(manifest, cache_dir, expected_key, outputs, layers)
  return TeacherCache(cache_dir, manifest, outputs, layers)


class TeacherCache:
  """Cached teacher outputs for every training example, aligned with the training features by index.

  - `logits`: float32 [num_examples, labels], raw; the simplest join is a `teacher_logits` feature column.
  - `lengths`: int64 [num_examples] real token counts.
  - `example(name, i)`: numpy output of example i at its real length, in the teacher signature's layout.
  - `__call__(features, outputs=None)`: a drop-in for `SavedModelTeacher.__call__` inside a train step; it reads
    `features["example_index"]` (int [batch]) and pads to the batch's sequence length.
  """

  def __init__(self, cache_dir: str, manifest: Mapping, outputs: Sequence[str],
               layers: Optional[Sequence[int]] = None):
    self.cache_dir = cache_dir
    self.manifest = dict(manifest)
    self.outputs = tuple(outputs)
    self.num_examples = int(manifest["num_examples"])
    stored_layers = manifest.get("layers")
    self._layer_positions = ([stored_layers.index(layer) for layer in layers]
                             if layers is not None and stored_layers else None)
    self.layers = [int(layer) for layer in (layers if layers is not None else stored_layers or [])]
    self.lengths, self._values = self._read()
    self._tables = {name: self._table(name) for name in self.outputs}

  def _read(self) -> Tuple[np.ndarray, Dict[str, List[np.ndarray]]]:
    files = [os.path.join(self.cache_dir, shard["file"]) for shard in self.manifest["shards"]]
    spec = {"index": tf.io.FixedLenFeature([], tf.int64), "length": tf.io.FixedLenFeature([], tf.int64)}
    for name in self.outputs:
      if _KINDS[name] == "example":
        spec[name] = tf.io.FixedLenFeature([int(np.prod(self.manifest["shapes"][name]))], tf.float32)
      else:
        spec[name] = tf.io.FixedLenFeature([], tf.string)
    dataset = tf.data.TFRecordDataset(files).batch(1024).map(lambda s: tf.io.parse_example(s, spec))
    n = self.num_examples
    lengths = np.full([n], -1, np.int64)
    values = {name: [None] * n for name in self.outputs}
    seen = 0
    try:
      for batch in dataset.as_numpy_iterator():
        for j, index in enumerate(batch["index"]):
          if not 0 <= index < n or lengths[index] >= 0:
            raise CacheError(f"corrupt teacher cache at {self.cache_dir}: example index {index} is out of range "
                             f"[0, {n}) or repeated; rebuild it with --teacher_cache=build")
          lengths[index] = batch["length"][j]
          for name in self.outputs:
            values[name][index] = batch[name][j]
          seen += 1
    except tf.errors.DataLossError as e:
      raise CacheError(f"corrupt teacher cache at {self.cache_dir}: {e.message}; rebuild it with "
                       "--teacher_cache=build") from e
    if seen != n:
      raise CacheError(f"incomplete teacher cache at {self.cache_dir}: {seen} records for {n} examples; rebuild "
                       "it with --teacher_cache=build")
    for name in self.outputs:
      if _KINDS[name] == "example":
        values[name] = np.stack(values[name]).reshape([n] + list(self.manifest["shapes"][name]))
      else:
        values[name] = [self._decode(name, raw, int(length)) for raw, length in zip(values[name], lengths)]
    return lengths, values

  def _decode(self, name: str, raw: bytes, length: int) -> np.ndarray:
    ragged = _ragged_dims(name)
    shape = [length] * ragged + list(self.manifest["shapes"][name][ragged:])
    value = np.frombuffer(raw, np.float16).reshape(shape)
    if self._layer_positions is not None and _KINDS[name] in _PER_LAYER:
      value = value[..., self._layer_positions, :]
    return value

  @property
  def logits(self) -> np.ndarray:
    """Raw teacher logits float32 [num_examples, labels], row i for training example i."""
    if "logits" not in self._values:
      raise CacheError(f"logits were not requested when opening {self.cache_dir}; add 'logits' to outputs")
    return self._values["logits"]

  def example(self, name: str, i: int) -> np.ndarray:
    """Output `name` of example i at its real length, in the layout of the teacher's distill signature
    (without the batch axis): [labels], [len, hidden], [layers, len, hidden] or [layers, heads, len, len]."""
    value = self._values[name][i]
    kind = _KINDS[name]
    if kind == "layer_sequence":
      return np.transpose(value, (1, 0, 2)).astype(np.float32)
    if kind == "layer_attention":
      return np.transpose(value, (2, 3, 0, 1)).astype(np.float32)
    return np.asarray(value, np.float32)

  def _table(self, name: str):
    """An eager (ragged) tensor over all examples: [n, labels], [n, (len), ...] or [n, (len), (len), ...].

    Built once, outside any tf.function, so a traced train step captures it instead of embedding a constant.
    """
    value = self._values[name]
    with tf.init_scope():
      if _KINDS[name] == "example":
        return tf.constant(value, tf.float32)
      if _KINDS[name] == "layer_attention":
        flat = np.concatenate([v.reshape((-1,) + v.shape[2:]) for v in value])
        return tf.RaggedTensor.from_nested_row_lengths(flat, [self.lengths, np.repeat(self.lengths, self.lengths)])
      return tf.RaggedTensor.from_row_lengths(np.concatenate(value), self.lengths)

  def __call__(self, features: Mapping[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict:
    """Cached outputs for a batch, shaped like the teacher's online outputs for these (trimmed) features."""
    if INDEX_KEY not in features:
      raise CacheError(f"features lack {INDEX_KEY!r}: the training dataset must carry each example's index so "
                       "cached teacher outputs can be looked up")
    index = tf.cast(features[INDEX_KEY], tf.int64)
    batch = tf.shape(index)[0]
    seq_len = tf.shape(features["input_ids"])[1]
    out = {}
    for name in outputs or self.outputs:
      if name not in self._values:
        raise CacheError(f"output {name!r} was not loaded from {self.cache_dir}; loaded {list(self._values)}")
      table, kind = self._tables[name], _KINDS[name]
      rows = tf.gather(table, index)
      if kind == "example":
        out[name] = rows
        continue
      inner = list(table.flat_values.shape[1:])
      if kind == "layer_attention":
        dense = rows.to_tensor(shape=tf.stack([batch, seq_len, seq_len] + inner))
        out[name] = tf.cast(tf.transpose(dense, [3, 0, 4, 1, 2]), tf.float32)
      else:
        dense = tf.cast(rows.to_tensor(shape=tf.stack([batch, seq_len] + inner)), tf.float32)
        out[name] = tf.transpose(dense, [2, 0, 1, 3]) if kind == "layer_sequence" else dense
    return out


  def layer_outputs(self, features: Mapping[str, tf.Tensor], outputs: Optional[Iterable[str]] = None) -> Dict:
    """`__call__`, with each per-layer output as a list indexed by teacher layer (0-based; None where a layer is not
    cached): the layout of the student's outputs, which `FeatureLoss.select` reads by layer number."""
    out = self(features, outputs)
    for name, value in out.items():
      if _KINDS[name] in _PER_LAYER:
        by_layer = [None] * (max(self.layers) + 1)
        for position, layer in enumerate(self.layers):
          by_layer[layer] = value[position]
        out[name] = by_layer
    return out


def resolve(mode: str, cache_dir: str, key: CacheKey, teacher: Optional[Callable],
            features: Mapping[str, np.ndarray], outputs: Sequence[str] = ("logits",),
            layers: Optional[Sequence[int]] = None, batch_size: int = 64, num_shards: int = 4,
            log: Callable[[str], None] = print) -> Optional[TeacherCache]:
  """`--teacher_cache`: off -> None; build -> (re)build then open; use -> open or raise CacheError; auto -> open a
  valid cache, else (missing, partial or mismatched, with the reason logged) build it, then open."""
  if mode not in MODES:
    raise CacheError(f"unknown teacher_cache mode {mode!r}; use one of {list(MODES)}")
  if mode == "off":
    return None
  if not cache_dir:
    raise CacheError(f"teacher_cache={mode} needs a cache directory (--teacher_cache_dir)")
  num_examples = _check_features(features)
  if mode in ("use", "auto"):
    try:
      cache = open_cache(cache_dir, key, outputs, layers)
      if cache.num_examples != num_examples:
        raise CacheError(f"teacher cache at {cache_dir} holds {cache.num_examples} examples but the training "
                         f"features have {num_examples}")
      log(f"teacher cache: using {cache_dir} ({cache.num_examples} examples, outputs {list(cache.outputs)})")
      return cache
    except CacheError as e:
      if mode == "use":
        raise
      log(f"teacher cache: building, because {e}")
  if teacher is None:
    raise CacheError(f"building the teacher cache at {cache_dir} needs the teacher; pass --teacher_model")
  manifest = build_cache(teacher, features, cache_dir, key, outputs, layers, batch_size, num_shards)
  log(f"teacher cache: built {cache_dir} ({manifest['num_examples']} examples in {manifest['build_seconds']:.1f} s)")
  return open_cache(cache_dir, key, outputs, layers)

"""`TeacherCache`: a teacher source that serves stored teacher outputs by example index, in the online layout.

What `TeacherCache.__call__` returns for a batch (the layout of every teacher source, so a loss cannot tell a cached
teacher from an online one; seq = the batch's trimmed width):

  logits, probabilities:            float32 [batch, labels]; a tagger's [batch, seq, labels]
  embeddings:                       float32 [batch, seq, hidden]
  hidden_states, attention_queries/keys/values:
                                    list by 0-based teacher layer of float32 [batch, seq, hidden]
  attention_scores, attention_probs:
                                    list by 0-based teacher layer of float32 [batch, heads, seq, seq]

Each list has length max(stored layers) + 1 and None at the layers the cache does not serve. Positions at or beyond
an example's real length come back as 0 (online, padded positions carry values that the masked losses ignore;
attention_probs towards padding is ~0 online too). Every output is gradient-stopped.
"""

import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.teacher import INDEX_KEY, TeacherSource
from tf_distill.teacher_cache.key import CacheKey
from tf_distill.teacher_cache.errors import CacheError
from tf_distill.teacher_cache.manifest import (check_manifest, is_per_layer, manifest_kinds, ragged_dims, read_manifest,
                                               sequence_layout)


def open_cache(cache_dir: str, expected_key: CacheKey, outputs: Sequence[str] = ("logits",),
               layers: Optional[Sequence[int]] = None, teacher_info: Optional[Mapping] = None) -> "TeacherCache":
  """Reads a cache after checking it against `expected_key`; raises CacheError naming what differs.

  `teacher_info` ({"labels", "num_labels", "bert_config"}, see `manifest.describe_teacher`) overrides what the
  manifest stores about the teacher.
  """
  manifest = read_manifest(cache_dir)
  check_manifest(manifest, cache_dir, expected_key, outputs, layers)
  return TeacherCache(cache_dir, manifest, outputs, layers, teacher_info)


class TeacherCache(TeacherSource):
  """Cached teacher outputs for every training example, aligned with the training features by index.

  - `__call__(features, outputs)`: the teacher outputs of a batch (module docstring), looked up by
    `features["example_index"]` (int [batch]) and padded to the batch's sequence length.
  - `labels`, `num_labels`, `bert_config`: the teacher the cache was built from; `available_outputs`: what it serves.
  - `logits`: float32 [num_examples, labels], raw; `lengths`: int64 [num_examples] real token counts.
  - `example(name, i)`: numpy output of example i at its real length, without the batch axis.
  """

  needs_example_index = True

  def __init__(self, cache_dir: str, manifest: Mapping, outputs: Sequence[str],
               layers: Optional[Sequence[int]] = None, teacher_info: Optional[Mapping] = None):
    self.cache_dir = cache_dir
    self.manifest = dict(manifest)
    self.outputs = tuple(outputs)
    self.num_examples = int(manifest["num_examples"])
    self._kinds = manifest_kinds(manifest)
    self._teacher_info = dict(teacher_info or manifest.get("teacher") or {})
    stored_layers = [int(layer) for layer in manifest.get("layers") or []]
    self._layer_positions = ([stored_layers.index(layer) for layer in layers]
                             if layers is not None and stored_layers else None)
    self.layers = [int(layer) for layer in (layers if layers is not None else stored_layers)]
    self._num_layer_slots = max(stored_layers) + 1 if stored_layers else 0
    self.lengths, self._values = self._read()
    self._tables = {name: self._table(name) for name in self.outputs}

  # --------------------------------------------------------------------------------------------- what it serves

  def __str__(self) -> str:
    return f"teacher cache {self.cache_dir}"

  @property
  def available_outputs(self) -> Tuple[str, ...]:
    """The output names `__call__` serves: the ones loaded when the cache was opened."""
    return self.outputs

  @property
  def labels(self) -> List[str]:
    return list(self._describe("labels"))

  @property
  def num_labels(self) -> int:
    if "num_labels" in self._teacher_info:
      return int(self._teacher_info["num_labels"])
    if "logits" in self.manifest.get("shapes", {}):
      return int(self.manifest["shapes"]["logits"][0])
    return len(self.labels)

  @property
  def bert_config(self) -> Dict:
    return dict(self._describe("bert_config"))

  def _describe(self, name: str):
    if name not in self._teacher_info:
      raise CacheError(f"the teacher cache at {self.cache_dir} does not know the teacher's {name} (it was built "
                       "from a teacher without metadata); pass the teacher (--teacher_model) or rebuild the cache")
    return self._teacher_info[name]

  @property
  def logits(self) -> np.ndarray:
    """Raw teacher logits float32 [num_examples, labels], row i for training example i (a classifier's cache)."""
    if "logits" not in self._values:
      raise CacheError(f"logits were not requested when opening {self.cache_dir}; add 'logits' to outputs")
    if self._kinds["logits"] != "example":
      raise CacheError(f"the cache at {self.cache_dir} holds per-token logits; read them with example('logits', i)")
    return self._values["logits"]

  # ---------------------------------------------------------------------------------------------------- reading

  def _read(self) -> Tuple[np.ndarray, Dict[str, List[np.ndarray]]]:
    files = [os.path.join(self.cache_dir, shard["file"]) for shard in self.manifest["shards"]]
    spec = {"index": tf.io.FixedLenFeature([], tf.int64), "length": tf.io.FixedLenFeature([], tf.int64)}
    for name in self.outputs:
      if self._kinds[name] == "example":
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
      if self._kinds[name] == "example":
        values[name] = np.stack(values[name]).reshape([n] + list(self.manifest["shapes"][name]))
      else:
        values[name] = [self._decode(name, raw, int(length)) for raw, length in zip(values[name], lengths)]
    return lengths, values

  def _decode(self, name: str, raw: bytes, length: int) -> np.ndarray:
    """One example's float16 bytes as [len, hidden], [len, L, hidden] or [len, len, L, heads] (L: loaded layers)."""
    ragged = ragged_dims(self._kinds[name])
    shape = [length] * ragged + list(self.manifest["shapes"][name][ragged:])
    value = np.frombuffer(raw, np.float16).reshape(shape)
    if self._layer_positions is not None and is_per_layer(name):
      value = value[..., self._layer_positions, :]
    return value

  def _by_layer(self, per_position: Sequence) -> List:
    """Entries for the loaded layers (in `self.layers` order) placed at their teacher layer, None elsewhere."""
    out = [None] * self._num_layer_slots
    for layer, value in zip(self.layers, per_position):
      out[layer] = value
    return out

  def example(self, name: str, i: int):
    """Output `name` of example i at its real length, without the batch axis: [labels], [len, hidden] (a tagger's
    logits: [len, labels], a span model's: [2, len]), or for the
    per-layer outputs a list by teacher layer (None where not served) of [len, hidden] or [heads, len, len]."""
    value = self._values[name][i]
    kind = self._kinds[name]
    if kind == "layer_sequence":
      return self._by_layer([value[:, p].astype(np.float32) for p in range(len(self.layers))])
    if kind == "layer_attention":
      return self._by_layer([np.transpose(value[:, :, p], (2, 0, 1)).astype(np.float32)
                             for p in range(len(self.layers))])
    if kind == "sequence":
      return np.moveaxis(np.asarray(value, np.float32), 0, sequence_layout(self.manifest, name)["axis"] - 1)
    return np.asarray(value, np.float32)

  def _table(self, name: str):
    """Eager tensors over all examples: [n, labels]; [n, (len), hidden]; per loaded layer [n, (len), hidden] or
    [n, (len), (len), heads].

    Built once, outside any tf.function, so a traced train step captures them instead of embedding constants.
    """
    value, kind = self._values[name], self._kinds[name]
    with tf.init_scope():
      if kind == "example":
        return tf.constant(value, tf.float32)
      if kind == "sequence":
        return tf.RaggedTensor.from_row_lengths(np.concatenate(value), self.lengths)
      if kind == "layer_sequence":
        flat = np.concatenate(value)  # [sum len, L, hidden]
        return [tf.RaggedTensor.from_row_lengths(flat[:, p], self.lengths) for p in range(flat.shape[1])]
      flat = np.concatenate([v.reshape((-1,) + v.shape[2:]) for v in value])  # [sum len^2, L, heads]
      row_lengths = [self.lengths, np.repeat(self.lengths, self.lengths)]
      return [tf.RaggedTensor.from_nested_row_lengths(flat[:, p], row_lengths) for p in range(flat.shape[1])]

  # ------------------------------------------------------------------------------------------------- the source

  def __call__(self, features: Mapping[str, tf.Tensor], outputs: Optional[Sequence[str]] = None) -> Dict:
    """Cached outputs for a batch, in the module docstring's layout for these (trimmed) features.

    Args:
      features: input_ids, input_mask, segment_ids int32 [batch, seq] and `example_index` int [batch].
      outputs: the output names to return (default: `available_outputs`).
    """
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
      table, kind = self._tables[name], self._kinds[name]
      if kind == "example":
        out[name] = tf.stop_gradient(tf.gather(table, index))
      elif kind == "sequence":  # [batch, seq, ...] with the sequence axis moved to where the teacher has it
        layout = sequence_layout(self.manifest, name)
        out[name] = _move_sequence_axis(_dense(table, index, [batch, seq_len], layout["padding"]), layout["axis"])
      elif kind == "layer_sequence":
        out[name] = self._by_layer([_dense(t, index, [batch, seq_len]) for t in table])
      else:  # [batch, seq, seq, heads] -> [batch, heads, seq, seq]
        out[name] = self._by_layer([tf.transpose(_dense(t, index, [batch, seq_len, seq_len]), [0, 3, 1, 2])
                                    for t in table])
    return out


def _dense(table: tf.RaggedTensor, index: tf.Tensor, leading: list, padding: float = 0.0) -> tf.Tensor:
  """Rows `index` of a ragged float16 table, padded with `padding` (default zeros) to `leading` + the table's inner
  shape, as float32."""
  shape = tf.stack(leading + list(table.flat_values.shape[1:]))
  rows = tf.cast(tf.gather(table, index), tf.float32)
  return tf.stop_gradient(rows.to_tensor(default_value=padding, shape=shape))


def _move_sequence_axis(value: tf.Tensor, axis: int) -> tf.Tensor:
  """[batch, seq, ...] with axis 1 moved to `axis`: [batch, seq, 2] -> [batch, 2, seq] for axis 2."""
  if axis == 1:
    return value
  rest = [i for i in range(value.shape.rank) if i != 1]
  return tf.transpose(value, rest[:axis] + [1] + rest[axis:])

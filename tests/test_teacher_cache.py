"""Tests for tf_distill.teacher_cache on the tiny exported teacher."""

import dataclasses
import json
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill import teacher_cache
from tf_distill.teacher import SavedModelTeacher, TeacherError, TeacherSource
from tf_distill.teacher_cache import CacheError

import tiny

INTERMEDIATES = ("embeddings", "hidden_states", "attention_scores", "attention_probs", "attention_values")
SEQ = 16


class CountingTeacher:
  """Forwards to a teacher and counts the calls (build_cache traces its query once per build)."""

  def __init__(self, teacher):
    self.teacher = teacher
    self.calls = 0

  def __call__(self, features, outputs=None):
    self.calls += 1
    return self.teacher(features, outputs=outputs)


def _online(teacher, features, rows, outputs):
  """Online teacher outputs for examples `rows`, trimmed to their longest real length (as a train step does)."""
  width = int(features["input_mask"][rows].sum(axis=1).max())
  batch = {k: tf.constant(features[k][rows, :width]) for k in teacher_cache.FEATURE_KEYS}
  return batch, {k: _stacked(v) for k, v in teacher(batch, outputs=outputs).items()}


def _stacked(value):
  """A teacher output as numpy, per-layer lists stacked to [layers, ...]."""
  return np.stack([np.asarray(v) for v in value]) if isinstance(value, (list, tuple)) else np.asarray(value)


class TeacherCacheTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.shared = tiny.shared_teacher()
    cls.teacher = SavedModelTeacher(cls.shared.path, required_outputs=("logits",) + INTERMEDIATES)
    lengths = np.random.default_rng(3).integers(3, SEQ + 1, size=21)
    cls.features = tiny.random_features(21, SEQ, lengths=lengths, seed=5, segment_b=True)
    cls.key = teacher_cache.cache_key(cls.shared.path, cls.shared.vocab_file, SEQ,
                                      teacher_cache.features_fingerprint(cls.features))

  def _build(self, outputs=("logits",), layers=None, name="cache"):
    cache_dir = os.path.join(self.get_temp_dir(), name)
    teacher_cache.build_cache(self.teacher, self.features, cache_dir, self.key, outputs, layers, batch_size=4,
                              num_shards=3)
    return cache_dir

  def test_cached_logits_equal_online_logits(self):
    cache = teacher_cache.open_cache(self._build(), self.key)
    online = self.teacher({k: tf.constant(v) for k, v in self.features.items()}, outputs=("logits",))["logits"]
    self.assertEqual(cache.logits.shape, (21, 2))
    self.assertEqual(cache.logits.dtype, np.float32)
    self.assertAllClose(cache.logits, online, atol=1e-5)
    self.assertAllEqual(cache.lengths, self.features["input_mask"].sum(axis=1))

  def test_lookup_by_index_in_a_shuffled_trimmed_batch_matches_the_online_teacher(self):
    cache = teacher_cache.open_cache(self._build(outputs=("logits",) + INTERMEDIATES), self.key,
                                     outputs=("logits",) + INTERMEDIATES)
    lookup = tf.function(cache, reduce_retracing=True)
    for rows in ([20, 3, 7, 0, 11], [5, 2], [19]):
      rows = np.array(rows)
      batch, online = _online(self.teacher, self.features, rows, ("logits",) + INTERMEDIATES)
      cached = lookup({**batch, "example_index": tf.constant(rows)})
      self.assertAllClose(cached["logits"], online["logits"], atol=1e-5)
      lengths = self.features["input_mask"][rows].sum(axis=1)
      valid = np.arange(batch["input_ids"].shape[1])[None, :] < lengths[:, None]  # [batch, seq]
      for name in INTERMEDIATES:
        # Online: embeddings [batch, seq, hidden], per-layer outputs stacked [layers, batch, ...]; cached: the
        # per-layer outputs as a list by teacher layer.
        if name == "embeddings":
          pairs = [(cached[name], online[name])]
        else:
          self.assertIsInstance(cached[name], list, name)
          self.assertLen(cached[name], online[name].shape[0], name)
          pairs = list(zip(cached[name], online[name]))
        for got, want in pairs:
          self.assertEqual(got.shape, want.shape, name)
          self.assertEqual(got.dtype, tf.float32)
          got = got.numpy()
          if name == "embeddings" or want.ndim == 3:  # [batch, seq, hidden]
            mask = np.broadcast_to(valid[:, :, None], want.shape)
          else:  # [batch, heads, seq, seq]
            mask = np.broadcast_to(valid[:, None, :, None] & valid[:, None, None, :], want.shape)
          # float16 keeps 11 significant bits: relative error <= 2^-11.
          self.assertAllClose(got[mask], want[mask], rtol=1e-3, atol=1e-3, msg=name)
          self.assertFalse(np.array_equal(got[mask], want[mask]), f"{name} should carry float16 rounding")
          self.assertAllEqual(got[~mask], np.zeros_like(got[~mask]), msg=f"{name} padding")

  def test_tagger_logits_are_cached_per_token(self):
    """A tagger teacher's logits [batch, seq, tags] are a per-token output: stored float16 at each example's real
    length (manifest kind "sequence"), served in the trimmed batch's layout with zeros at padding."""
    tagger = tiny.tiny_classifier(seed=4, head="token", num_labels=3)
    path = tiny.export_tiny_classifier(tagger, os.path.join(self.get_temp_dir(), "tagger"), self.shared.vocab_file,
                                       labels=("O", "B-x", "I-x"))
    teacher = SavedModelTeacher(path)
    cache_dir = os.path.join(self.get_temp_dir(), "tagger_cache")
    key = teacher_cache.cache_key(path, self.shared.vocab_file, SEQ, teacher_cache.features_fingerprint(self.features))
    manifest = teacher_cache.build_cache(teacher, self.features, cache_dir, key, batch_size=4)
    self.assertEqual(manifest["kinds"], {"logits": "sequence"})
    self.assertEqual(manifest["shapes"]["logits"], ["len", 3])
    cache = teacher_cache.open_cache(cache_dir, key)
    rows = np.array([9, 0, 14])
    batch, online = _online(teacher, self.features, rows, ("logits",))
    cached = cache({**batch, "example_index": tf.constant(rows)})["logits"].numpy()
    lengths = self.features["input_mask"][rows].sum(axis=1)
    valid = np.arange(batch["input_ids"].shape[1])[None, :] < lengths[:, None]
    self.assertEqual(cached.shape, online["logits"].shape)
    self.assertAllClose(cached[valid], online["logits"][valid], rtol=1e-3, atol=1e-3)
    self.assertAllEqual(cached[~valid], np.zeros_like(cached[~valid]))
    self.assertAllEqual(cache.example("logits", 9).shape, (self.features["input_mask"][9].sum(), 3))
    with self.assertRaisesRegex(CacheError, "holds per-token logits; read them with example"):
      cache.logits  # pylint: disable=pointless-statement

  def test_intermediates_are_stored_in_float16_trimmed_to_the_real_length(self):
    cache_dir = self._build(outputs=("logits", "hidden_states"))
    with open(os.path.join(cache_dir, teacher_cache.MANIFEST_FILE), encoding="utf-8") as f:
      manifest = json.load(f)
    self.assertEqual(manifest["dtypes"], {"logits": "float32", "hidden_states": "float16"})
    self.assertEqual(manifest["shapes"], {"logits": [2], "hidden_states": ["len", 2, 32]})
    self.assertEqual(sum(s["num_records"] for s in manifest["shards"]), 21)
    self.assertLen(manifest["shards"], 3)
    lengths = self.features["input_mask"].sum(axis=1)
    # Payload bytes: 2 bytes x len x 2 layers x 32 per example, well below padding to SEQ.
    payload = int(sum(lengths)) * 2 * 2 * 32
    total = sum(s["bytes"] for s in manifest["shards"])
    self.assertGreater(total, payload)
    self.assertLess(total, payload + 21 * 200)
    cache = teacher_cache.open_cache(cache_dir, self.key, outputs=("hidden_states",))
    by_layer = cache.example("hidden_states", 4)
    self.assertLen(by_layer, 2)
    self.assertEqual([v.shape for v in by_layer], [(lengths[4], 32)] * 2)

  def test_layer_selection(self):
    cache = teacher_cache.open_cache(self._build(outputs=("hidden_states",), layers=[1]), self.key,
                                     outputs=("hidden_states",), layers=[1])
    rows = np.array([1, 2, 3])
    batch, online = _online(self.teacher, self.features, rows, ("hidden_states",))
    length = self.features["input_mask"][1].sum()
    # __call__ puts each stored layer at its teacher layer index, None elsewhere.
    by_layer = cache({**batch, "example_index": tf.constant(rows)})["hidden_states"]
    self.assertLen(by_layer, 2)
    self.assertIsNone(by_layer[0])
    self.assertAllClose(by_layer[1][0, :length], online["hidden_states"][1, 0, :length], rtol=1e-3, atol=1e-3)
    with self.assertRaisesRegex(CacheError, r"missing teacher layers \[0\]"):
      teacher_cache.open_cache(self._build(outputs=("hidden_states",), layers=[1], name="c2"), self.key,
                               outputs=("hidden_states",), layers=[0, 1])

  def test_call_returns_the_stored_logits_by_example_index(self):
    cache_dir = self._build(outputs=("logits", "hidden_states"))
    # The stored logits, read from the shards by hand (not through the reader): row i for example index i.
    stored = {}
    for name in sorted(f for f in os.listdir(cache_dir) if f.endswith(".tfrecord")):
      for raw in tf.data.TFRecordDataset(os.path.join(cache_dir, name)).as_numpy_iterator():
        feature = tf.train.Example.FromString(raw).features.feature
        stored[feature["index"].int64_list.value[0]] = np.array(feature["logits"].float_list.value, np.float32)
    self.assertEqual(sorted(stored), list(range(21)))
    table = np.stack([stored[i] for i in range(21)])  # [examples, labels]
    cache = teacher_cache.open_cache(cache_dir, self.key, outputs=("logits", "hidden_states"))
    rows = np.array([7, 20, 7, 0, 13])
    width = int(self.features["input_mask"][rows].sum(axis=1).max())
    batch = {k: tf.constant(self.features[k][rows, :width]) for k in teacher_cache.FEATURE_KEYS}
    out = tf.function(cache)({**batch, "example_index": tf.constant(rows, tf.int64)}, ("logits",))
    self.assertEqual(sorted(out), ["logits"])  # exactly the requested outputs
    self.assertEqual(out["logits"].dtype, tf.float32)
    self.assertAllEqual(out["logits"], table[rows])
    self.assertAllEqual(cache.logits, table)

  def test_per_layer_outputs_are_lists_with_none_at_uncached_layers(self):
    outputs = ("embeddings", "hidden_states", "attention_probs")
    rows = np.array([4, 9, 2])
    batch, online = _online(self.teacher, self.features, rows, outputs)
    batch = {**batch, "example_index": tf.constant(rows)}
    width, heads = batch["input_ids"].shape[1], int(self.teacher.bert_config["num_attention_heads"])
    only_1 = teacher_cache.open_cache(self._build(outputs=outputs, layers=[1]), self.key, outputs, layers=[1])
    both = teacher_cache.open_cache(self._build(outputs=outputs, name="both"), self.key, outputs)
    subset = teacher_cache.open_cache(self._build(outputs=outputs, name="both"), self.key, outputs, layers=[0])
    self.assertEqual(only_1.available_outputs, outputs)
    for cache, served in ((only_1, [1]), (both, [0, 1]), (subset, [0])):
      out = cache(batch, outputs)
      self.assertEqual(sorted(out), sorted(outputs))
      self.assertEqual(out["embeddings"].shape, (3, width, 32))  # not per layer: a tensor
      for name, shape in (("hidden_states", (3, width, 32)), ("attention_probs", (3, heads, width, width))):
        self.assertIsInstance(out[name], list)
        self.assertLen(out[name], 2, name)  # highest layer the cache holds + 1
        for layer in range(2):
          if layer not in served:
            self.assertIsNone(out[name][layer], f"{name}[{layer}]")
            continue
          self.assertEqual(out[name][layer].shape, shape, f"{name}[{layer}]")
          length = self.features["input_mask"][rows[0]].sum()
          got = out[name][layer].numpy()[0, ..., :length, :length] if name == "attention_probs" else \
              out[name][layer].numpy()[0, :length]
          want = online[name][layer, 0, ..., :length, :length] if name == "attention_probs" else \
              online[name][layer, 0, :length]
          self.assertAllClose(got, want, rtol=1e-3, atol=1e-3, msg=f"{name}[{layer}]")

  def test_cache_describes_its_teacher_with_or_without_it(self):
    cache_dir = os.path.join(self.get_temp_dir(), "describe")
    built = teacher_cache.resolve("build", cache_dir, self.key, self.teacher, self.features, log=lambda _: None)
    used = teacher_cache.resolve("use", cache_dir, self.key, None, self.features, log=lambda _: None)
    for cache in (built, used):
      self.assertEqual(cache.labels, list(self.teacher.labels))
      self.assertEqual(cache.num_labels, 2)
      self.assertEqual(cache.bert_config, self.teacher.bert_config)
      self.assertEqual(cache.available_outputs, ("logits",))
      self.assertIsInstance(cache, TeacherSource)
    with self.assertRaisesRegex(TeacherError, r"teacher cache .*describe\) lacks outputs \['hidden_states'\]"):
      used.check_outputs(("logits", "hidden_states"))
    # A teacher without metadata: num_labels still comes from the logits, the rest is refused by name.
    bare_dir = os.path.join(self.get_temp_dir(), "bare")
    bare = teacher_cache.resolve("build", bare_dir, self.key, CountingTeacher(self.teacher), self.features,
                                 log=lambda _: None)
    self.assertEqual(bare.num_labels, 2)
    with self.assertRaisesRegex(CacheError, "does not know the teacher's bert_config.*--teacher_model"):
      _ = bare.bert_config
    self.assertEqual(teacher_cache.resolve("use", bare_dir, self.key, self.teacher, self.features,
                                           log=lambda _: None).labels, list(self.teacher.labels))

  @parameterized.named_parameters(
      ("teacher", "teacher_sha256", "0" * 64, "teacher changed"),
      ("vocab", "vocab_sha256", "1" * 64, "vocab changed"),
      ("seq_length", "max_seq_length", 32, "max_seq_length differs: cache has 16, this run has 32"),
      ("data", "data_fingerprint", "2" * 64, "training data changed"),
      ("format", "format_version", 0, "cache format version differs: cache has 1, this run has 0"),
  )
  def test_mismatched_key_is_refused_naming_the_difference(self, field, value, message):
    cache_dir = self._build()
    with self.assertRaisesRegex(CacheError, message):
      teacher_cache.open_cache(cache_dir, dataclasses.replace(self.key, **{field: value}))

  def test_key_fields_change_with_their_inputs(self):
    other_vocab = tiny.write_other_vocab(os.path.join(self.get_temp_dir(), "other_vocab.txt"))
    fingerprint = teacher_cache.features_fingerprint(self.features)
    same = teacher_cache.cache_key(self.shared.path, self.shared.vocab_file, SEQ, fingerprint)
    self.assertEqual(same.digest, self.key.digest)
    self.assertEqual(sorted(dataclasses.asdict(same)), ["data_fingerprint", "format_version", "max_seq_length",
                                                        "teacher_sha256", "vocab_sha256"])
    changed_vocab = teacher_cache.cache_key(self.shared.path, other_vocab, SEQ, fingerprint)
    self.assertNotEqual(changed_vocab.vocab_sha256, self.key.vocab_sha256)
    self.assertNotEqual(changed_vocab.digest, self.key.digest)
    # The student-style export of the same weights has another graph: a different teacher.
    self.assertNotEqual(teacher_cache.teacher_fingerprint(self.shared.serving_path), self.key.teacher_sha256)
    edited = {k: v.copy() for k, v in self.features.items()}
    edited["input_ids"][3, 1] += 1
    self.assertNotEqual(teacher_cache.features_fingerprint(edited), fingerprint)

  def test_missing_outputs_are_refused(self):
    with self.assertRaisesRegex(CacheError, r"missing outputs \['hidden_states'\]: the cache holds \['logits'\]"):
      teacher_cache.open_cache(self._build(), self.key, outputs=("logits", "hidden_states"))

  def test_partial_cache_without_manifest_is_refused(self):
    cache_dir = self._build()
    os.remove(os.path.join(cache_dir, teacher_cache.MANIFEST_FILE))
    with self.assertRaisesRegex(CacheError, "incomplete teacher cache .* no manifest.json"):
      teacher_cache.open_cache(cache_dir, self.key)

  def test_missing_or_truncated_shard_is_refused(self):
    cache_dir = self._build()
    shards = sorted(f for f in os.listdir(cache_dir) if f.endswith(".tfrecord"))
    os.remove(os.path.join(cache_dir, shards[0]))
    with open(os.path.join(cache_dir, shards[1]), "r+b") as f:
      f.truncate(10)
    with self.assertRaisesRegex(CacheError, f"shard {shards[0]} is missing.*shard {shards[1]} has 10 bytes"):
      teacher_cache.open_cache(cache_dir, self.key)

  def test_missing_cache_is_refused_in_use_mode(self):
    with self.assertRaisesRegex(CacheError, "no teacher cache at .*--teacher_cache=build"):
      teacher_cache.resolve("use", os.path.join(self.get_temp_dir(), "nothing"), self.key, self.teacher,
                            self.features)

  def test_auto_builds_then_reuses_and_rebuilds_when_stale(self):
    cache_dir = os.path.join(self.get_temp_dir(), "auto")
    counting = CountingTeacher(self.teacher)
    messages = []
    first = teacher_cache.resolve("auto", cache_dir, self.key, counting, self.features, log=messages.append)
    built = counting.calls
    self.assertGreater(built, 0)
    manifest = os.path.join(cache_dir, teacher_cache.MANIFEST_FILE)
    mtime = os.stat(manifest).st_mtime_ns
    second = teacher_cache.resolve("auto", cache_dir, self.key, counting, self.features, log=messages.append)
    self.assertEqual(counting.calls, built)  # not queried again
    self.assertEqual(os.stat(manifest).st_mtime_ns, mtime)
    self.assertAllEqual(first.logits, second.logits)
    self.assertEqual(messages[0], f"teacher cache: building, because no teacher cache at {cache_dir}")  # no advice
    self.assertIn("using", messages[-1])
    stale = dataclasses.replace(self.key, data_fingerprint="9" * 64)
    with self.assertRaisesRegex(CacheError, "training data changed"):
      teacher_cache.resolve("use", cache_dir, stale, counting, self.features)
    teacher_cache.resolve("auto", cache_dir, stale, counting, self.features, log=messages.append)
    self.assertGreater(counting.calls, built)
    self.assertTrue(any("training data changed" in m for m in messages))
    self.assertFalse([m for m in messages if "--teacher_cache" in m])
    self.assertEqual(sorted(os.listdir(self.get_temp_dir())).count("auto"), 1)
    self.assertFalse([d for d in os.listdir(self.get_temp_dir()) if ".tmp-" in d or ".old-" in d])

  def test_build_mode_rebuilds_and_off_does_nothing(self):
    cache_dir = os.path.join(self.get_temp_dir(), "modes")
    counting = CountingTeacher(self.teacher)
    self.assertIsNone(teacher_cache.resolve("off", cache_dir, self.key, counting, self.features))
    self.assertFalse(os.path.exists(cache_dir))
    teacher_cache.resolve("build", cache_dir, self.key, counting, self.features, log=lambda _: None)
    once = counting.calls
    self.assertGreater(once, 0)
    teacher_cache.resolve("build", cache_dir, self.key, counting, self.features, log=lambda _: None)
    self.assertEqual(counting.calls, 2 * once)
    with self.assertRaisesRegex(CacheError, r"unknown teacher_cache mode 'sometimes'; use one of \['off', "):
      teacher_cache.resolve("sometimes", cache_dir, self.key, counting, self.features)

  def test_teacher_without_the_outputs_is_refused(self):
    logits_only = SavedModelTeacher(self.shared.serving_path)
    with self.assertRaisesRegex(CacheError, "does not provide output 'hidden_states'.*distill signature"):
      teacher_cache.build_cache(logits_only, self.features, os.path.join(self.get_temp_dir(), "x"), self.key,
                                outputs=("logits", "hidden_states"))
    self.assertFalse([d for d in os.listdir(self.get_temp_dir()) if d.startswith(".x.tmp")])

  def test_lookup_without_example_index_is_refused(self):
    cache = teacher_cache.open_cache(self._build(), self.key)
    with self.assertRaisesRegex(CacheError, "example_index"):
      cache({k: tf.constant(v) for k, v in self.features.items()})

  def test_unknown_output_is_refused(self):
    with self.assertRaisesRegex(CacheError, r"unknown teacher outputs \['pooled'\]; cacheable outputs are"):
      self._build(outputs=("logits", "pooled"))


if __name__ == "__main__":
  tf.test.main()

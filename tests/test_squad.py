"""Tests for tf_distill.squad_metrics and tf_distill.data.squad: metric values by hand, the reader on files the tests
write, run_squad windows on a tiny vocab, and span decoding of hand-made logits."""

import gzip
import json
import os
import random
import re

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import tiny
from tf_distill import squad_metrics
from tf_distill.data import squad
from tf_distill.data.tokenization import WordPieceTokenizer

# id = index: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, then the pieces.
PIECES = tiny.SPECIAL_TOKENS + ["the", "eiffel", "tower", "was", "built", "in", "1889", "paris", ".", "when", "?",
                                "it", "is", "tall", "old", "and", "##s", "what", ",", "city"]
ID = {token: index for index, token in enumerate(PIECES)}
CONTEXT = "The Eiffel Tower was built in 1889 in Paris."
# 0         1         2         3         4
# 01234567890123456789012345678901234567890123
#                               ^ 1889 is [30, 34); "Eiffel Tower" is [4, 16).


def _squad_json(paragraphs, version="v2.0"):
  return {"version": version, "data": [{"title": "Tower", "paragraphs": paragraphs}]}


def _tower_paragraph():
  return {"context": CONTEXT, "qas": [
      {"id": "q-when", "question": "When was the tower built?", "is_impossible": False,
       "answers": [{"text": "1889", "answer_start": 30}, {"text": "in 1889", "answer_start": 27}]},
      {"id": "q-tall", "question": "What is tall?", "is_impossible": True, "answers": [],
       "plausible_answers": [{"text": "Eiffel Tower", "answer_start": 4}]},
  ]}


class MetricTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("articles_punctuation_case", "The Eiffel  Tower.", "eiffel tower"),
      ("an_a", "An apple, a day!", "apple day"),
      ("article_inside_word_kept", "Theatre anthem", "theatre anthem"),
      ("only_article", "the", ""),
  )
  def test_normalize_answer(self, text, expected):
    self.assertEqual(squad_metrics.normalize_answer(text), expected)

  def test_exact_match(self):
    self.assertEqual(squad_metrics.exact_match("the Eiffel Tower.", "Eiffel tower"), 1)
    self.assertEqual(squad_metrics.exact_match("Eiffel", "Eiffel tower"), 0)

  @parameterized.named_parameters(
      ("superset", "in 1889 Paris", "1889", 2 * (1 / 3 * 1) / (1 / 3 + 1)),  # = 0.5
      # pred {cat, sat, on, mat}, gold {cat, on, mat}: common 3, precision 3/4, recall 1 -> 6/7.
      ("articles_dropped", "the cat sat on the mat", "cat on the mat", 6 / 7),
      # Counts are a multiset: pred {a1, a1}... "x x" vs "x": common 1, precision 1/2, recall 1 -> 2/3.
      ("repeated_token", "x x", "x", 2 / 3),
      ("disjoint", "London", "Paris", 0.0),
      ("both_empty", "", "", 1.0),
      ("empty_prediction", "", "Paris", 0.0),
  )
  def test_token_f1(self, prediction, gold, expected):
    self.assertAllClose(squad_metrics.token_f1(prediction, gold), expected)

  def test_max_over_gold_answers(self):
    # "Paris France" vs "Paris": common 1, P 1/2, R 1 -> 2/3; vs "France Paris city": common 2, P 1, R 2/3 -> 0.8.
    exact, f1 = squad_metrics.question_scores("Paris France", ["Paris", "France Paris city"])
    self.assertEqual(exact, 0)
    self.assertAllClose(f1, 0.8)
    self.assertEqual(squad_metrics.question_scores("paris", ["city", "Paris."]), (1, 1.0))

  @parameterized.named_parameters(
      ("no_answer_predicted_empty", "", [], (1, 1.0)),
      ("no_answer_predicted_text", "Paris", [], (0, 0.0)),
      ("answerable_predicted_empty", "", ["Paris"], (0, 0.0)),
      ("gold_only_article_is_unanswerable", "", ["The"], (1, 1.0)),
  )
  def test_unanswerable(self, prediction, golds, expected):
    self.assertEqual(squad_metrics.question_scores(prediction, golds), expected)

  def test_corpus_scores_with_splits(self):
    gold = {"q1": ["Eiffel tower"], "q2": ["1889"], "q3": []}
    predictions = {"q1": "the Eiffel Tower.", "q2": "in 1889 Paris", "q3": ""}
    result = squad_metrics.squad_evaluate(gold, predictions)
    # EM 1, 0, 1; F1 1, 0.5, 1.
    self.assertAllClose(result["exact"], 100 * 2 / 3)
    self.assertAllClose(result["f1"], 100 * 2.5 / 3)
    self.assertEqual(result["total"], 3)
    self.assertAllClose([result["HasAns_exact"], result["HasAns_f1"], result["HasAns_total"]], [50.0, 75.0, 2])
    self.assertAllClose([result["NoAns_exact"], result["NoAns_f1"], result["NoAns_total"]], [100.0, 100.0, 1])
    self.assertNotIn("best_f1", result)
    v1 = squad_metrics.squad_evaluate({"q1": ["Eiffel tower"]}, {"q1": "Tower"})
    self.assertNotIn("NoAns_total", v1)
    self.assertAllClose(v1["f1"], 100 * 2 / 3)  # P 1, R 1/2

  def test_missing_prediction_raises(self):
    with self.assertRaisesRegex(ValueError, r"missing 1 question\(s\) \['q2'\]"):
      squad_metrics.squad_evaluate({"q1": ["a"], "q2": ["b"]}, {"q1": "a"})

  def test_best_threshold_by_hand(self):
    # q1 answerable, right (EM 1, F1 1), null-odds -2; q3 answerable, words swapped (EM 0, F1 1), -1;
    # q2 unanswerable but answered "x", 0.5; q4 unanswerable but answered "y", 3.
    gold = {"q1": ["Eiffel Tower"], "q2": [], "q3": ["France Paris"], "q4": []}
    predictions = {"q1": "Eiffel Tower", "q2": "x", "q3": "Paris France", "q4": "y"}
    null_odds = {"q1": -2.0, "q2": 0.5, "q3": -1.0, "q4": 3.0}
    # All "": 2 right (q2, q4). By increasing null-odds, answer q1 (+1 -> 3), q3 (EM +0 -> 3, F1 +1 -> 4),
    # q2 (-1), q4 (-1). EM: best 3/4 first reached at -2; F1: best 4/4 at -1.
    result = squad_metrics.squad_evaluate(gold, predictions, null_odds=null_odds)
    self.assertAllClose([result["best_exact"], result["best_exact_thresh"]], [75.0, -2.0])
    self.assertAllClose([result["best_f1"], result["best_f1_thresh"]], [100.0, -1.0])
    # At the chosen threshold: q1, q3 keep their answers, q2, q4 become "" (right).
    at_best = squad_metrics.squad_evaluate(gold, predictions, null_odds=null_odds, null_threshold=-1.0)
    self.assertAllClose([at_best["exact"], at_best["f1"]], [75.0, 100.0])
    # The default threshold 1.0 leaves q2 (0.5) answered: EM 2/4 (q1, q4), F1 3/4.
    self.assertAllClose([result["exact"], result["f1"]], [50.0, 75.0])

  def test_best_threshold_when_answering_never_helps(self):
    # Answering either question loses a point: the best is all "", at the official initial threshold 0.0.
    score, threshold = squad_metrics.best_threshold({"a": "x", "b": "y"}, {"a": 0, "b": 0}, {"a": 1.0, "b": 2.0},
                                                    {"a": False, "b": False})
    self.assertEqual((score, threshold), (100.0, 0.0))


class ReaderTest(tf.test.TestCase, parameterized.TestCase):

  def _write(self, content, name="dev-v2.0.json", compress=False):
    path = os.path.join(self.get_temp_dir(), name)
    data = (json.dumps(content) if not isinstance(content, str) else content).encode("utf-8")
    with open(path, "wb") as f:
      f.write(gzip.compress(data) if compress else data)
    return path

  @parameterized.named_parameters(("plain", False), ("gzip", True))
  def test_reads_v2(self, compress):
    path = self._write(_squad_json([_tower_paragraph()]), compress=compress)
    when, tall = squad.read_squad(path)
    self.assertEqual(when, squad.SquadExample(
        "q-when", "When was the tower built?", CONTEXT, (squad.Answer("1889", 30), squad.Answer("in 1889", 27)),
        False, "Tower"))
    self.assertEqual(when.answers[1].end, 34)
    self.assertEqual((tall.qas_id, tall.is_impossible, tall.answers), ("q-tall", True, ()))
    self.assertEqual(squad.gold_answers([when, tall]), {"q-when": ["1889", "in 1889"], "q-tall": []})

  def test_reads_v1_without_is_impossible(self):
    paragraph = {"context": CONTEXT, "qas": [{"id": "q1", "question": "When?",
                                              "answers": [{"text": "Paris", "answer_start": 38}]}]}
    (example,) = squad.read_squad(self._write(_squad_json([paragraph], "1.1"), name="dev-v1.1.json"))
    self.assertFalse(example.is_impossible)
    self.assertEqual(example.answers, (squad.Answer("Paris", 38),))

  @parameterized.named_parameters(
      ("missing_context", lambda p: p.pop("context"), r"data\[0\]\.paragraphs\[0\] has no 'context' key; add it"),
      ("missing_question", lambda p: p["qas"][0].pop("question"),
       r"question 'q-when' \(data\[0\]\.paragraphs\[0\]\.qas\[0\]\) has no 'question' key"),
      ("offset_mismatch", lambda p: p["qas"][0]["answers"][0].update(answer_start=29),
       r"question 'q-when' .*answers\[0\] '1889' does not match the context at answer_start 29 \(' 188'\); set "
       r"answer_start to 30"),
      ("text_not_in_context", lambda p: p["qas"][0]["answers"][0].update(text="1890"),
       r"'1890' does not match .*the text does not occur in the context"),
      ("impossible_with_answers", lambda p: p["qas"][1].update(answers=[{"text": "Paris", "answer_start": 38}]),
       r"question 'q-tall' .*is_impossible is true but it has 1 answer"),
      ("answerable_without_answers", lambda p: p["qas"][0].update(answers=[]),
       r"question 'q-when' .*no answers; add one"),
      ("repeated_id", lambda p: p["qas"][1].update(id="q-when"), r"the id is used by an earlier question"),
      ("start_not_int", lambda p: p["qas"][0]["answers"][0].update(answer_start="30"),
       r"'answer_start' is '30', not of type int"),
  )
  def test_malformed_file_names_file_question_and_fix(self, corrupt, message):
    paragraph = _tower_paragraph()
    corrupt(paragraph)
    path = self._write(_squad_json([paragraph]))
    with self.assertRaisesRegex(squad.SquadError, "^" + re.escape(path) + ": .*" + message) as caught:
      squad.read_squad(path)
    self.assertNotIn("\n", str(caught.exception))

  def test_invalid_json_names_line(self):
    path = self._write('{"data": [\n  {"paragraphs": ]}')
    with self.assertRaisesRegex(squad.SquadError, r"line 2 column 18: invalid JSON"):
      squad.read_squad(path)

  def test_missing_file(self):
    with self.assertRaisesRegex(squad.SquadError, "no such file"):
      squad.read_squad(os.path.join(self.get_temp_dir(), "absent.json"))


class FeatureTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = os.path.join(tf.compat.v1.test.get_temp_dir(), "squad_vocab")
    cls.tokenizer = WordPieceTokenizer(tiny.write_vocab(os.path.join(root, "vocab.txt"), PIECES))

  def _examples(self):
    path = os.path.join(self.get_temp_dir(), "dev.json")
    with open(path, "w", encoding="utf-8") as f:
      json.dump(_squad_json([_tower_paragraph()]), f)
    return squad.read_squad(path)

  def test_short_features_by_hand(self):
    features = squad.encode_squad(self.tokenizer, self._examples(), max_seq_length=24, doc_stride=8,
                                  max_query_length=8)
    self.assertLen(features, 2)
    question = ["when", "was", "the", "tower", "built", "?"]
    context = ["the", "eiffel", "tower", "was", "built", "in", "1889", "in", "paris", "."]
    ids = [ID[t] for t in ["[CLS]"] + question + ["[SEP]"] + context + ["[SEP]"]]
    self.assertAllEqual(features.inputs["input_ids"][0], ids + [0] * (24 - len(ids)))
    self.assertAllEqual(features.inputs["input_mask"][0], [1] * 19 + [0] * 5)
    self.assertAllEqual(features.inputs["segment_ids"][0], [0] * 8 + [1] * 11 + [0] * 5)
    # "1889" is context piece 6, after [CLS], 6 question pieces and [SEP]: position 14.
    self.assertAllEqual(features.inputs["start_positions"], [14, 0])
    self.assertAllEqual(features.inputs["end_positions"], [14, 0])
    self.assertAllEqual(features.example_index, [0, 1])
    self.assertAllEqual(features.token_offsets[0, 14], [30, 34])
    self.assertAllEqual(features.token_offsets[0, 17], [43, 44])  # "." of "Paris."
    self.assertAllEqual(features.token_offsets[0, :8], -np.ones([8, 2]))
    self.assertAllEqual(features.token_is_max_context[0], [0] * 8 + [1] * 10 + [0] * 6)
    # "What is tall?" -> 4 pieces; the unanswerable question points at [CLS].
    self.assertAllEqual(features.inputs["segment_ids"][1, :6], [0] * 6)
    self.assertEqual(features.inputs["segment_ids"][1, 6], 1)

  def test_question_truncated(self):
    features = squad.encode_squad(self.tokenizer, self._examples()[:1], max_seq_length=24, max_query_length=3)
    self.assertAllEqual(features.inputs["input_ids"][0, :6], [ID[t] for t in ["[CLS]", "when", "was", "the", "[SEP]",
                                                                               "the"]])
    self.assertEqual(features.inputs["start_positions"][0], 11)  # 3 question pieces: shift 5, piece 6 -> 11

  def test_windows_on_long_context(self):
    rng = random.Random(3)
    filler = ["it", "is", "old", "and", "tall", "city", "towers,", "in"]
    before = " ".join(rng.choice(filler) for _ in range(17))
    after = " ".join(rng.choice(filler) for _ in range(19))
    answer = "Eiffel Towers"
    context = f"{before} the {answer}. {after}."
    start = context.index(answer)
    example = squad.SquadExample("long", "What?", context, (squad.Answer(answer, start),))
    # "What?" is 2 pieces: windows of 16 - 2 - 3 = 11 pieces, starts 0, 4, 8, ...
    features = squad.encode_squad(self.tokenizer, [example], max_seq_length=16, doc_stride=4, max_query_length=8)
    num_pieces = len(self.tokenizer.tokenize(context))
    self.assertGreater(num_pieces, 40)
    self.assertLen(features, -(-(num_pieces - 11) // 4) + 1)
    coverage = {}  # (char start, char end) of a piece -> windows where it is max context
    seen = set()
    for row in range(len(features)):
      for position in range(16):
        span = tuple(features.token_offsets[row, position])
        if span[0] < 0:
          self.assertEqual(features.token_is_max_context[row, position], 0)
          continue
        seen.add(span)
        coverage[span] = coverage.get(span, 0) + int(features.token_is_max_context[row, position])
    self.assertLen(seen, num_pieces)
    self.assertEqual(set(coverage.values()), {1})
    # The answer's pieces ("eiffel", "tower", "##s") decode back to the answer wherever the window holds them all.
    holding = 0
    for row in range(len(features)):
      s, e = features.inputs["start_positions"][row], features.inputs["end_positions"][row]
      if s == 0:
        self.assertEqual(e, 0)
        continue
      holding += 1
      self.assertEqual(e - s, 2)
      self.assertEqual(context[features.token_offsets[row, s, 0]:features.token_offsets[row, e, 1]], answer)
    self.assertGreaterEqual(holding, 1)

  def test_best_spans_short(self):
    features = squad.encode_squad(self.tokenizer, self._examples(), max_seq_length=24, doc_stride=8,
                                  max_query_length=8)
    start, end = np.zeros([2, 24]), np.zeros([2, 24])
    # Question 0: "Eiffel Tower" is context pieces 1-2, positions 9-10. A higher start on a question piece
    # (position 3), and an end before the start (position 8), are not spans.
    start[0, [3, 9]], end[0, [8, 10]] = [9.0, 4.0], [9.0, 3.0]
    start[0, 0], end[0, 0] = 1.0, 1.0
    # Question 1: [CLS] wins over the best span "1889" (position 12 here: 4 question pieces, shift 6).
    start[1, 0], end[1, 0], start[1, 12], end[1, 12] = 5.0, 5.0, 2.0, 2.0
    spans = squad.best_spans(start, end, features, n_best=5, max_answer_length=5)
    self.assertEqual(spans["q-when"], squad.SpanPrediction("Eiffel Tower", 4, 16, 7.0, 2.0, -5.0))
    self.assertEqual(spans["q-tall"], squad.SpanPrediction("1889", 30, 34, 4.0, 10.0, 6.0))
    self.assertEqual(squad.span_predictions(spans, null_threshold=0.0), {"q-when": "Eiffel Tower", "q-tall": ""})
    self.assertEqual(squad.span_predictions(spans), {"q-when": "Eiffel Tower", "q-tall": "1889"})
    # max_answer_length 1 leaves single pieces; with every position paired, "The" (position 8: start 0 + end 9)
    # beats "Eiffel" (start 4 + end 0).
    single = squad.best_spans(start, end, features, n_best=24, max_answer_length=1)["q-when"]
    self.assertEqual((single.text, single.start, single.end, single.score), ("The", 0, 3, 9.0))
    # The spans feed the metric: "Eiffel Tower" is wrong for q-when (gold "1889"), "" is right for q-tall.
    gold = squad.gold_answers(features.examples)
    scores = squad_metrics.squad_evaluate(gold, squad.span_predictions(spans, 0.0))
    self.assertEqual((scores["exact"], scores["f1"], scores["NoAns_exact"]), (50.0, 50.0, 100.0))

  def test_best_spans_skips_pieces_outside_their_best_window(self):
    context = " ".join(["it is old and tall"] * 6) + " in Paris."
    example = squad.SquadExample("p", "What?", context, (squad.Answer("Paris", context.index("Paris")),))
    features = squad.encode_squad(self.tokenizer, [example], max_seq_length=16, doc_stride=4, max_query_length=8)
    start, end = np.full([len(features), 16], -5.0), np.full([len(features), 16], -5.0)
    for row in range(len(features)):
      position = features.inputs["start_positions"][row]
      if position:
        start[row, position], end[row, position] = 3.0, 3.0
    # A decoy start in window 0 on a context piece whose best window is another one: were it allowed, any span from
    # it would score 50 - 5 = 45 > 3 + 3.
    decoy = [p for p in range(16) if features.token_offsets[0, p, 0] >= 0 and not features.token_is_max_context[0, p]]
    self.assertNotEmpty(decoy)
    start[0, decoy[0]] = 50.0
    span = squad.best_spans(start, end, features)["p"]
    self.assertEqual((span.text, span.start, span.end), ("Paris", context.index("Paris"), context.index("Paris") + 5))

  def test_sequence_too_short_for_question(self):
    # "When was the tower built?" is 6 pieces: [CLS] + 6 + two [SEP] = 9 leaves nothing of max_seq_length 9.
    with self.assertRaisesRegex(ValueError, r"question 'q-when': .*pass max_seq_length >= 10"):
      squad.encode_squad(self.tokenizer, self._examples(), max_seq_length=9)

  def test_logits_shape_checked(self):
    features = squad.encode_squad(self.tokenizer, self._examples(), max_seq_length=24)
    with self.assertRaisesRegex(ValueError, r"must both be \(2, 24\)"):
      squad.best_spans(np.zeros([2, 23]), np.zeros([2, 23]), features)


if __name__ == "__main__":
  tf.test.main()

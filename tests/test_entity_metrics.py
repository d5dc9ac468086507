"""Tests for tf_distill.entity_metrics: hand-computed entities and scores, and conlleval's own counting loop."""

import collections
import json
import random

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import tensorflow as tf

from tf_distill import entity_metrics


def _conlleval_counts(y_true, y_pred):
  """conlleval.pl's counting loop ported from the Perl (IOB tags only): a blank line between sentences is read as
  an `O O` line, and a chunk is correct when it starts and ends at the same lines with the same type in both columns.
  Returns (correct, found_guessed, found_correct), Counters by type."""

  def split(tag):
    return tuple(tag.split("-", 1)) if "-" in tag else (tag, "")

  def end_of_chunk(prev_tag, tag, prev_type, type_):
    return ((prev_tag, tag) in (("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))

  def start_of_chunk(prev_tag, tag, prev_type, type_):
    return ((prev_tag, tag) in (("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"))
            or (tag not in ("O", ".") and prev_type != type_))

  correct_chunk, found_guessed, found_correct = collections.Counter(), collections.Counter(), collections.Counter()
  in_correct = False
  last_correct, last_correct_type, last_guessed, last_guessed_type = "O", "", "O", ""
  lines = []
  for true_tags, pred_tags in zip(y_true, y_pred):
    lines += list(zip(true_tags, pred_tags)) + [("O", "O")]
  for correct_tag, guessed_tag in lines:
    correct, correct_type = split(correct_tag)
    guessed, guessed_type = split(guessed_tag)
    end_correct = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
    end_guessed = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
    start_correct = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
    start_guessed = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
    if in_correct:
      if end_correct and end_guessed and last_guessed_type == last_correct_type:
        in_correct = False
        correct_chunk[last_correct_type] += 1
      elif end_correct != end_guessed or guessed_type != correct_type:
        in_correct = False
    if start_correct and start_guessed and guessed_type == correct_type:
      in_correct = True
    if start_correct:
      found_correct[correct_type] += 1
    if start_guessed:
      found_guessed[guessed_type] += 1
    last_correct, last_correct_type, last_guessed, last_guessed_type = correct, correct_type, guessed, guessed_type
  if in_correct:
    correct_chunk[last_correct_type] += 1
  return correct_chunk, found_guessed, found_correct


class EntitiesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("b_then_i", ["O", "B-PER", "I-PER", "O"], [("PER", 1, 3)]),
      ("i_after_o_starts", ["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),
      ("i_at_sentence_start", ["I-LOC", "O"], [("LOC", 0, 1)]),
      ("i_of_other_type_starts", ["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
      ("b_after_i_same_type", ["B-PER", "I-PER", "B-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
      ("b_after_b", ["B-PER", "B-PER", "B-LOC"], [("PER", 0, 1), ("PER", 1, 2), ("LOC", 2, 3)]),
      ("entity_at_sentence_end", ["O", "B-creative-work", "I-creative-work"], [("creative-work", 1, 3)]),
      ("single_word", ["B-ORG"], [("ORG", 0, 1)]),
      ("no_entities", ["O", "O"], []),
      ("empty", [], []),
  )
  def test_entities(self, tags, expected):
    self.assertEqual(entity_metrics.entities(tags), expected)

  @parameterized.named_parameters(
      ("iobes", ["B-PER", "E-PER"], "sentence 3, word 1: tag 'E-PER' is not IOB2"),
      ("no_prefix", ["PER"], "sentence 3, word 0: tag 'PER' is not IOB2"),
      ("empty_type", ["O", "B-"], "sentence 3, word 1: tag 'B-' is not IOB2"),
  )
  def test_rejects_tags_that_are_not_iob2(self, tags, message):
    with self.assertRaisesRegex(ValueError, message):
      entity_metrics.entities(tags, sentence=3)


class EntityScoresTest(tf.test.TestCase, parameterized.TestCase):

  def test_seqeval_readme_example(self):
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    report = entity_metrics.entity_scores(y_true, y_pred)
    self.assertAllClose([report.micro.precision, report.micro.recall, report.micro.f1, report.f1],
                        [0.5, 0.5, 0.5, 0.5])
    self.assertEqual((report.micro.correct, report.micro.predicted, report.micro.support), (1, 2, 2))
    self.assertEqual(list(report.per_type), ["MISC", "PER"])
    self.assertEqual(report.per_type["MISC"], entity_metrics.EntityScores(0.0, 0.0, 0.0, 1, 1, 0))
    self.assertEqual(report.per_type["PER"], entity_metrics.EntityScores(1.0, 1.0, 1.0, 1, 1, 1))

  def test_hand_computed_corpus(self):
    y_true = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],             # PER(0,2) LOC(3,4)
        ["O", "B-PER", "O", "B-PER", "I-PER", "I-PER"],    # PER(1,2) PER(3,6)
        ["B-LOC", "I-LOC", "O", "B-PER"],                  # LOC(0,2) PER(3,4)
    ]
    y_pred = [
        ["B-PER", "I-PER", "O", "B-LOC", "O"],             # PER(0,2) ok, LOC(3,4) ok
        ["O", "B-PER", "O", "B-PER", "I-PER", "O"],        # PER(1,2) ok, PER(3,5) wrong end
        ["B-LOC", "O", "B-ORG", "B-PER"],                  # LOC(0,1) wrong end, ORG(2,3) spurious, PER(3,4) ok
    ]
    report = entity_metrics.entity_scores(y_true, y_pred)
    # Gold: PER 4, LOC 2. Predicted: PER 4, LOC 2, ORG 1. Correct: PER 3, LOC 1.
    self.assertEqual((report.micro.correct, report.micro.predicted, report.micro.support), (4, 7, 6))
    precision, recall = 4 / 7, 4 / 6
    self.assertAllClose([report.micro.precision, report.micro.recall, report.micro.f1],
                        [precision, recall, 2 * precision * recall / (precision + recall)])
    self.assertAllClose(report.micro.f1, 8 / 13)  # 2C / (P + G)
    self.assertEqual(list(report.per_type), ["LOC", "ORG", "PER"])
    self.assertAllClose([report.per_type["PER"].precision, report.per_type["PER"].recall, report.per_type["PER"].f1],
                        [0.75, 0.75, 0.75])
    self.assertAllClose([report.per_type["LOC"].precision, report.per_type["LOC"].recall, report.per_type["LOC"].f1],
                        [0.5, 0.5, 0.5])
    self.assertEqual(report.per_type["ORG"], entity_metrics.EntityScores(0.0, 0.0, 0.0, 0, 1, 0))
    self.assertEqual([report.per_type[name].support for name in ("LOC", "ORG", "PER")], [2, 0, 4])

  def test_i_after_o_matches_b(self):
    report = entity_metrics.entity_scores([["O", "B-PER", "I-PER"]], [["O", "I-PER", "I-PER"]])
    self.assertEqual((report.micro.correct, report.micro.f1), (1, 1.0))

  def test_type_switch_splits_the_entity(self):
    # Predicted B-PER I-LOC reads as PER(0,1) LOC(1,2): both match the gold B-PER B-LOC; B-PER I-PER would not.
    report = entity_metrics.entity_scores([["B-PER", "B-LOC"], ["B-PER", "B-LOC"]],
                                          [["B-PER", "I-LOC"], ["B-PER", "I-PER"]])
    self.assertEqual((report.micro.correct, report.micro.predicted, report.micro.support), (2, 3, 4))
    self.assertAllClose(report.micro.f1, 2 * 2 / (3 + 4))

  def test_sentence_boundary_ends_entities(self):
    # Across two sentences B-PER | I-PER is two entities, never one spanning the boundary.
    report = entity_metrics.entity_scores([["B-PER"], ["I-PER", "O"]], [["B-PER"], ["B-PER", "O"]])
    self.assertEqual((report.micro.correct, report.micro.predicted, report.micro.support), (2, 2, 2))

  def test_entity_ending_at_sentence_end(self):
    report = entity_metrics.entity_scores([["O", "B-LOC", "I-LOC"]], [["O", "B-LOC", "I-LOC"]])
    self.assertEqual(report.micro.f1, 1.0)
    report = entity_metrics.entity_scores([["O", "B-LOC", "I-LOC"]], [["O", "B-LOC", "O"]])
    self.assertEqual((report.micro.correct, report.micro.f1), (0, 0.0))

  def test_empty_predictions_give_zero_not_nan(self):
    report = entity_metrics.entity_scores([["B-PER", "O"], ["B-LOC", "I-LOC"]], [["O", "O"], ["O", "O"]])
    self.assertEqual(report.micro, entity_metrics.EntityScores(0.0, 0.0, 0.0, 2, 0, 0))
    self.assertEqual(report.per_type["PER"], entity_metrics.EntityScores(0.0, 0.0, 0.0, 1, 0, 0))
    report = entity_metrics.entity_scores([["O"]], [["O"]])
    self.assertEqual(report.micro, entity_metrics.EntityScores(0.0, 0.0, 0.0, 0, 0, 0))
    self.assertEqual(report.per_type, {})
    report = entity_metrics.entity_scores([], [])
    self.assertEqual(report.micro.f1, 0.0)

  def test_to_dict_is_json(self):
    report = entity_metrics.entity_scores([["B-PER", "O"]], [["B-PER", "B-LOC"]])
    restored = json.loads(json.dumps(report.to_dict()))
    self.assertEqual(restored["correct"], 1)
    self.assertEqual(restored["predicted"], 2)
    self.assertAllClose([restored["precision"], restored["recall"], restored["f1"]], [0.5, 1.0, 2 / 3])
    self.assertEqual(restored["per_type"]["LOC"], {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                                   "predicted": 1, "correct": 0})

  def test_errors_name_the_sentence(self):
    with self.assertRaisesRegex(ValueError, "y_true has 2 sentences but y_pred 1"):
      entity_metrics.entity_scores([["O"], ["O"]], [["O"]])
    with self.assertRaisesRegex(ValueError, "sentence 1: 2 gold tags but 1 predicted"):
      entity_metrics.entity_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with self.assertRaisesRegex(ValueError, "sentence 0, word 1: tag 'S-PER' is not IOB2"):
      entity_metrics.entity_scores([["O", "O"]], [["O", "S-PER"]])

  @parameterized.named_parameters(("seed0", 0), ("seed1", 1), ("seed2", 2))
  def test_matches_conlleval_counting(self, seed):
    rng = random.Random(seed)
    tags = ["O", "O", "B-A", "I-A", "B-B", "I-B", "B-long-type", "I-long-type"]
    for _ in range(200):
      y_true = [[rng.choice(tags) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 5))]
      # Predictions near the gold tags, so that a good share of entities match.
      y_pred = [[tag if rng.random() < 0.7 else rng.choice(tags) for tag in sentence] for sentence in y_true]
      correct, guessed, gold = _conlleval_counts(y_true, y_pred)
      report = entity_metrics.entity_scores(y_true, y_pred)
      self.assertEqual({name: (s.correct, s.predicted, s.support) for name, s in report.per_type.items()},
                       {name: (correct[name], guessed[name], gold[name]) for name in set(guessed) | set(gold)},
                       (y_true, y_pred))
      self.assertEqual(report.micro.correct, sum(correct.values()))


if __name__ == "__main__":
  tf.test.main()

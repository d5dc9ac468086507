"""Tests for tf_distill.layer_map: named and explicit layer maps, match specs, and their errors."""

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import tensorflow as tf

from tf_distill.layer_map import (Match, format_matches, named_layer_map, parse_layer_map, parse_matches,
                                  required_outputs)

# (teacher N, student M) -> expected teacher layer for student layers 1..M, written out by hand.
#   uniform: nearest to m*N/M, halves up;  skip: N - (M-m)*floor(N/M);  last: N - M + m.
EXPECTED = {
    (6, 2): {"uniform": (3, 6), "skip": (3, 6), "last": (5, 6)},
    (6, 3): {"uniform": (2, 4, 6), "skip": (2, 4, 6), "last": (4, 5, 6)},
    # 6/4 = 1.5: 1.5 -> 2, 3, 4.5 -> 5, 6; skip has k = 1.
    (6, 4): {"uniform": (2, 3, 5, 6), "skip": (3, 4, 5, 6), "last": (3, 4, 5, 6)},
    (12, 4): {"uniform": (3, 6, 9, 12), "skip": (3, 6, 9, 12), "last": (9, 10, 11, 12)},
    (12, 6): {"uniform": (2, 4, 6, 8, 10, 12), "skip": (2, 4, 6, 8, 10, 12), "last": (7, 8, 9, 10, 11, 12)},
    (6, 6): {"uniform": (1, 2, 3, 4, 5, 6), "skip": (1, 2, 3, 4, 5, 6), "last": (1, 2, 3, 4, 5, 6)},
    # 4/3: 1.33 -> 1, 2.67 -> 3, 4; skip k = 1 from the top.
    (4, 3): {"uniform": (1, 3, 4), "skip": (2, 3, 4), "last": (2, 3, 4)},
    # 7/3: 2.33 -> 2, 4.67 -> 5, 7; skip k = 2 from the top: 3, 5, 7.
    (7, 3): {"uniform": (2, 5, 7), "skip": (3, 5, 7), "last": (5, 6, 7)},
    (12, 5): {"uniform": (2, 5, 7, 10, 12), "skip": (4, 6, 8, 10, 12), "last": (8, 9, 10, 11, 12)},
}

CASES = [(f"{name}_{n}to{m}", name, n, m, teacher)
         for (n, m), maps in EXPECTED.items() for name, teacher in maps.items()]


class LayerMapTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(CASES)
  def test_named_maps(self, name, teacher_layers, student_layers, teacher):
    expected = tuple(zip(range(1, student_layers + 1), teacher))
    self.assertEqual(named_layer_map(name, student_layers, teacher_layers), expected)
    self.assertEqual(parse_layer_map(name, student_layers, teacher_layers), expected)

  def test_explicit_pairs_are_sorted_and_may_use_embeddings(self):
    self.assertEqual(parse_layer_map("3:6, 1:2,2:4", 3, 6), ((1, 2), (2, 4), (3, 6)))
    self.assertEqual(parse_layer_map("0:0,uniform", 3, 6), ((0, 0), (1, 2), (2, 4), (3, 6)))
    self.assertEqual(parse_layer_map("1:5,1:6", 2, 6), ((1, 5), (1, 6)))  # one student layer, two teachers
    self.assertEqual(parse_layer_map("", 3, 6), ())

  @parameterized.named_parameters(
      ("student_out_of_range", "4:6", r"layer map pair '4:6': student layer 4 is out of range \[0, 3\]"),
      ("teacher_out_of_range", "1:7", r"layer map pair '1:7': teacher layer 7 is out of range \[0, 6\]"),
      ("negative", "-1:2", r"student layer '-1' is not a layer number; use 0 \(embeddings\) to 3"),
      ("three_fields", "1:2:3", r"layer map token '1:2:3' is not a 'student:teacher' pair"),
      ("unknown_name", "uniformly", r"layer map token 'uniformly' is not one of \['uniform', 'skip', 'last'\].*"
                                    r"student layers 0..3, teacher layers 0..6"),
      ("empty_token", "1:2,,2:4", r"layer map token '' is not one of"),
      ("duplicate", "uniform,3:6", r"gives the pair 3:6 twice"),
  )
  def test_layer_map_errors(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      parse_layer_map(spec, 3, 6)

  def test_named_maps_need_a_shallower_student(self):
    with self.assertRaisesRegex(ValueError, r"'skip' needs student_layers <= teacher_layers, got a 6-layer student "
                                r"and a 4-layer teacher"):
      parse_layer_map("skip", 6, 4)
    with self.assertRaisesRegex(ValueError, r"teacher_layers must be an integer >= 1, got 0"):
      parse_layer_map("uniform", 2, 0)
    self.assertEqual(parse_layer_map("1:1,2:1", 2, 1), ((1, 1), (2, 1)))  # explicit pairs still work


class MatchesTest(tf.test.TestCase, parameterized.TestCase):

  def test_losses_over_the_layer_map(self):
    """TinyBERT: hidden states at every pair including the embeddings; attention only at transformer layers."""
    matches = parse_matches("hidden_mse:1.0,attention_mse_scores:2", 3, 6, layer_map="0:0,uniform")
    self.assertEqual(matches, (
        Match(0, 0, "hidden_mse", 1.0), Match(1, 2, "hidden_mse", 1.0), Match(2, 4, "hidden_mse", 1.0),
        Match(3, 6, "hidden_mse", 1.0), Match(1, 2, "attention_mse_scores", 2.0),
        Match(2, 4, "attention_mse_scores", 2.0), Match(3, 6, "attention_mse_scores", 2.0)))
    # Weight defaults to 1; a parsed map can be passed directly.
    self.assertEqual(parse_matches("cosine", 2, 4, layer_map=((1, 2), (2, 4))),
                     (Match(1, 2, "cosine", 1.0), Match(2, 4, "cosine", 1.0)))

  def test_explicit_matches_and_mixing(self):
    matches = parse_matches("s1:t2:hidden_mse:1.0; s0:t0:hidden_mse:0.5;attention_kl:3", 2, 4, layer_map="last")
    self.assertEqual(matches, (Match(1, 2, "hidden_mse", 1.0), Match(0, 0, "hidden_mse", 0.5),
                               Match(1, 3, "attention_kl", 3.0), Match(2, 4, "attention_kl", 3.0)))
    self.assertEqual(parse_matches("s2:t4:value_relation", 2, 4), (Match(2, 4, "value_relation", 1.0),))

  def test_two_layer_losses(self):
    """fsp over the map pairs consecutive entries, from the embeddings; explicitly it names two layers per side."""
    self.assertEqual(parse_matches("fsp:0.5", 3, 6, layer_map="uniform"),
                     (Match((0, 1), (0, 2), "fsp", 0.5), Match((1, 2), (2, 4), "fsp", 0.5),
                      Match((2, 3), (4, 6), "fsp", 0.5)))
    self.assertEqual(parse_matches("fsp", 2, 4, layer_map="0:0,1:2,2:4"),
                     (Match((0, 1), (0, 2), "fsp", 1.0), Match((1, 2), (2, 4), "fsp", 1.0)))
    self.assertEqual(parse_matches("s0,2:t0,4:fsp:2", 2, 4), (Match((0, 2), (0, 4), "fsp", 2.0),))

  def test_format_round_trip(self):
    matches = parse_matches("hidden_mse,attention_mse_probs:0.25;s0,1:t0,3:fsp:1e-3;qkv_relation:7", 2, 6,
                            layer_map="0:0,skip")
    text = format_matches(matches)
    self.assertEqual(text.split(";")[:2], ["s0:t0:hidden_mse:1.0", "s1:t3:hidden_mse:1.0"])
    self.assertIn("s0,1:t0,3:fsp:0.001", text)
    self.assertEqual(parse_matches(text, 2, 6, layer_map=""), matches)

  def test_required_outputs(self):
    matches = parse_matches("s0:t0:hidden_mse;s2:t4:attention_kl;s1:t2:qkv_relation", 2, 4)
    self.assertEqual(required_outputs(matches), ("attention_keys", "attention_queries", "attention_scores",
                                                 "attention_values", "embeddings"))
    self.assertEqual(required_outputs(parse_matches("s1:t0:hidden_mse", 2, 4)), ("embeddings",))
    self.assertEqual(required_outputs(parse_matches("s1:t0:hidden_mse", 2, 4), side="student"), ("hidden_states",))
    self.assertEqual(required_outputs(parse_matches("fsp", 1, 2, layer_map="1:2")), ("embeddings", "hidden_states"))

  @parameterized.named_parameters(
      ("unknown_loss", "hidden_mse,mse_hidden", r"match 'mse_hidden' in 'hidden_mse,mse_hidden': unknown feature loss "
                                                r"'mse_hidden'; known: \['attention_kl', .*'value_relation'\]"),
      ("unknown_explicit_loss", "s1:t2:tinybert", r"unknown feature loss 'tinybert'"),
      ("negative_weight", "hidden_mse:-1", r"match 'hidden_mse:-1': weight must be a finite number > 0, got -1"),
      ("zero_weight", "s1:t2:cosine:0", r"weight must be a finite number > 0, got 0"),
      ("nan_weight", "cosine:nan", r"weight must be a finite number > 0, got nan"),
      ("weight_not_a_number", "cosine:high", r"weight 'high' is not a number"),
      ("student_out_of_range", "s4:t2:hidden_mse", r"match 's4:t2:hidden_mse': student layer 4 is out of range "
                                                   r"\[0, 3\]"),
      ("teacher_out_of_range", "s1:t7:hidden_mse", r"teacher layer 7 is out of range \[0, 6\]"),
      ("attention_at_embeddings", "s0:t0:attention_mse_scores", r"layer 0 is the embedding output, which has no "
                                                                r"attention_scores; attention_mse_scores needs layers"),
      ("fsp_one_layer", "s1:t2:fsp", r"fsp takes 2 student layers, got 's1'; write e.g. 's0,1'"),
      ("pair_for_one_layer_loss", "s0,1:t0,2:cosine", r"cosine takes 1 student layer, got 's0,1'"),
      ("malformed_explicit", "s1:hidden_mse", r"match 's1:hidden_mse' is not 'sS:tT:LOSS\[:WEIGHT\]'"),
      ("too_many_fields", "hidden_mse:1:2", r"match 'hidden_mse:1:2' is not 'LOSS\[:WEIGHT\]'"),
      ("empty_item", "hidden_mse;;cosine", r"empty item between ';'"),
      ("empty_entry", "hidden_mse,", r"match '' in 'hidden_mse,' is not 'LOSS\[:WEIGHT\]'"),
      ("duplicate", "hidden_mse;s3:t6:hidden_mse:2", r"give hidden_mse between student layer 3 and teacher layer 6 "
                                                     r"twice"),
  )
  def test_match_errors(self, spec, message):
    with self.assertRaisesRegex(ValueError, message):
      parse_matches(spec, 3, 6, layer_map="uniform")

  def test_losses_over_an_empty_map_are_an_error(self):
    with self.assertRaisesRegex(ValueError, r"applies over the layer map, but the layer map is empty"):
      parse_matches("hidden_mse", 3, 6, layer_map="")
    self.assertEqual(parse_matches("", 3, 6), ())

  def test_match_is_frozen(self):
    match = Match(1, 2, "hidden_mse", 1.0)
    with self.assertRaises(AttributeError):
      match.weight = 2.0  # pytype: disable=not-writable


if __name__ == "__main__":
  tf.test.main()

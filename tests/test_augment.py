"""Tests for tf_distill.augment: each rule against expectations computed here by hand with numpy.

Rates are checked over many draws within 4.5 binomial standard deviations (a correct implementation fails such a
check about once in 150,000 runs; the seeds are fixed, so each check is in fact deterministic).
"""

import collections
import csv
import os
import shutil
import subprocess
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.augment import AugmentResources, augment_examples, build_augmenter, example_rng, parse_spec
from tf_distill.augment.dataset import augment_example
from tf_distill.augment.neighbours import EmbeddingNeighbours, EmbeddingsFileError, from_glove, from_teacher
from tf_distill.augment.pos import NeighbourReplacer, PosReplacer, find_tagger
from tf_distill.augment.spec import TangSpec, TinyBertSpec, canonical
from tf_distill.augment.tang import TangAugmenter
from tf_distill.augment.tinybert import TinyBertAugmenter
from tf_distill.augment.words import STOP_WORDS, is_replaceable, split_words
from tf_distill.data.processors import CsvProcessor, InputExample

import tiny

SIGMAS = 4.5


def assert_binomial(test, successes, trials, p):
  sd = np.sqrt(trials * p * (1 - p))
  test.assertLessEqual(abs(successes - trials * p), SIGMAS * sd + 1e-9,
                       f"{successes}/{trials} = {successes / trials:.4f}, expected p = {p}")


def by_hand_neighbours(matrix, vocab, word, k):
  """Cosine top-k over alphabetic tokens other than `word`, written out in numpy."""
  unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
  q = unit[vocab.index(word)]
  scored = sorted(((-float(unit[i] @ q), i) for i, t in enumerate(vocab) if t.isalpha() and t != word))
  return [vocab[i] for _, i in scored[:k]]


class DictTagger:
  """A fixed word -> tag table (the tests' stand-in for a statistical tagger's output)."""
  name = "dict"

  def __init__(self, table):
    self.table = table

  def tag_all(self, sentences):
    return [[self.table[w] for w in words] for words in sentences]


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##s", "good", "great", "fine", "bad", "awful", "poor",
         "movie", "film", "plot", "actor", "the", "is", "42", "very"]


def small_space(k=3, seed=0):
  matrix = np.random.default_rng(seed).normal(size=(len(VOCAB), 6))
  return matrix, EmbeddingNeighbours(matrix, VOCAB, k=k)


class SpecTest(parameterized.TestCase):

  def test_defaults_are_the_papers(self):
    self.assertEqual(parse_spec("tang"), TangSpec(n=20, p_mask=0.1, p_pos=0.1, p_ng=0.25, max_ngram=5))
    self.assertEqual(parse_spec("tinybert"), TinyBertSpec(n=20, p=0.4, k=15))

  def test_overrides_and_canonical(self):
    spec = parse_spec(" tang:n=5, p_ng=0.5 ")
    self.assertEqual((spec.n, spec.p_ng, spec.p_mask), (5, 0.5, 0.1))
    self.assertEqual(canonical(spec), "tang:n=5,p_mask=0.1,p_pos=0.1,p_ng=0.5,max_ngram=5,k=15")
    self.assertEqual(parse_spec(canonical(spec)), spec)

  @parameterized.parameters(
      ("eda:n=3", LookupError, "unknown augmentation rule 'eda'"),
      ("tang:q=1", ValueError, "tang has no parameter 'q'"),
      ("tang:n=2.5", ValueError, "n must be an integer"),
      ("tang:n=0", ValueError, "n must be an integer >= 1"),
      ("tang:p_mask=x", ValueError, "p_mask must be a number"),
      ("tinybert:p=1.5", ValueError, "p must be a probability in [0, 1], got 1.5"),
      ("tang:p_mask=0.6,p_pos=0.5", ValueError, "p_mask + p_pos must be <= 1"),
      ("tang:n", ValueError, "expected key=value"),
      ("tang:n=2,n=3", ValueError, "n is given twice"))
  def test_bad_specs(self, text, error, message):
    with self.assertRaises(error) as raised:
      parse_spec(text)
    self.assertIn(message, str(raised.exception))


class WordsTest(tf.test.TestCase):

  def test_split_and_replaceable(self):
    self.assertEqual(split_words("It's a well-made film."), ["It", "'", "s", "a", "well", "-", "made", "film", "."])
    self.assertEqual([w for w in split_words("The plot is NOT dull, 42 x2") if is_replaceable(w)], ["plot", "dull"])
    self.assertTrue({"the", "not", "very", "it's", "don"} <= STOP_WORDS)


class NeighboursTest(tf.test.TestCase):

  def test_cosine_top_k_by_hand(self):
    matrix, space = small_space(k=4)
    for word in ("good", "movie", "awful"):
      self.assertEqual(space.neighbours(word), by_hand_neighbours(matrix, VOCAB, word, 4))
    self.assertEqual(space.neighbours("Good"), [w.title() for w in by_hand_neighbours(matrix, VOCAB, "good", 4)])
    self.assertEqual(space.neighbours("zebra"), [])

  def test_pieces_mean_for_words_outside_the_vocab(self):
    matrix, _ = small_space()
    space = EmbeddingNeighbours(matrix, VOCAB, k=2, tokenize=lambda w: ["film", "##s"] if w == "films" else ["[UNK]"])
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    query = (unit[VOCAB.index("film")] + unit[VOCAB.index("##s")]) / 2
    expected = sorted((i for i, t in enumerate(VOCAB) if t.isalpha()), key=lambda i: -float(unit[i] @ query))[:2]
    self.assertEqual(space.neighbours("films"), [VOCAB[i] for i in expected])

  def test_glove_file(self):
    path = os.path.join(self.get_temp_dir(), "vectors.txt")
    with open(path, "w", encoding="utf-8") as f:
      f.write("3 2\ngood 1 0\ngreat 0.9 0.1\nbad -1 0.2\n")
    space = from_glove(path, k=2)
    self.assertEqual(space.vocab, ["good", "great", "bad"])
    self.assertAllClose(space.unit[2], np.array([-1, 0.2]) / np.hypot(1, 0.2))
    self.assertEqual(space.neighbours("good"), ["great", "bad"])
    self.assertEqual(space.neighbours("Bad"), ["Great", "Good"])

  def test_glove_errors_name_file_and_line(self):
    cases = [("good 1 0\ngreat 1\n", 2, "1 values but the vectors have 2"),
             ("good 1 0\ngreat 1 x\n", 2, "'x' is not a number"),
             ("good 1 0\n\nbad 1 1\n", 2, "empty line"),
             ("good 1 0\nbad 0 1\ngood 1 1\n", 3, "'good' appears twice"),
             ("good\n", 1, "a word without a vector"),
             ("good 1 nan\n", 1, "the vector of 'good' has inf or nan"),
             ("", 1, "no vectors")]
    for i, (content, line, message) in enumerate(cases):
      path = os.path.join(self.get_temp_dir(), f"bad{i}.txt")
      with open(path, "w", encoding="utf-8") as f:
        f.write(content)
      with self.assertRaises(EmbeddingsFileError) as raised:
        from_glove(path)
      self.assertIn(f"{path}, line {line}: {message}", str(raised.exception))
    path = os.path.join(self.get_temp_dir(), "latin1.txt")
    with open(path, "wb") as f:
      f.write(b"good 1 0\ncaf\xe9 0 1\n")
    with self.assertRaisesRegex(EmbeddingsFileError, f"{path}, line 2: not UTF-8"):
      from_glove(path)
    with self.assertRaisesRegex(FileNotFoundError, "does not exist"):
      from_glove(os.path.join(self.get_temp_dir(), "missing.txt"))


class TeacherEmbeddingsTest(tf.test.TestCase):

  def test_teacher_word_embeddings(self):
    teacher = tiny.shared_teacher()
    matrix = teacher.model.embeddings.word_embeddings.embeddings.numpy()  # the Keras model, not the export
    space = from_teacher(teacher.model_dir, k=5)
    self.assertIn("teacher word embeddings", space.description)
    for word in ("good", "plot"):
      self.assertEqual(space.neighbours(word), by_hand_neighbours(matrix, tiny.VOCAB, word, 5))


class PretrainedEmbeddingsTest(tf.test.TestCase):

  def test_pretrained_dir_word_embeddings(self):
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
    from tf_distill.augment.neighbours import from_pretrained_dir  # pylint: disable=import-outside-toplevel
    path = tiny.write_pretrained_dir(os.path.join(self.get_temp_dir(), "pretrained"))
    matrix = load_file(os.path.join(path, "model.safetensors"))["bert.embeddings.word_embeddings.weight"]
    space = from_pretrained_dir(path, k=4)
    for word in ("good", "Awful"):
      expected = by_hand_neighbours(matrix, tiny.VOCAB, word.lower(), 4)
      self.assertEqual(space.neighbours(word), [w.title() for w in expected] if word.istitle() else expected)


class TangTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.matrix, self.space = small_space(k=3)
    self.words = ["good", "great", "fine", "bad", "awful", "poor", "movie", "film", "plot", "actor"] * 3

  def _draws(self, spec, count, seed=0):
    augmenter = TangAugmenter(spec.validate(), NeighbourReplacer(self.space))
    rng = np.random.default_rng(seed)
    return [augmenter.draw(self.words, None, rng) for _ in range(count)]

  def test_mask_and_replacement_rates(self):
    draws = self._draws(TangSpec(p_mask=0.1, p_pos=0.1, p_ng=0.0), 400)
    masked = replaced = 0
    for draw in draws:
      self.assertLen(draw, len(self.words))
      for original, new in zip(self.words, draw):
        masked += new == "[MASK]"
        if new not in ("[MASK]", original):
          replaced += 1
          self.assertIn(new, by_hand_neighbours(self.matrix, VOCAB, original, 3))
    trials = len(draws) * len(self.words)
    assert_binomial(self, masked, trials, 0.1)
    assert_binomial(self, replaced, trials, 0.1)

  def test_fallback_leaves_punctuation_and_numbers(self):
    augmenter = TangAugmenter(TangSpec(p_mask=0.2, p_pos=0.8, p_ng=0.0), NeighbourReplacer(self.space))
    rng = np.random.default_rng(0)
    words = ["good", ",", "42", "movie"]
    seen = collections.defaultdict(set)
    for _ in range(300):
      for i, w in enumerate(augmenter.draw(words, None, rng)):
        seen[i].add(w)
    self.assertEqual(seen[1], {",", "[MASK]"})
    self.assertEqual(seen[2], {"42", "[MASK]"})
    self.assertEqual(seen[0], set(by_hand_neighbours(self.matrix, VOCAB, "good", 3)) | {"[MASK]"})

  def test_ngram_lengths_and_rate(self):
    draws = self._draws(TangSpec(p_mask=0.0, p_pos=0.0, p_ng=1.0), 2000)
    lengths = collections.Counter(len(d) for d in draws)
    self.assertEqual(set(lengths), {1, 2, 3, 4, 5})
    for n in range(1, 6):
      assert_binomial(self, lengths[n], len(draws), 0.2)
    joined = " " + " ".join(self.words) + " "
    for draw in draws[:200]:
      self.assertIn(" " + " ".join(draw) + " ", joined)  # a contiguous n-gram
    sampled = sum(len(d) < len(self.words) for d in self._draws(TangSpec(p_mask=0.0, p_pos=0.0, p_ng=0.25), 2000))
    assert_binomial(self, sampled, 2000, 0.25)

  def test_short_text_caps_n(self):
    augmenter = TangAugmenter(TangSpec(p_mask=0.0, p_pos=0.0, p_ng=1.0), None)
    rng = np.random.default_rng(1)
    lengths = collections.Counter(len(augmenter.draw(["a", "b", "c"], None, rng)) for _ in range(3000))
    for n, p in ((1, 0.2), (2, 0.2), (3, 0.6)):  # n in 4..5 is capped at 3
      assert_binomial(self, lengths[n], 3000, p)

  def test_one_draw_by_hand(self):
    spec = TangSpec(p_mask=0.3, p_pos=0.3, p_ng=0.5, max_ngram=2)
    words = ["good", "movie", "plot", "bad"]
    augmenter = TangAugmenter(spec, NeighbourReplacer(self.space))
    for seed in range(20):
      got = augmenter.draw(words, None, np.random.default_rng(seed))
      rng = np.random.default_rng(seed)  # the documented order of draws, replayed
      x = rng.random(4)
      out = []
      for word, xi in zip(words, x):
        if xi < 0.3:
          out.append("[MASK]")
        elif xi < 0.6:
          out.append(by_hand_neighbours(self.matrix, VOCAB, word, 3)[rng.integers(3)])
        else:
          out.append(word)
      if rng.random() < 0.5:
        n = rng.integers(1, 3)
        start = rng.integers(4 - n + 1)
        out = out[start:start + n]
      self.assertEqual(got, out)

  def test_pos_replacement_draws_from_tag_unigrams(self):
    table = {"good": "JJ", "great": "JJ", "fine": "JJ", "movie": "NN", "plot": "NN", "the": "DT"}
    corpus = [["the", "good", "movie"], ["the", "great", "plot"], ["the", "great", "movie"], ["the", "fine", "plot"],
              ["good", "great", "great"]]
    replacer = PosReplacer(DictTagger(table), corpus)
    words = ["the", "good", "movie"]
    context = replacer.prepare(words)
    self.assertEqual(context, ["DT", "JJ", "NN"])
    rng = np.random.default_rng(0)
    draws = collections.Counter(replacer.replace(words, 1, context, rng) for _ in range(4000))
    # JJ counts: good 2, great 4, fine 1; "good" itself is left out: great 4/5, fine 1/5.
    self.assertEqual(set(draws), {"great", "fine"})
    assert_binomial(self, draws["great"], 4000, 0.8)
    noun = collections.Counter(replacer.replace(words, 2, context, rng) for _ in range(100))
    self.assertEqual(noun, {"plot": 100})  # NN: movie 2, plot 2; movie excluded
    self.assertIsNone(replacer.replace(words, 0, context, rng))  # DT has only "the"

  def test_duplicates_and_original_dropped(self):
    augmenter = TangAugmenter(TangSpec(n=20, p_mask=1.0, p_pos=0.0, p_ng=0.0), None)
    self.assertEqual(augmenter.augment("good movie", None, np.random.default_rng(0)), [("[MASK] [MASK]", None)])
    augmenter = TangAugmenter(TangSpec(n=50, p_mask=0.5, p_pos=0.0, p_ng=0.0), None)
    variants = augmenter.augment("good movie", None, np.random.default_rng(0))
    self.assertCountEqual(variants, [("[MASK] movie", None), ("good [MASK]", None), ("[MASK] [MASK]", None)])

  def test_pairs_augment_both_sides_each_draw(self):
    augmenter = TangAugmenter(TangSpec(n=30, p_mask=0.3, p_pos=0.0, p_ng=0.0), None)
    variants = augmenter.augment("good movie plot", "bad film actor", np.random.default_rng(0))
    self.assertLen(set(variants), len(variants))
    self.assertNotIn(("good movie plot", "bad film actor"), variants)
    both = [v for v in variants if v[0] != "good movie plot" and v[1] != "bad film actor"]
    self.assertNotEmpty(both)  # a per-side rule never changes both

  def test_tagger_choice(self):
    self.assertIsNone(find_tagger("none"))
    with self.assertRaisesRegex(ValueError, "pos_tagger must be one of"):
      find_tagger("brill")
    tagger = find_tagger("auto")
    if tagger is None:  # no tagger installed: replacement needs an embedding space, and says so
      with self.assertRaisesRegex(ValueError, "no POS tagger is installed"):
        build_augmenter(parse_spec("tang"), AugmentResources(), ["good movie"])
    else:
      tags = tagger.tag_all([["a", "good", "movie"]])[0]
      self.assertLen(tags, 3)


class TinyBertTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.matrix, self.space = small_space(k=3)
    self.augmenter = TinyBertAugmenter(TinyBertSpec(n=20, p=0.4, k=3), self.space)

  def test_candidates_and_stop_words(self):
    words = split_words("The good movie is very awful , 42 actor zebra")
    candidates = self.augmenter.prepare(words)
    self.assertEqual(sorted(candidates), [1, 2, 5, 8, 9])  # good movie awful actor zebra
    self.assertEqual(candidates[1], by_hand_neighbours(self.matrix, VOCAB, "good", 3))
    self.assertEqual(candidates[9], ["zebra"])  # no vector: the word itself
    rng = np.random.default_rng(0)
    changed = collections.Counter()
    for _ in range(2000):
      draw = self.augmenter.draw(words, candidates, rng)
      for i, (a, b) in enumerate(zip(words, draw)):
        changed[i] += a != b
    for i in (0, 3, 4, 6, 7, 9):  # stop words, punctuation, numbers, a word without candidates
      self.assertEqual(changed[i], 0)
    for i in (1, 2, 5, 8):  # candidates never include the word itself
      assert_binomial(self, changed[i], 2000, 0.4)

  def test_one_draw_by_hand(self):
    words = ["good", "the", "movie"]
    context = self.augmenter.prepare(words)
    for seed in range(10):
      rng = np.random.default_rng(seed)
      expected = list(words)
      for i in (0, 2):
        choice = rng.integers(3)
        if rng.random() < 0.4:
          expected[i] = by_hand_neighbours(self.matrix, VOCAB, words[i], 3)[choice]
      self.assertEqual(self.augmenter.draw(words, context, np.random.default_rng(seed)), expected)

  def test_pairs_one_side_at_a_time(self):
    variants = self.augmenter.augment("good movie", "awful plot", np.random.default_rng(0))
    self.assertLen(set(variants), len(variants))
    self.assertLessEqual(len(variants), 40)
    for a, b in variants:
      self.assertEqual((a == "good movie") + (b == "awful plot"), 1)
    self.assertTrue(any(a != "good movie" for a, _ in variants) and any(b != "awful plot" for _, b in variants))

  def test_needs_an_embedding_space(self):
    with self.assertRaisesRegex(ValueError, "needs an embedding space"):
      build_augmenter(parse_spec("tinybert"), AugmentResources())
    with self.assertRaisesRegex(ValueError, "used by tinybert augmentation only"):
      build_augmenter(parse_spec("tang"), AugmentResources(masked_lm_dir="x"))


class MaskedLmTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    import transformers  # pylint: disable=import-outside-toplevel
    cls.root = tempfile.mkdtemp(prefix="tf_distill_mlm_")
    cls.dir = os.path.join(cls.root, "mlm")
    cls.vocab = tiny.VOCAB[:60] + ["##ly", "##er"]
    tiny.write_vocab(os.path.join(cls.dir, "vocab.txt"), cls.vocab)
    config = transformers.BertConfig(vocab_size=len(cls.vocab), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=12)
    tf.random.set_seed(0)
    cls.model = transformers.TFBertForMaskedLM(config)
    cls.model(cls.model.dummy_inputs)
    cls.model.save_pretrained(cls.dir)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_candidates_are_top_k_at_the_mask(self):
    from tf_distill.augment.masked_lm import MaskedLmCandidates  # pylint: disable=import-outside-toplevel
    mlm = MaskedLmCandidates(self.dir, k=8)
    words = ["good", "movie", "plot"]
    got = mlm.candidates(words, [0, 2])
    ids = {t: i for i, t in enumerate(self.vocab)}
    for position in (0, 2):
      tokens = ["[CLS]"] + ["[MASK]" if j == position else w for j, w in enumerate(words)] + ["[SEP]"] + words
      tokens = (tokens + ["[SEP]"])[:12]  # the model's 12 positions
      segments = [0] * 5 + [1] * (len(tokens) - 5)
      logits = self.model(input_ids=np.array([[ids[t] for t in tokens]]), token_type_ids=np.array([segments]),
                          training=False).logits.numpy()[0, position + 1]
      top = [self.vocab[i] for i in np.argsort(-logits)[:8]]
      self.assertEqual(got[position], [t for t in top if not t.startswith("##") and t[0] != "["])

  def test_tinybert_uses_the_masked_lm_for_single_pieces(self):
    augmenter = build_augmenter(parse_spec("tinybert:k=8"),
                                AugmentResources(masked_lm_dir=self.dir, embeddings_file=self._glove()))
    words = ["good", "goodly"]  # "goodly" is two pieces (good ##ly): embedding neighbours
    candidates = augmenter.prepare(words)
    self.assertEqual(candidates[0], augmenter.masked_lm.candidates(words, [0])[0])
    self.assertEqual(candidates[1], ["great", "bad"])

  def _glove(self):
    path = os.path.join(self.get_temp_dir(), "glove.txt")
    with open(path, "w", encoding="utf-8") as f:
      f.write("goodly 1 0\ngreat 0.9 0.1\nbad 0 1\n")
    return path

  def test_bad_directory(self):
    from tf_distill.augment.masked_lm import MaskedLmCandidates, MaskedLmError  # pylint: disable=import-outside-toplevel
    with self.assertRaisesRegex(MaskedLmError, "does not exist"):
      MaskedLmCandidates(os.path.join(self.get_temp_dir(), "nope"))
    empty = os.path.join(self.get_temp_dir(), "empty")
    os.makedirs(empty)
    with self.assertRaisesRegex(MaskedLmError, r"lacks \['config.json', 'vocab.txt'\]"):
      MaskedLmCandidates(empty)
    import transformers  # pylint: disable=import-outside-toplevel
    headless = os.path.join(self.get_temp_dir(), "headless")
    model = transformers.TFBertModel(self.model.config)
    model(model.dummy_inputs)
    model.save_pretrained(headless)
    tiny.write_vocab(os.path.join(headless, "vocab.txt"), self.vocab)
    with self.assertRaisesRegex(MaskedLmError, "without its MLM head"):
      MaskedLmCandidates(headless)


class DeterminismTest(tf.test.TestCase):

  def test_variants_depend_on_seed_epoch_and_example_only(self):
    _, space = small_space(k=3)
    augmenter = TangAugmenter(TangSpec(n=10), NeighbourReplacer(space))
    examples = [InputExample(str(i), text, label="pos") for i, text in
                enumerate(["good movie plot actor", "bad film is poor", "great plot", "the awful actor film"])]
    first = augment_examples(augmenter, examples, seed=3, epoch=1)
    self.assertEqual(first, augment_examples(augmenter, examples, seed=3, epoch=1))
    alone = augment_example(augmenter, examples[2], index=2, seed=3, epoch=1)
    self.assertEqual(alone, [a for a in first if a.index == 2 and a.variant > 0])
    self.assertNotEqual(first, augment_examples(augmenter, examples, seed=3, epoch=2))
    self.assertNotEqual(first, augment_examples(augmenter, examples, seed=4, epoch=1))
    self.assertEqual([(a.index, a.variant) for a in first if a.variant == 0], [(i, 0) for i in range(4)])
    self.assertEqual(example_rng(3, 1, 2).random(4).tolist(),
                     np.random.Generator(np.random.PCG64(np.random.SeedSequence([3, 1, 2]))).random(4).tolist())
    with self.assertRaisesRegex(ValueError, "epoch must be an integer >= 0"):
      example_rng(1, -1, 0)


class AugmentCliTest(tf.test.TestCase):
  """`python -m tf_distill.cli.augment` as users run it, on a tiny CSV task and a GloVe file written here."""

  def _run(self, *args):
    return subprocess.run([tiny.PYTHON, "-m", "tf_distill.cli.augment"] + list(args), env=tiny.subprocess_env(),
                          capture_output=True, text=True, timeout=300, check=False)

  def test_writes_the_augmented_file_and_refuses_bad_vectors(self):
    root = self.get_temp_dir()
    data_dir = tiny.write_csv_task(os.path.join(root, "task"), num_train=6)
    with open(os.path.join(data_dir, "train.csv"), "a", encoding="utf-8") as f:
      f.write('"a ""great"" film \\ with a dull\tplot",pos\n')  # quotes and a backslash survive the TSV; a tab becomes a space
    glove = os.path.join(root, "glove.txt")
    rng = np.random.default_rng(0)
    with open(glove, "w", encoding="utf-8") as f:
      f.writelines(w + " " + " ".join(f"{x:.3f}" for x in rng.normal(size=4)) + "\n" for w in tiny.WORDS)
    output = os.path.join(root, "out", "train_aug.tsv")
    result = self._run("--task_name=csv", f"--data_dir={data_dir}", "--augmentation=tang:n=4,p_ng=0.5",
                       f"--embeddings_file={glove}", f"--output_file={output}", "--seed=7", "--pos_tagger=none")
    self.assertEqual(result.returncode, 0, result.stderr[-2000:])
    self.assertIn("replacement: embedding neighbours (GloVe-format vectors", result.stdout)
    with open(output, encoding="utf-8") as f:
      rows = list(csv.reader(f, delimiter="\t"))
    self.assertEqual(rows[0], ["index", "variant", "text", "label"])
    examples = CsvProcessor("text", "label").get_train_examples(data_dir)
    # The file holds, for each example, the original and then exactly what the library draws for (seed 7, epoch 0).
    augmenter = build_augmenter(parse_spec("tang:n=4,p_ng=0.5"),
                                AugmentResources(embeddings_file=glove, pos_tagger="none"))
    expected = [[str(a.index), str(a.variant), " ".join(a.text_a.split()), a.label]
                for a in augment_examples(augmenter, examples, seed=7, epoch=0)]
    self.assertEqual(rows[1:], expected)
    self.assertEqual([r[2] for r in rows[1:] if r[1] == "0"], [" ".join(e.text_a.split()) for e in examples])
    self.assertIn(f"wrote {output}: 7 examples of train, {len(expected) - 7} variants", result.stdout)

    with open(glove, "a", encoding="utf-8") as f:
      f.write("broken 1 2\n")
    result = self._run("--task_name=csv", f"--data_dir={data_dir}", "--augmentation=tinybert",
                       f"--embeddings_file={glove}", f"--output_file={output}")
    self.assertEqual(result.returncode, 1)
    self.assertEqual(result.stderr.strip().splitlines()[-1],
                     f"error: {glove}, line {len(tiny.WORDS) + 1}: 2 values but the vectors have 4 (fix the line; a "
                     "word must not contain spaces)")
    self.assertNotIn("Traceback", result.stderr)


class TransferSetTest(tf.test.TestCase):
  """An augmented set labelled by the tiny exported teacher, online and through the teacher cache."""

  def test_online_and_cached_labels_match_the_keras_teacher(self):
    from tf_distill.augment.transfer import build_transfer_set  # pylint: disable=import-outside-toplevel
    from tf_distill.data.tokenization import WordPieceTokenizer  # pylint: disable=import-outside-toplevel
    from tf_distill.teacher import SavedModelTeacher  # pylint: disable=import-outside-toplevel
    shared = tiny.shared_teacher()
    teacher = SavedModelTeacher(shared.path)
    examples = CsvProcessor("text", "label").get_train_examples(
        tiny.write_csv_task(os.path.join(self.get_temp_dir(), "task"), num_train=5))
    matrix = np.random.default_rng(0).normal(size=(len(tiny.WORDS), 4))
    augmenter = TangAugmenter(TangSpec(n=3), NeighbourReplacer(EmbeddingNeighbours(matrix, tiny.WORDS, k=3)))
    tokenizer = WordPieceTokenizer(shared.vocab_file)
    online = build_transfer_set(augmenter, examples, tokenizer, 16, tiny.LABELS, teacher, seed=5)
    rows = augment_examples(augmenter, examples, seed=5)
    self.assertEqual(online.rows, rows)
    features = tokenizer.encode([r.to_input_example() for r in rows], 16, tiny.LABELS)
    expected = shared.model({k: tf.constant(features[k]) for k in ("input_ids", "input_mask", "segment_ids")},
                            training=False)["logits"].numpy()
    self.assertAllClose(online.teacher_logits, expected, atol=1e-4)
    originals = np.array([r.variant == 0 for r in rows])
    self.assertAllEqual(online.features["label_ids"][originals], features["label_ids"][originals])
    self.assertAllEqual(online.features["label_ids"][~originals], -np.ones((~originals).sum()))
    self.assertAllEqual(online.features["example_index"], np.arange(len(rows)))
    messages = []
    cache_dir = os.path.join(self.get_temp_dir(), "cache")
    cached = build_transfer_set(augmenter, examples, tokenizer, 16, tiny.LABELS, teacher, seed=5,
                                cache_dir=cache_dir, log=messages.append)
    self.assertAllClose(cached.teacher_logits, expected, atol=1e-4)
    again = build_transfer_set(augmenter, examples, tokenizer, 16, tiny.LABELS, teacher, seed=5,
                               cache_dir=cache_dir, cache_mode="use", log=messages.append)
    self.assertAllEqual(again.teacher_logits, cached.teacher_logits)
    self.assertIn("teacher cache: using", messages[-1])
    other = build_transfer_set(augmenter, examples, tokenizer, 16, tiny.LABELS, teacher, seed=6,
                               cache_dir=cache_dir, log=messages.append)
    self.assertIn("training data changed", messages[-2])  # another seed: other rows, the cache is rebuilt
    self.assertLen(other.teacher_logits, len(other.rows))


if __name__ == "__main__":
  tf.test.main()

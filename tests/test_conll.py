"""Tests for tf_distill.data.conll, the shipped WNUT-17 files and the Wnut17 TFDS builder."""

import collections
import gzip
import hashlib
import os
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import tensorflow as tf

from tf_distill.data import conll
from tf_distill.data import tfds_builders

import offline

WNUT_DIR = os.path.join(os.path.dirname(os.path.abspath(tfds_builders.__file__)), "wnut17")
WNUT_TYPES = ["corporation", "creative-work", "group", "location", "person", "product"]
# Git blob ids of the source files in leondz/emerging_entities_17 (`git ls-tree HEAD`), and what they hold, counted
# when the files were added (sentences, words, B- tags per type in WNUT_TYPES order).
WNUT_FILES = {
    "train": ("train.conll.gz", "f492698d4776475fd62851998b7b3623c416c92f", 3394, 62730,
              [221, 140, 264, 548, 660, 142]),
    "dev": ("dev.conll.gz", "128e929f695c9f7499a8e652ee46cd505848e34e", 1009, 15733, [34, 105, 39, 74, 470, 114]),
    "test": ("test.conll.gz", "a599ac827c810886f53978afca5596a9ab1ef4a6", 1287, 23394, [66, 142, 165, 150, 429, 127]),
}


def _write(directory, name, text, encoding="utf-8"):
  path = os.path.join(directory, name)
  with open(path, "wb") as f:
    f.write(text.encode(encoding) if isinstance(text, str) else text)
  return path


def _read_wnut(split):
  with gzip.open(os.path.join(WNUT_DIR, WNUT_FILES[split][0]), "rb") as f:
    return f.read()


class ReadConllTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.get_temp_dir()

  def test_tab_file_with_docstart_and_blank_lines_of_spaces(self):
    text = ("-DOCSTART-\tO\n\n"
            "EU\tB-ORG\r\nrejects\tO\nGerman\tB-MISC\n\t\n"  # a tab-only line ends a sentence (WNUT-17's train)
            "Peter\tB-PER\nBlackburn\tI-PER\n   \n\n"
            "-DOCSTART-\tO\n"
            "BRUSSELS\tB-LOC\n-DOCSTART-\tO\nlast\tO")  # -DOCSTART- ends a sentence; no newline at the end
    sentences = conll.read_conll(_write(self.dir, "train.txt", text))
    self.assertEqual([(s.words, s.tags, s.line) for s in sentences], [
        (("EU", "rejects", "German"), ("B-ORG", "O", "B-MISC"), 3),
        (("Peter", "Blackburn"), ("B-PER", "I-PER"), 7),
        (("BRUSSELS",), ("B-LOC",), 12),
        (("last",), ("O",), 14),
    ])

  def test_space_separated_columns_and_label_column(self):
    text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman  JJ B-NP  B-MISC\ncall NN I-NP O\n"
    path = _write(self.dir, "conll03.txt", text)
    self.assertEqual(conll.read_conll(path)[0].tags, ("B-ORG", "O", "B-MISC", "O"))
    self.assertEqual(conll.read_conll(path, label_column=2)[0].tags, ("B-NP", "B-VP", "B-NP", "I-NP"))
    self.assertEqual(conll.read_conll(path, label_column=-2)[0].tags, ("B-NP", "B-VP", "B-NP", "I-NP"))
    self.assertEqual(conll.read_conll(path)[0].words, ("EU", "rejects", "German", "call"))

  def test_gzip_is_found_by_content_and_utf8_bom_is_dropped(self):
    text = "\ufeffNew York\tB-LOC\n\u00a0\tO\nA\u2028B\tO\n"  # a word with a space, an NBSP word, U+2028 inside
    plain = conll.read_conll(_write(self.dir, "plain.txt", text))
    zipped = conll.read_conll(_write(self.dir, "zipped.txt", gzip.compress(text.encode("utf-8"))))
    self.assertEqual(plain, zipped)
    self.assertEqual(plain[0].words, ("New York", "\u00a0", "A\u2028B"))
    self.assertEqual(plain[0].tags, ("B-LOC", "O", "O"))

  def test_stray_i_tag_is_kept_when_its_type_is_known(self):
    # IOB2 would write B-PER at line 2; conlleval reads I-PER after O as a start, so the reader keeps it.
    path = _write(self.dir, "train.txt", "a\tO\nb\tI-PER\nc\tI-LOC\n\nd\tB-PER\ne\tB-LOC\n")
    self.assertEqual(conll.read_conll(path)[0].tags, ("O", "I-PER", "I-LOC"))

  def test_tag_list_from_training_file(self):
    path = _write(self.dir, "train.txt", "a\tB-person\nb\tO\n\nc\tB-creative-work\nd\tI-creative-work\ne\tB-geo\n")
    sentences = conll.read_conll(path)
    labels = conll.tags_of(sentences)
    # O first, then a B-/I- pair for every type, types sorted, even where no I- tag occurs.
    self.assertEqual(labels, ["O", "B-creative-work", "I-creative-work", "B-geo", "I-geo", "B-person", "I-person"])
    self.assertEqual(conll.tag_ids(sentences, labels), [[5, 0], [1, 2, 3]])
    self.assertEqual(conll.tag_list(["b", "a", "b"]), ["O", "B-a", "I-a", "B-b", "I-b"])

  def test_labels_restrict_the_tags(self):
    path = _write(self.dir, "dev.txt", "a\tB-PER\nb\tI-PER\n")
    self.assertLen(conll.read_conll(path, labels=["O", "B-PER", "I-PER"]), 1)
    # Given labels, an I- tag is checked against them, not against the file's B- tags.
    path = _write(self.dir, "dev2.txt", "a\tI-PER\n")
    self.assertEqual(conll.read_conll(path, labels=["O", "B-PER", "I-PER"])[0].tags, ("I-PER",))

  def test_error_is_one_line_with_file_line_and_fix(self):
    path = _write(self.dir, "train.txt", "John\tB-PER\n\nin\tO\nParis\tB-LOC\nx\tI-PRSN\n")
    with self.assertRaises(conll.ConllError) as raised:
      conll.read_conll(path)
    self.assertEqual(str(raised.exception),
                     f"{path}, line 5: tag 'I-PRSN' has a type no B- tag in this file names; known types: "
                     "['LOC', 'PER']. Fix the tag or list it with --labels")
    self.assertIsInstance(raised.exception, ValueError)

  @parameterized.named_parameters(
      ("wrong_column_count", "a\tNN\tO\nb\tNN\tO\nc\tO\n", {},
       r"line 3: 2 column\(s\) but the file's first word line has 3"),
      ("missing_tag", "a\tB-PER\tO\nb\t\tO\n", {"label_column": 1}, r"line 2: missing tag in column 1"),
      ("tag_shape", "a\tO\nb\tPER\n", {}, r"line 2: tag 'PER' is not IOB2; tags are 'O', 'B-TYPE' or 'I-TYPE'"),
      ("lower_case_prefix", "a\tb-PER\n", {}, r"line 1: tag 'b-PER' is not IOB2"),
      ("iobes", "a\tB-PER\nb\tE-PER\n", {}, r"line 2: tag 'E-PER' is not IOB2"),
      ("empty_type", "a\tB-\n", {}, r"line 1: tag 'B-' is not IOB2"),
      ("shape_with_label_column", "a NN O\n", {"label_column": 1},
       r"line 1: tag 'NN' is not IOB2.*fix the tag or --label_column"),
      ("unknown_i_type_in_labels", "a\tO\n\nb\tB-PER\nc\tI-ORG\n", {"labels": ["O", "B-PER", "I-PER"]},
       r"line 4: tag 'I-ORG' has a type the label list \(from the training file or --labels\) does not name; "
       r"known types: \['PER'\]. Fix the tag or list it with --labels"),
      ("b_tag_not_in_labels", "a\tB-ORG\n", {"labels": ["O", "B-PER", "I-PER"]},
       r"line 1: tag 'B-ORG' is not in the label list .*; fix the tag or add it to --labels"),
      ("one_column", "\n\nword\n", {}, r"line 3: 1 column; a CoNLL line needs the word and its tag"),
      ("label_column_is_word", "a\tO\n", {"label_column": 0}, r"line 1: label_column 0 does not name a tag column"),
      ("label_column_too_large", "a\tO\n", {"label_column": 2},
       r"line 1: label_column 2 .* pass --label_column between 1 and 1"),
      ("no_sentences", "-DOCSTART-\tO\n\n\n", {}, r"line 1: no tagged words"),
      ("not_utf8", b"a\tO\nb\tO\n\ncaf\xe9\tO\n", {}, r"line 4: not UTF-8 \(byte b'\\xe9' at byte 4 of the line\)"),
      ("nul", b"a\tO\nb\x00\tO\n", {}, r"line 2: contains a NUL byte"),
      ("utf16", "a\tO\n".encode("utf-16"), {}, r"line 1: the file is UTF-16 or UTF-32"),
  )
  def test_errors(self, text, kwargs, message):
    path = _write(self.dir, "data.txt", text)
    with self.assertRaisesRegex(conll.ConllError, "^" + path.replace("/", r"\/") + ", " + message) as raised:
      conll.read_conll(path, **kwargs)
    self.assertNotIn("\n", str(raised.exception))

  def test_damaged_gzip_and_missing_file(self):
    path = _write(self.dir, "broken.gz", gzip.compress(b"a\tO\n" * 100)[:-12])  # drops the end of the stream
    with self.assertRaisesRegex(conll.ConllError, "broken.gz: gzip data is damaged"):
      conll.read_conll(path)
    with self.assertRaisesRegex(conll.ConllError, "nope.txt: no such file"):
      conll.read_conll(os.path.join(self.dir, "nope.txt"))

  def test_label_list_checks(self):
    self.assertEqual(conll.check_labels(("O", "B-X", "I-X")), ["O", "B-X", "I-X"])
    with self.assertRaisesRegex(conll.ConllError, "labels is empty"):
      conll.check_labels([])
    with self.assertRaisesRegex(conll.ConllError, r"labels: tag 'PER' is not IOB2.*Fix --labels"):
      conll.check_labels(["O", "PER"])
    with self.assertRaisesRegex(conll.ConllError, r"labels: \['B-X'\] listed more than once"):
      conll.check_labels(["O", "B-X", "B-X"])
    with self.assertRaisesRegex(conll.ConllError, r"sentence at line 7: tag 'B-Y' is not in the label list"):
      conll.tag_ids([conll.TaggedSentence(("a",), ("B-Y",), 7)], ["O", "B-X", "I-X"])


class ShippedWnut17Test(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("train", "train"), ("dev", "dev"), ("test", "test"))
  def test_files_are_the_source_files(self, split):
    content = _read_wnut(split)
    blob_id = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # `git hash-object`
    self.assertEqual(blob_id, WNUT_FILES[split][1])

  @parameterized.named_parameters(("train", "train"), ("dev", "dev"), ("test", "test"))
  def test_counts(self, split):
    _, _, num_sentences, num_words, entities_per_type = WNUT_FILES[split]
    sentences = conll.read_conll(os.path.join(WNUT_DIR, WNUT_FILES[split][0]))
    self.assertLen(sentences, num_sentences)
    self.assertEqual(sum(len(sentence.words) for sentence in sentences), num_words)
    # Counted here from the raw text, independently of the reader: lines are "word\ttag", sentences end at blank lines.
    lines = _read_wnut(split).decode("utf-8").split("\n")
    tags = [line.split("\t")[1] for line in lines if line.strip()]
    self.assertLen(tags, num_words)
    self.assertEqual(sum(1 for i, line in enumerate(lines) if line.strip() and (i == 0 or not lines[i - 1].strip())),
                     num_sentences)
    begins = collections.Counter(tag[2:] for tag in tags if tag.startswith("B-"))
    self.assertEqual([begins[name] for name in WNUT_TYPES], entities_per_type)
    self.assertEqual(conll.tags_of(sentences), conll.tag_list(WNUT_TYPES))
    self.assertEqual(conll.tag_list(WNUT_TYPES), list(tfds_builders.Wnut17.LABELS))

  def test_licence_citation_and_readme(self):
    with open(os.path.join(WNUT_DIR, "LICENSE"), encoding="utf-8") as f:
      licence = f.read()
    self.assertIn("CC BY 4.0", licence)
    self.assertIn("https://creativecommons.org/licenses/by/4.0/", licence)
    with open(os.path.join(WNUT_DIR, "CITATION"), encoding="utf-8") as f:
      citation = f.read()
    for part in ("Derczynski", "Nichols", "van Erp", "Limsopatham", "2017",
                 "Results of the {WNUT}2017 Shared Task on Novel and Emerging Entity Recognition",
                 "Proceedings of the 3rd Workshop on Noisy User-generated Text"):
      self.assertIn(part, citation)
    with open(os.path.join(WNUT_DIR, "README.md"), encoding="utf-8") as f:
      readme = f.read()
    self.assertIn("leondz/emerging_entities_17", readme)
    for _, blob_id, num_sentences, _, _ in WNUT_FILES.values():
      self.assertIn(blob_id, readme)
      self.assertIn(f"{num_sentences:,}", readme)


class Wnut17BuilderTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data_dir = tempfile.mkdtemp()
    cls.builder, cls.network_calls = offline.prepare_offline(tfds_builders.Wnut17, cls.data_dir)
    cls.splits = {}
    for split in ("train", "validation", "test"):
      rows = {}
      for example in cls.builder.as_dataset(split=split).as_numpy_iterator():
        rows[int(example["id"])] = ([token.decode("utf-8") for token in example["tokens"]], list(example["tags"]))
      cls.splits[split] = rows

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.data_dir, ignore_errors=True)
    super().tearDownClass()

  def test_offline_counts_and_features(self):
    self.assertEqual(self.network_calls, [])
    self.assertEqual(str(self.builder.info.version), "1.0.0")
    self.assertEqual({name: split.num_examples for name, split in self.builder.info.splits.items()},
                     {"train": 3394, "validation": 1009, "test": 1287})
    self.assertEqual({name: len(rows) for name, rows in self.splits.items()},
                     {"train": 3394, "validation": 1009, "test": 1287})
    self.assertEqual(self.builder.info.features["tags"].feature.names, list(tfds_builders.Wnut17.LABELS))
    self.assertLen(tfds_builders.Wnut17.LABELS, 13)
    self.assertIn("Derczynski", self.builder.info.citation)

  def test_examples_match_the_files(self):
    labels = tfds_builders.Wnut17.LABELS
    for split, file_split in (("train", "train"), ("validation", "dev"), ("test", "test")):
      sentences = conll.read_conll(os.path.join(WNUT_DIR, WNUT_FILES[file_split][0]))
      self.assertEqual(sorted(self.splits[split]), list(range(len(sentences))))
      for index, sentence in enumerate(sentences):
        tokens, tags = self.splits[split][index]
        self.assertEqual(tokens, list(sentence.words))
        self.assertEqual([labels[tag] for tag in tags], list(sentence.tags))
    tokens, tags = self.splits["train"][0]
    self.assertEqual(tokens[14:19], ["Empire", "State", "Building", "=", "ESB"])
    self.assertEqual([labels[tag] for tag in tags[14:19]], ["B-location", "I-location", "I-location", "O",
                                                            "B-location"])

  def test_prepared_data_is_reused(self):
    info_path = os.path.join(self.builder.data_dir, "dataset_info.json")
    before = os.stat(info_path).st_mtime_ns
    tfds_builders.prepare(tfds_builders.Wnut17, self.data_dir)
    self.assertEqual(os.stat(info_path).st_mtime_ns, before)


if __name__ == "__main__":
  tf.test.main()

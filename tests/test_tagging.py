"""The tagging task type (tf_distill.tasks.tagging): the token head, the task-type registry, the tagger's text
signature, and the whole flow on a tiny CoNLL task: train_teacher with entity F1 in eval_results.json,
export_teacher, distill into a BERT student (augmentation, teacher cache) and a BiLSTM (unlabeled text),
export_student with per-word parity and the F1 rule, verify-export."""

import json
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
from tf_distill.data.token_alignment import encode_tagged
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.entity_metrics import entity_scores
from tf_distill.export import parity, run_export, serving, text_signature
from tf_distill.export.tflite import TFLiteClassifier
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
    with self.assertRaisesRegex(ValueError, r"head 'spans' is not supported; use one of \['pooled', 'token', "
                                r"'span'\]"):
      tiny.tiny_config(head="spans").validate()

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
      ("squad", "squad", "question_answering", "span", "val_f1"),
  )
  def test_task_names_map_to_types(self, task_name, type_name, head, monitor):
    task_type = tasks.task_type_of(task_name)
    self.assertIs(task_type, tasks.TASK_TYPES.get(type_name))
    self.assertEqual(task_type.head, head)
    self.assertEqual(task_type.monitor, monitor)

  def test_unknown_task_lists_the_known(self):
    with self.assertRaisesRegex(LookupError, r"unknown task 'sst2'; known: \['bbc_news', 'conll', 'csv', "
                                r"'rotten_tomatoes', 'squad', 'wnut17'\]"):
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


class TaggingTextSignatureTest(tf.test.TestCase):
  """serving_text of a tagger (text_signature.tagging_text_function) against the Python encoding, by hand."""

  def test_words_tags_and_logits_at_first_pieces(self):
    vocab = tiny.write_vocab(os.path.join(self.get_temp_dir(), "vocab.txt"))
    labels = ["O", "B-x", "I-x"]
    model = tiny.tiny_classifier(seed=2, head="token", num_labels=3)
    encoder = text_signature.TextEncoder(
        text_signature.write_asset_vocab(vocab, os.path.join(self.get_temp_dir(), "asset.txt")), True, 8)
    serve = tf.function(lambda features: {"logits": model(features, training=False)["logits"]})
    signature = text_signature.tagging_text_function(serve, encoder, labels)
    texts = ["Good\tfilm\u00a0was  fun", "", " bad ", "the plot zzqx movie is very dull and bad"]
    out = {k: v.numpy() for k, v in signature(text=tf.constant(texts)).items()}
    words = [text.split() for text in texts]  # Python's whitespace: tab, no-break space, runs of spaces
    self.assertEqual(out["words"].shape, (4, max(len(w) for w in words)))
    self.assertEqual(out["word_logits"].shape, (4, max(len(w) for w in words), 3))
    features = encode_tagged(WordPieceTokenizer(vocab), words, 8)
    logits = model({k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False)["logits"]
    for i, sentence in enumerate(words):
      self.assertEqual([w.decode() for w in out["words"][i][:len(sentence)]], sentence)
      self.assertTrue(all(w == b"" for w in out["words"][i][len(sentence):]))
      first_row = int(np.flatnonzero(features["sentence_ids"] == i)[0])  # the signature reads the first window only
      for j in range(len(sentence)):
        position = np.flatnonzero(features["word_ids"][first_row] == j)
        if len(position):  # scored in the first window: the same pieces before it, the same logits
          self.assertAllClose(out["word_logits"][i, j], logits[first_row, position[0]], atol=1e-5)
          self.assertEqual(out["tags"][i, j].decode(), labels[int(np.argmax(logits[first_row, position[0]]))])
    # The long text: 9 words of one piece each ("zzqx" is [UNK]); 6 fit between [CLS] and [SEP], the rest are cut.
    self.assertAllEqual(out["tags"][3, 6:] == b"", [True] * 3)
    self.assertAllEqual(out["word_logits"][3, 6:], np.zeros([3, 3]))
    self.assertTrue(all(tag != b"" for tag in out["tags"][3, :6]))


class TaggerFlowTest(tf.test.TestCase):
  """The NER flow on a tiny CoNLL task, run once for the class, as a user runs it: train_teacher (with a bad-file
  case beside it), export_teacher, distill a 1-layer BERT (augmentation, teacher cache) and a BiLSTM (unlabeled
  text), export_student and verify-export each."""

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
    with open(os.path.join(cls.work, "unlabeled.txt"), "w", encoding="utf-8") as f:
      f.write("the good film was fun\nbad movie\na very dull story and a great actor\n")
    cls.pretrained = tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"))
    common = [f"--init_checkpoint={cls.pretrained}", "--task_name=conll", f"--max_seq_length={MAX_SEQ_LENGTH}",
              "--train_batch_size=4", "--learning_rate=3e-3", "--num_train_epochs=6"]
    import concurrent.futures  # pylint: disable=import-outside-toplevel
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      good = pool.submit(run_cli, "train_teacher", common + ["--data_dir=data", "--output_dir=runs/tagger"], cls.work)
      broken = pool.submit(run_cli, "train_teacher", common + [f"--data_dir={bad}", "--output_dir=runs/bad"],
                           cls.work)
      cls.result, cls.bad_result = good.result(), broken.result()
      cls.export_teacher = run_cli("export_teacher", ["--output_dir=runs/tagger", "--export_dir=export"], cls.work)
      distill = ["--task_name=conll", "--data_dir=data", "--teacher_model=export/teacher", "--train_batch_size=4",
                 f"--max_seq_length={MAX_SEQ_LENGTH}",
                 "--learning_rate=3e-3", "--num_train_epochs=4", "--alpha=0.5", "--temperature=2"]
      students = {"bert": ["--student_num_layers=1", "--augmentation=tang:n=2", "--teacher_cache=auto"],
                  "bilstm": ["--student_type=bilstm", "--bilstm_embedding_size=16", "--bilstm_lstm_units=16",
                             "--bilstm_hidden_units=16", "--unlabeled_data=unlabeled.txt"]}
      runs = {name: pool.submit(run_cli, "distill", distill + args + [f"--output_dir=runs/{name}"], cls.work)
              for name, args in students.items()}
      cls.distilled = {name: run.result() for name, run in runs.items()}
      exports = {name: pool.submit(run_cli, "export_student", [f"--output_dir=runs/{name}", "--export_dir=export",
                                                               f"--model_name={name}", "--tflite=float32,int8"],
                                   cls.work) for name in students}
      cls.exported = {name: run.result() for name, run in exports.items()}
      verified = {name: pool.submit(run_cli, "verify_export", [f"export/{name}"], cls.work) for name in students}
      report = pool.submit(run_cli, "report", ["--teacher_model=export/teacher", "--data_dir=data",
                                               "--models=bert:export/bert,bilstm:export/bilstm",
                                               "--tflite=bert_int8:export/bert_tflite", "--latency_examples=3",
                                               "--latency_rounds=1", "--report_dir=export"], cls.work)
      cls.verified = {name: run.result() for name, run in verified.items()}
      cls.report = report.result()
    cls.run_dir = RunDir(os.path.join(cls.work, "runs", "tagger"))

  def _predict_words(self, model, features, labels, logits=None):
    """Each word's predicted tag, read by hand at the position where word_ids names it (from `logits` when given)."""
    if logits is None:
      inputs = {key: features[key] for key in ("input_ids", "input_mask", "segment_ids")}
      logits = model(inputs, training=False)["logits"].numpy()
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


  def _student(self, name):
    for result in (self.distilled[name], self.exported[name]):
      self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    return RunDir(os.path.join(self.work, "runs", name))

  def test_distilled_students_report_the_entity_scores_of_their_best_model(self):
    self.assertEqual(self.export_teacher.returncode, 0, self.export_teacher.stderr[-3000:])
    data = load_data(self._student("bert").data_config(data_dir=os.path.join(self.work, "data")), splits=("test",))
    test = data.features["test"]
    gold = [[tag for _, tag in sentence] for sentence in self.sentences["test"]]
    for name in ("bert", "bilstm"):
      run_dir = self._student(name)
      results = run_dir.read_eval_results()
      self.assertEqual(run_dir.read_model_config()["head"], "token")
      _, words = self._predict_words(run_dir.load_model(), test, data.labels)
      predicted = [[words[(i, j)] for j in range(len(sentence))] for i, sentence in enumerate(gold)]
      self.assertAllClose(results["test_f1"], entity_scores(gold, predicted).micro.f1, msg=name)
      self.assertLen(results["history"]["val_f1"], 4)
    self.assertRegex(self.distilled["bert"].stdout, r"augmentation: tang:n=2.*variants of 24 training examples")
    self.assertRegex(self.distilled["bert"].stdout, r"teacher cache: built .* \(\d+ examples")
    with open(os.path.join(self.work, "runs", "bert", "teacher_cache", "manifest.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["kinds"], {"logits": "sequence"})  # per-token teacher logits
    self.assertRegex(self.distilled["bilstm"].stdout, r"unlabeled data: 3 examples from unlabeled.txt")

  def test_exports_keep_the_entity_f1_and_serve_words_and_tags(self):
    data = load_data(self._student("bert").data_config(data_dir=os.path.join(self.work, "data")), splits=("test",))
    test = data.features["test"]
    inputs = {key: test[key] for key in ("input_ids", "input_mask", "segment_ids")}
    gold = [[tag for _, tag in sentence] for sentence in self.sentences["test"]]
    for name in ("bert", "bilstm"):
      run_dir = self._student(name)
      keras_logits, keras_words = self._predict_words(run_dir.load_model(), test, data.labels)
      report = parity.read_report(os.path.join(self.work, "export", f"{name}_tflite", "1"))
      self.assertAllClose(report["keras_accuracy"], run_dir.read_eval_results()["test_f1"])
      self.assertEqual(report["metric"], "entity F1")
      # TFLite and serving_text run a few rows at a time: batches of 4 (the last one short; each batch of
      # serving_text padded to its own longest sentence) join into what one batch gives: the same words and tags, and
      # logits equal up to float rounding (kernels may sum in another order for another batch shape, ~1e-8).
      first = TFLiteClassifier(os.path.join(self.work, "export", f"{name}_tflite", "1", "float32.tflite"))
      self.assertAllClose(first(inputs, batch_size=4), first(inputs, batch_size=len(test["input_ids"])), atol=1e-6)
      texts = {"text": [" ".join(w for w, _ in s) for s in self.sentences["test"]]}
      saved_model = os.path.join(self.work, "export", name, "1")
      whole, batched = (run_export._serving_text_outputs(saved_model, texts, size) for size in (64, 4))
      self.assertGreater(len(texts["text"]), 4)
      for key in whole:
        if np.asarray(whole[key]).dtype.kind == "f":
          self.assertAllClose(batched[key], whole[key], atol=1e-6, msg=key)
        else:
          self.assertAllEqual(batched[key], whole[key], msg=key)
      for variant in ("float32", "int8"):
        logits = TFLiteClassifier(os.path.join(self.work, "export", f"{name}_tflite", "1", f"{variant}.tflite"))(
            inputs)
        self.assertEqual(logits.shape, keras_logits.shape)
        _, words = self._predict_words(None, test, data.labels, logits=logits)
        predicted = [[words[(i, j)] for j in range(len(sentence))] for i, sentence in enumerate(gold)]
        self.assertAllClose(report[variant]["accuracy"], entity_scores(gold, predicted).micro.f1, msg=variant)
        scored = test["word_ids"] >= 0
        self.assertAllClose(report[variant]["max_abs_logit_diff"],
                            np.max(np.abs(logits[scored] - keras_logits[scored])), atol=1e-6)
      self.assertRegex(self.exported[name].stdout, r"Keras student test entity F1 \d+\.\d\d% on 41 labelled words")
      # serving_text: raw sentences in, per word the Keras student's tag out.
      signature = tf.saved_model.load(os.path.join(self.work, "export", name, "1")).signatures["serving_text"]
      out = signature(text=tf.constant([" ".join(w for w, _ in s) for s in self.sentences["test"]]))
      for i, sentence in enumerate(self.sentences["test"]):
        self.assertEqual([t.decode() for t in out["tags"].numpy()[i][:len(sentence)]],
                         [keras_words[(i, j)] for j in range(len(sentence))])
      self.assertEqual(serving.read_metadata(os.path.join(self.work, "export", name, "1"))["model_config"]["head"],
                       "token")

  def test_verify_export_checks_tagger_exports(self):
    for name in ("bert", "bilstm"):
      result = self.verified[name]
      self.assertEqual(result.returncode, 0, result.stdout[-3000:] + result.stderr[-3000:])
      for check in ("serving_default", "serving_text", "saved_model_cli serving_text", "text_tokenization",
                    "tflite:float32.tflite", "tflite:int8.tflite"):
        self.assertRegex(result.stdout, rf"\[ok\] {check}:", msg=f"{name}: {check}")
      self.assertRegex(result.stdout, r"\[ok\] tflite:int8.tflite: .*entity F1")


  def test_report_gives_entity_f1(self):
    self.assertEqual(self.report.returncode, 0, self.report.stderr[-3000:])
    self.assertIn("| model | test entity F1 | % of teacher |", self.report.stdout)
    self.assertRegex(self.report.stdout, r"Test split: 41 labelled words in 6 rows, max_seq_length 16")
    with open(os.path.join(self.work, "export", "report.json"), encoding="utf-8") as f:
      written = json.load(f)
    self.assertEqual(written["metric"], "entity F1")
    rows = {row["name"]: row for row in written["rows"]}
    self.assertAllClose(rows["teacher"]["test_accuracy"], self.run_dir.read_eval_results()["test_f1"], atol=1e-6)
    for name in ("bert", "bilstm"):
      self.assertAllClose(rows[name]["test_accuracy"], self._student(name).read_eval_results()["test_f1"], atol=1e-6)
    int8 = parity.read_report(os.path.join(self.work, "export", "bert_tflite", "1"))["int8"]["accuracy"]
    self.assertAllClose(rows["bert_int8"]["test_accuracy"], int8, atol=1e-6)


if __name__ == "__main__":
  tf.test.main()

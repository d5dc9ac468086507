"""The question_answering task type (tf_distill.tasks.question_answering): the span head and its logits layout, the
span losses by hand, padding back to full length, the flags, and the whole flow on tiny SQuAD 2.0 files written
here: train_teacher with SQuAD EM/F1 in eval_results.json (checked against squad_metrics on the best model's
logits), export_teacher (start_logits, end_logits), distill with the teacher cache, and one-line errors."""

import concurrent.futures
import csv
import json
import os
import random
import re
import subprocess
import tempfile

import numpy as np
from absl.testing import parameterized

import tiny  # tests/tiny.py  # pylint: disable=wrong-import-order

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.bert import MASKED_LOGIT, BertConfig, logits_layout
from tf_distill.configs import DataConfig
from tf_distill.data import unlabeled
from tf_distill.data.processors import InputExample
from tf_distill.data.squad import SquadError, SquadExample, best_spans, encode_squad, gold_answers, read_squad
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.distiller import Distiller, pad_to_length, trim_labels
from tf_distill.losses.logits import position_mask
from tf_distill.run_dir import RunDir
from tf_distill.squad_metrics import squad_evaluate
from tf_distill.tasks import task_type_of
from tf_distill.export import parity, serving
from tf_distill.export.tflite import TFLiteClassifier
from tf_distill.export.text_signature import TextEncoder, best_answer, write_asset_vocab
from tf_distill.pretrained import default_pretrained_dir
from tf_distill.tasks.question_answering import QuestionAnswering, SquadSplit, best_f1_threshold
from tf_distill.teacher_cache.reader import TeacherCache

MAX_SEQ_LENGTH = 32
VOCAB = os.path.join(default_pretrained_dir(), "vocab.txt")  # all-MiniLM-L6-v2's, an installed package
INPUT_KEYS = ("input_ids", "input_mask", "segment_ids")


def write_squad_task(data_dir, num_train=24, num_dev=8, num_test=8, seed=0):
  """Tiny SQuAD 2.0 files of tiny-vocab words: "<key> which" asks for the word after <key> in the context; every
  third paragraph also has an unanswerable question."""
  rng = random.Random(seed)
  os.makedirs(data_dir, exist_ok=True)
  for split, n in (("train", num_train), ("dev", num_dev), ("test", num_test)):
    paragraphs = []
    for i in range(n):
      words = [rng.choice(tiny.NEUTRAL_WORDS) for _ in range(rng.randint(6, 14))]
      at = rng.randrange(1, len(words) - 1)
      words[at - 1], words[at] = rng.choice(tiny.POSITIVE_WORDS[:5]), rng.choice(tiny.NEGATIVE_WORDS)
      start = len(" ".join(words[:at])) + 1
      qas = [{"id": f"{split}-{i}", "question": f"{words[at - 1]} which",
              "answers": [{"text": words[at], "answer_start": start}], "is_impossible": False}]
      if i % 3 == 0:
        qas.append({"id": f"{split}-{i}-x", "question": "happy lovely", "answers": [], "is_impossible": True})
      paragraphs.append({"context": " ".join(words), "qas": qas})
    with open(os.path.join(data_dir, f"{split}-v2.0.json"), "w", encoding="utf-8") as f:
      json.dump({"version": "v2.0", "data": [{"title": split, "paragraphs": paragraphs}]}, f)


def run_cli(program, args, cwd):
  return subprocess.run([tiny.PYTHON, "-m", f"tf_distill.cli.{program}"] + list(args), cwd=cwd,
                        env=tiny.subprocess_env(), capture_output=True, text=True, timeout=600, check=False)


def log_softmax(x, axis=-1):
  x = np.asarray(x, np.float64)
  shifted = x - x.max(axis=axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class SpanHeadTest(tf.test.TestCase, parameterized.TestCase):

  def test_span_logits_by_hand_with_padding_masked(self):
    model = tiny.tiny_classifier(seed=3, head="span")
    features = tiny.random_features(3, 10, lengths=[10, 6, 4], seed=1)
    outputs = model({k: features[k] for k in INPUT_KEYS}, training=False)
    last = outputs["hidden_states"][-1].numpy()                    # [3, 10, 32]
    kernel, bias = model.classifier.kernel.numpy(), model.classifier.bias.numpy()
    expected = np.einsum("bsh,hk->bks", last, kernel) + bias[None, :, None]  # [3, 2, 10]
    expected = np.where(features["input_mask"][:, None, :] == 1, expected, MASKED_LOGIT)
    logits = outputs["logits"].numpy()
    self.assertEqual(logits.shape, (3, 2, 10))
    self.assertEqual(logits.dtype, np.float32)
    self.assertAllClose(logits, expected, atol=1e-5)
    self.assertTrue(np.all(logits[2, :, 4:] == MASKED_LOGIT))
    probabilities = np.exp(log_softmax(logits / 2.0))              # at T = 2 padding still gets nothing
    self.assertLess(probabilities[2, :, 4:].max(), 1e-30)
    # The logits-only path (serving, dev evaluation) gives the same logits.
    self.assertAllClose(model({k: features[k] for k in INPUT_KEYS}, logits_only=True)["logits"], logits, atol=1e-6)

  def test_span_head_takes_two_labels_only(self):
    with self.assertRaisesRegex(ValueError, "num_labels must be 2, got 3"):
      BertConfig(head="span", num_labels=3).validate()
    self.assertEqual(BertConfig(head="span", num_labels=2).to_dict()["head"], "span")

  def test_layouts_say_where_the_sequence_is(self):
    self.assertIsNone(logits_layout(None).sequence_axis)
    self.assertEqual(logits_layout("token").sequence_axis, 1)
    self.assertEqual((logits_layout("span").sequence_axis, logits_layout("span").padding_logit), (2, MASKED_LOGIT))

  def test_pad_to_length_pads_the_span_sequence_axis_with_the_masked_logit(self):
    logits = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    padded = pad_to_length(tf.constant(logits), 5, logits_layout("span")).numpy()
    self.assertEqual(padded.shape, (2, 2, 5))
    self.assertAllEqual(padded[:, :, :3], logits)
    self.assertTrue(np.all(padded[:, :, 3:] == MASKED_LOGIT))
    tagger = pad_to_length(tf.constant(logits), 5, logits_layout("token")).numpy()
    self.assertEqual(tagger.shape, (2, 5, 3))

  def test_predict_of_trimmed_batches_equals_the_full_length_model(self):
    model = tiny.tiny_classifier(seed=4, head="span")
    features = tiny.random_features(4, 12, lengths=[5, 7, 4, 6], seed=2)  # all shorter: predict trims to 7
    features["label_ids"] = np.zeros([4, 2], np.int32)
    from tf_distill.training import predict_logits  # pylint: disable=import-outside-toplevel
    predicted = predict_logits(model, features, batch_size=2)
    full = model({k: features[k] for k in INPUT_KEYS}, training=False)["logits"].numpy()
    self.assertEqual(predicted.shape, (4, 2, 12))
    self.assertAllClose(predicted, full, atol=1e-5)

  def test_losses_by_hand(self):
    """hard = mean over examples of (CE_start + CE_end) / 2 (run_squad); KD = T^2 * the same mean of the soft
    cross-entropies over positions (DistilBERT's run_squad_w_distillation), padding masked in both models."""
    rng = np.random.default_rng(0)
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0]], np.int32)
    def span_logits():
      raw = rng.normal(0, 2, [3, 2, 6]).astype(np.float32)
      return np.where(mask[:, None, :] == 1, raw, MASKED_LOGIT).astype(np.float32)
    student, teacher = span_logits(), span_logits()
    labels = np.array([[2, 4], [0, 0], [1, 3]], np.int32)
    temperature, alpha = 3.0, 0.25
    distiller = Distiller(tiny.tiny_classifier(head="span"), teacher=None, alpha=0.0, temperature=temperature)
    distiller.alpha.assign(alpha)
    m = position_mask(tf.constant(labels), tf.constant(mask), logits_layout("span").sequence_axis)
    self.assertAllEqual(m, np.ones([3, 2]))
    inputs = {"input_ids": tf.zeros([3, 1], tf.int32)}  # even a cut to 1 token leaves the two span labels whole
    self.assertAllEqual(trim_labels(tf.constant(labels), inputs, 2), labels)
    self.assertAllEqual(distiller.logits_layout, logits_layout("span"))
    total, hard, kd = distiller.compute_losses(tf.constant(labels), tf.constant(student), tf.constant(teacher), m)
    log_p = log_softmax(student)
    expected_hard = np.mean([-(log_p[b, 0, labels[b, 0]] + log_p[b, 1, labels[b, 1]]) / 2 for b in range(3)])
    targets = np.exp(log_softmax(teacher / temperature))
    soft = -(targets * log_softmax(student / temperature)).sum(-1)   # [3, 2]
    expected_kd = temperature ** 2 * np.mean((soft[:, 0] + soft[:, 1]) / 2)
    self.assertAllClose(hard, expected_hard, rtol=1e-5)
    self.assertAllClose(kd, expected_kd, rtol=1e-5)
    self.assertAllClose(total, (1 - alpha) * expected_hard + alpha * expected_kd, rtol=1e-5)
    self.assertLess(targets[1, :, 4:].max(), 1e-30)  # padding takes no part in the soft targets


class TaskTypeTest(tf.test.TestCase):

  def test_threshold_answering_none_is_below_every_null_odds(self):
    """find_best_thresh starts at 0.0 with every question answered ""; with null-odds all below 0 that threshold
    answers them all, so the threshold of the best score is moved below the lowest null-odds."""
    gold = {"a": [], "b": [], "c": ["x"]}
    predictions = {"a": "y", "b": "y", "c": "z"}           # both unanswerable answered, c wrong: "" is best (2/3)
    null_odds = {"a": -3.0, "b": -2.0, "c": -1.0}
    threshold = best_f1_threshold(gold, predictions, null_odds)
    self.assertEqual(threshold, -4.0)
    self.assertAlmostEqual(squad_evaluate(gold, predictions, null_odds, threshold)["f1"], 200 / 3)
    self.assertEqual(squad_evaluate(gold, predictions, null_odds)["best_f1_thresh"], 0.0)  # the official value
    # b and c answered right, a (unanswerable) has the highest null-odds: the official threshold is c's, -2.0; every
    # threshold in [-2, -1) scores the same, and the midpoint -1.5 is returned, so that c's null-odds recomputed a
    # little higher (another batch size's float rounding) is still answered.
    gold, predictions = {"a": [], "b": ["x"], "c": ["x"]}, {"a": "y", "b": "x", "c": "x"}
    null_odds = {"a": -1.0, "b": -3.0, "c": -2.0}
    self.assertEqual(squad_evaluate(gold, predictions, null_odds)["best_f1_thresh"], -2.0)
    self.assertEqual(best_f1_threshold(gold, predictions, null_odds), -1.5)
    self.assertEqual(squad_evaluate(gold, predictions, {**null_odds, "c": -2.0 + 1e-6}, -1.5)["f1"], 100.0)
    self.assertLess(squad_evaluate(gold, predictions, {**null_odds, "c": -2.0 + 1e-6}, -2.0)["f1"], 100.0)
    # No question above the official threshold: it moves up by 1.
    self.assertEqual(best_f1_threshold({"b": ["x"]}, {"b": "x"}, {"b": -3.0}), -2.0)

  def test_squad_is_question_answering_with_the_span_head(self):
    task = task_type_of("squad")
    self.assertIsInstance(task, QuestionAnswering)
    self.assertEqual((task.head, task.metric, task.monitor), ("span", "f1", "val_f1"))

  def test_data_flags_are_validated(self):
    for name in ("doc_stride", "max_query_length", "max_answer_length", "n_best_size"):
      with self.assertRaisesRegex(ValueError, f"{name} must be an integer >= 1, got 0"):
        DataConfig(task_name="squad", **{name: 0}).validate()

  def test_shipped_data_is_the_default(self):
    task = task_type_of("squad")
    self.assertEqual(len(task.read(DataConfig(task_name="squad"), "dev")), 1930)

  def test_drop_unanswerable_reads_v2_as_v1(self):
    """--drop_unanswerable keeps each split's answerable questions in file order; their split answers every question
    (no null threshold): F1 is squad_evaluate's of the decoded spans without null odds."""
    task = task_type_of("squad")
    every = task.read(DataConfig(task_name="squad"), "dev")
    config = DataConfig(task_name="squad", vocab_file=VOCAB, max_seq_length=96, doc_stride=32,
                        drop_unanswerable=True)
    answerable = task.read(config, "dev")
    self.assertEqual([q.qas_id for q in answerable], [q.qas_id for q in every if not q.is_impossible])
    self.assertLen(answerable, 1930 - 1035)  # the shipped dev file's counts (tf_distill/data/squad2/README.md)
    windows = encode_squad(WordPieceTokenizer(VOCAB), answerable[:30], 96, 32, 64)
    split = SquadSplit(windows, 20, 30)
    logits = np.random.default_rng(1).normal(size=[len(windows), 2, 96]).astype(np.float32)
    spans = best_spans(logits[:, 0], logits[:, 1], windows, 20, 30)
    scores = split.scores(logits)
    self.assertNotIn("null_threshold", scores)
    self.assertAllClose(scores["f1"], squad_evaluate(gold_answers(windows.examples),
                                                     {q: s.text for q, s in spans.items()})["f1"])
    with self.assertRaisesRegex(ValueError, "pass one of --null_threshold and --drop_unanswerable"):
      DataConfig(task_name="squad", null_threshold=0.5, drop_unanswerable=True).validate()
    with tempfile.TemporaryDirectory() as tmp:
      write_squad_task(tmp)
      with open(os.path.join(tmp, "dev-v2.0.json"), "w", encoding="utf-8") as f:
        json.dump({"version": "v2.0", "data": [{"paragraphs": [{"context": "good film", "qas": [
            {"id": "q1", "question": "bad which", "answers": [], "is_impossible": True}]}]}]}, f)
      with self.assertRaisesRegex(SquadError, "dev-v2.0.json: every question is unanswerable"):
        task.read(DataConfig(task_name="squad", data_dir=tmp, drop_unanswerable=True), "dev")

  def test_exported_examples_score_without_the_data(self):
    """export_examples' features, through parity_examples.npz, score logits as run_squad's decoding of the same
    questions does (best_spans and squad_evaluate here, at the configured threshold)."""
    config = DataConfig(task_name="squad", vocab_file=VOCAB, max_seq_length=96, doc_stride=32, null_threshold=0.5)
    task = task_type_of("squad")
    texts, features = task.export_examples(config, "test", 40)
    self.assertEqual(texts["question"][3], task.read(config, "test")[3].question)
    self.assertEqual(task.labelled(features), 40)
    with tempfile.TemporaryDirectory() as tmp:
      parity.write_examples(tmp, features, np.zeros([1]))
      stored = parity.read_examples(tmp)
    self.assertGreater(len(stored["input_ids"]), 40)  # long contexts are several windows
    windows = encode_squad(WordPieceTokenizer(VOCAB), task.read(config, "test")[:40], 96, 32, 64)
    logits = np.random.default_rng(0).normal(size=[len(windows), 2, 96]).astype(np.float32)
    spans = best_spans(logits[:, 0], logits[:, 1], windows, 20, 30)
    by_hand = squad_evaluate(gold_answers(windows.examples), {q: s.text for q, s in spans.items()},
                             {q: s.null_odds for q, s in spans.items()}, 0.5)["f1"] / 100
    self.assertAllClose(task.quality(logits, stored, ["start", "end"]), by_hand)
    gold = np.full_like(logits, -5.0)  # logits on the gold positions ([CLS] for no answer in the window)
    rows = np.arange(len(gold))
    gold[rows, 0, stored["label_ids"][:, 0]] = 5.0
    gold[rows, 1, stored["label_ids"][:, 1]] = 5.0
    self.assertGreater(task.quality(gold, stored, ["start", "end"]), 0.95)
    # An export's own settings replace the features' (report: each model decodes as its export says).
    unset = task.with_export_settings(stored, {"null_threshold": None})
    spans_f1 = squad_evaluate(gold_answers(windows.examples), {q: s.text for q, s in spans.items()},
                              {q: s.null_odds for q, s in spans.items()})["best_f1"] / 100
    self.assertAllClose(task.quality(logits, unset, ["start", "end"]), spans_f1)


class QuestionContextSignatureTest(tf.test.TestCase):
  """serving_text's in-graph encoding and decoding against the Python ones, with the real all-MiniLM vocab."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.vocab = write_asset_vocab(VOCAB, os.path.join(tempfile.mkdtemp(), "vocab.txt"))

  def test_features_and_offsets_are_run_squads(self):
    questions = ["Where is the tower?", "Who wrote it, and when?", "Qué?", "a " * 30]
    contexts = ["The Eiffel Tower. is in  Paris, France's capital.",
                "Émile Zola's café, J'accuse in 1898\tfor L'Aurore.", "x", "short context"]
    encoder = TextEncoder(self.vocab, True, 40)
    features, begin, end = encoder.encode_question_context(tf.constant(questions), tf.constant(contexts), 5)
    examples = [SquadExample(str(i), q, c, ()) for i, (q, c) in enumerate(zip(questions, contexts))]
    windows = encode_squad(WordPieceTokenizer(VOCAB), examples, 40, 128, 5)
    self.assertLen(windows, 4)  # one window each
    for key in INPUT_KEYS:
      self.assertAllEqual(features[key], windows.inputs[key], msg=key)
    spans_word = 0
    for i, context in enumerate(contexts):
      raw = context.encode()
      for p in np.nonzero(windows.token_offsets[i, :, 0] >= 0)[0]:
        piece = raw[int(begin[i, p]):int(end[i, p])].decode()
        python = context[windows.token_offsets[i, p, 0]:windows.token_offsets[i, p, 1]]
        if piece in context.split() and not piece.isascii():  # normalising changed the word: it spans the word
          self.assertIn(python, piece)
          spans_word += piece != python
        else:
          self.assertEqual(piece, python, msg=f"{i} {p}")
      self.assertTrue(np.all((begin[i].numpy() >= 0) == (windows.token_offsets[i, :, 0] >= 0)))
    self.assertEqual(spans_word, 2)  # "café," for both pieces, where Python has "café" and ","

  def test_best_answer_is_the_best_valid_pair(self):
    rng = np.random.default_rng(4)
    start, end = rng.normal(size=[3, 12]).astype(np.float32), rng.normal(size=[3, 12]).astype(np.float32)
    begin = np.full([3, 12], -1, np.int32)
    begin[0, 3:10] = 0
    begin[1, 5:6] = 0  # one context piece
    span = best_answer(tf.constant(start), tf.constant(end), tf.constant(begin), tf.constant(begin), 4)
    for row in range(2):
      context = np.nonzero(begin[row] >= 0)[0]
      pairs = [(start[row, s] + end[row, e], s, e) for s in context for e in context if 0 <= e - s < 4]
      score, s, e = max(pairs)
      self.assertEqual((int(span["start"][row]), int(span["end"][row])), (s, e))
      self.assertAllClose(span["null_odds"][row], start[row, 0] + end[row, 0] - score)
    self.assertEqual(float(span["score"][2]), -np.inf)  # no context piece: no answer


class SquadFlowTest(tf.test.TestCase):
  """train_teacher, export_teacher and distill (teacher cache) on tiny SQuAD 2.0 files, once for the class, with
  a bad flag and a bad file run beside them."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_qa_")
    write_squad_task(os.path.join(cls.work, "data"))
    bad = os.path.join(cls.work, "bad")
    write_squad_task(bad)
    with open(os.path.join(bad, "dev-v2.0.json"), "w", encoding="utf-8") as f:
      json.dump({"version": "v2.0", "data": [{"paragraphs": [{"context": "good film", "qas": [
          {"id": "q1", "question": "good which", "answers": [{"text": "film", "answer_start": 3}]}]}]}]}, f)
    cls.pretrained = tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"))
    common = [f"--init_checkpoint={cls.pretrained}", "--task_name=squad", f"--max_seq_length={MAX_SEQ_LENGTH}",
              "--train_batch_size=4", "--learning_rate=3e-3", "--num_train_epochs=3"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      good = pool.submit(run_cli, "train_teacher", common + ["--data_dir=data", "--output_dir=runs/teacher"],
                         cls.work)
      cls.bad_flag = run_cli("train_teacher", common + ["--data_dir=data", "--doc_stride=0", "--output_dir=runs/x"],
                             cls.work)
      cls.bad_file = run_cli("train_teacher", common + [f"--data_dir={bad}", "--output_dir=runs/y"], cls.work)
      cls.result = good.result()
    cls.export_teacher = run_cli("export_teacher", ["--output_dir=runs/teacher", "--export_dir=export"], cls.work)
    with open(os.path.join(cls.work, "pairs.csv"), "w", encoding="utf-8", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["question", "context"])
      for i, question in enumerate(read_squad(os.path.join(cls.work, "data", "dev-v2.0.json"))[:5]):
        writer.writerow([question.question, question.context + " and more" * (i == 0) * 12])  # a long one
    distill = ["--task_name=squad", "--data_dir=data", "--teacher_model=export/teacher",
               f"--max_seq_length={MAX_SEQ_LENGTH}", "--train_batch_size=4", "--learning_rate=3e-3",
               "--num_train_epochs=2", "--alpha=0.5", "--temperature=2", "--student_num_layers=2"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      transfer = pool.submit(run_cli, "distill", distill + [
          "--unlabeled_data=pairs.csv", "--text_column=question", "--text_b_column=context",
          "--augmentation=tang:n=1", "--teacher_cache=auto", "--output_dir=runs/transfer"], cls.work)
      cls.distilled = run_cli("distill", distill + ["--teacher_cache=auto", "--output_dir=runs/student"], cls.work)
      cls.transfer = transfer.result()
    cls.export_student = run_cli("export_student", ["--output_dir=runs/student", "--export_dir=export",
                                                    "--model_name=student", "--tflite=float32,int8,full_int8"],
                                 cls.work)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
      verified = pool.submit(run_cli, "verify_export", ["export/student"], cls.work)
      cls.report = run_cli("report", ["--teacher_model=export/teacher", "--data_dir=data",
                                      "--models=student:export/student", "--tflite=student_int8:export/student_tflite",
                                      "--latency_examples=3", "--latency_rounds=1", "--report_dir=export"], cls.work)
      cls.verified = verified.result()

  def _data(self, **overrides):
    config = DataConfig(task_name="squad", data_dir=os.path.join(self.work, "data"),
                        vocab_file=os.path.join(self.pretrained, "vocab.txt"), max_seq_length=MAX_SEQ_LENGTH,
                        **overrides)
    return task_type_of("squad").load_data(config, splits=("dev", "test"))

  def _one_error_line(self, result):
    self.assertEqual(result.returncode, 1, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    self.assertLen(lines, 1, result.stderr)
    self.assertNotIn("Traceback", result.stderr)
    return lines[0]

  def test_eval_results_are_squad_metrics_of_the_best_model(self):
    self.assertEqual(self.result.returncode, 0, self.result.stderr[-3000:])
    run_dir = RunDir(os.path.join(self.work, "runs", "teacher"))
    results = run_dir.read_eval_results()
    model = run_dir.load_model()
    data = self._data()
    decoded, threshold = {}, None
    for split in ("dev", "test"):
      windows = data.examples[split].features
      logits = model({k: data.features[split][k] for k in INPUT_KEYS}, training=False)["logits"].numpy()
      spans = best_spans(logits[:, 0], logits[:, 1], windows, 20, 30)
      gold = gold_answers(windows.examples)
      predictions = {qid: span.text for qid, span in spans.items()}
      null_odds = {qid: span.null_odds for qid, span in spans.items()}
      if split == "dev":  # dev F1 is the official best over thresholds, reached at the threshold reported
        threshold = results["dev_null_threshold"]
        self.assertAlmostEqual(results["dev_f1"], squad_evaluate(gold, predictions, null_odds)["best_f1"], places=4)
      decoded[split] = squad_evaluate(gold, predictions, null_odds, threshold)
    self.assertEqual(results["metric"], "f1")
    self.assertEqual(results["test_null_threshold"], threshold)
    for split in ("dev", "test"):
      for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact"):
        self.assertAlmostEqual(results[f"{split}_{key}"], decoded[split][key], places=4, msg=f"{split}_{key}")
      self.assertEqual(results[f"{split}_total"], 11)
    self.assertAlmostEqual(results["best_dev_f1"], results["dev_f1"], places=4)
    self.assertEqual(max(results["history"]["val_f1"]), results["best_dev_f1"])
    self.assertIn(f"test SQuAD F1 {results['test_f1']:.4f}", self.result.stdout)

  def test_teacher_export_serves_start_and_end_logits(self):
    self.assertEqual(self.export_teacher.returncode, 0, self.export_teacher.stderr[-3000:])
    from tf_distill.export import serving  # pylint: disable=import-outside-toplevel
    path = serving.latest_version_dir(os.path.join(self.work, "export", "teacher"))
    loaded = tf.saved_model.load(path)
    data = self._data()
    inputs = {k: tf.constant(data.features["dev"][k][:5]) for k in INPUT_KEYS}
    out = loaded.signatures["serving_default"](**inputs)
    model = RunDir(os.path.join(self.work, "runs", "teacher")).load_model()
    expected = model(inputs, training=False)["logits"].numpy()
    self.assertAllClose(out["logits"], expected, atol=1e-4)
    self.assertAllClose(out["start_logits"], expected[:, 0], atol=1e-4)
    self.assertAllClose(out["end_logits"], expected[:, 1], atol=1e-4)
    self.assertAllClose(np.sum(out["probabilities"], axis=-1), np.ones([5, 2]), atol=1e-5)

  def test_transfer_sets_of_question_context_pairs(self):
    """Unlabeled (question, context) pairs and Tang variants of the training pairs are windows with label -1 that
    the teacher labels; the long context is two windows."""
    self.assertEqual(self.transfer.returncode, 0, self.transfer.stderr[-3000:])
    out = self.transfer.stdout + self.transfer.stderr
    self.assertRegex(out, r"unlabeled data: 5 examples from pairs.csv")
    variants = int(re.search(r"augmentation: tang:n=1.*; (\d+) variants of 32 training examples", out).group(1))
    config = DataConfig(task_name="squad", data_dir=os.path.join(self.work, "data"),
                        vocab_file=os.path.join(self.pretrained, "vocab.txt"), max_seq_length=MAX_SEQ_LENGTH)
    task = task_type_of("squad")
    pairs = unlabeled.read_unlabeled(os.path.join(self.work, "pairs.csv"), "question", "context")
    features, rows = task.encode_unlabeled(WordPieceTokenizer(config.vocab_file), pairs, config)
    self.assertEqual(np.bincount(rows).tolist(), [2, 1, 1, 1, 1])
    self.assertTrue(np.all(features["label_ids"] == -1))
    labelled = len(task.load_data(config, splits=("train",)).features["train"]["label_ids"])
    with open(os.path.join(self.work, "runs", "transfer", "teacher_cache", "manifest.json"), encoding="utf-8") as f:
      cached = json.load(f)["num_examples"]
    self.assertEqual(cached, labelled + len(rows) + variants)  # every training, unlabeled and variant window
    self.assertIn("dev_f1", RunDir(os.path.join(self.work, "runs", "transfer")).read_eval_results())
    with self.assertRaisesRegex(ValueError, r"question answering reads a question and its context"):
      task.encode_unlabeled(WordPieceTokenizer(config.vocab_file), [InputExample("u", "a question")],
                            config)

  def test_distill_with_the_teacher_cache(self):
    self.assertEqual(self.distilled.returncode, 0, self.distilled.stderr[-3000:])
    self.assertIn("teacher cache: built", self.distilled.stdout + self.distilled.stderr)
    run_dir = RunDir(os.path.join(self.work, "runs", "student"))
    results = run_dir.read_eval_results()
    self.assertIn("dev_f1", results)
    self.assertIn("kd_loss", results["history"])
    self.assertEqual(run_dir.read_model_config()["num_hidden_layers"], 2)
    self.assertEqual(run_dir.read_model_config()["head"], "span")
    # The cache holds each window's span logits [2, len]: the teacher's on the window at its real length.
    with open(os.path.join(run_dir.teacher_cache_dir, "manifest.json"), encoding="utf-8") as f:
      manifest = json.load(f)
    self.assertEqual(manifest["sequence_layouts"]["logits"], {"axis": 2, "padding": MASKED_LOGIT})
    reader = TeacherCache(run_dir.teacher_cache_dir, manifest, ("logits",))
    config = DataConfig(task_name="squad", data_dir=os.path.join(self.work, "data"),
                        vocab_file=os.path.join(self.pretrained, "vocab.txt"), max_seq_length=MAX_SEQ_LENGTH)
    train = task_type_of("squad").load_data(config, splits=("train",)).features["train"]
    teacher = RunDir(os.path.join(self.work, "runs", "teacher")).load_model()
    for i in (0, 5):
      length = int(train["input_mask"][i].sum())
      inputs = {k: train[k][i:i + 1, :length] for k in INPUT_KEYS}
      expected = teacher(inputs, training=False)["logits"].numpy()[0]   # [2, len]
      self.assertAllClose(reader.example("logits", i), expected, atol=2e-2, rtol=2e-3)  # float16 on disk
    # A batch: [batch, 2, width], positions past a window's length at MASKED_LOGIT as the head gives them.
    lengths = train["input_mask"].sum(axis=1)
    rows = [int(np.argmin(lengths)), int(np.argmax(lengths))]
    short, width = int(lengths[rows[0]]), int(lengths[rows[1]])
    self.assertLess(short, width)
    batch = {k: tf.constant(train[k][rows, :width]) for k in INPUT_KEYS}
    served = reader({**batch, "example_index": tf.constant(rows, tf.int64)}, outputs=("logits",))["logits"].numpy()
    self.assertEqual(served.shape, (2, 2, width))
    self.assertAllClose(served[0, :, :short], reader.example("logits", rows[0]))
    self.assertTrue(np.all(served[0, :, short:] == MASKED_LOGIT))

  def test_bad_flag_is_one_error_line(self):
    self.assertEqual(self._one_error_line(self.bad_flag), "error: doc_stride must be an integer >= 1, got 0")

  def test_bad_file_is_one_error_line_naming_file_and_question(self):
    self.assertRegex(self._one_error_line(self.bad_file),
                     r"^error: .*bad/dev-v2\.0\.json: question 'q1' .*: answers\[0\] 'film' does not match the "
                     r"context at answer_start 3")

  def test_student_export_keeps_f1_and_serves_answers(self):
    self.assertEqual(self.export_student.returncode, 0, self.export_student.stderr[-3000:])
    run_dir = RunDir(os.path.join(self.work, "runs", "student"))
    results = run_dir.read_eval_results()
    metadata = serving.read_metadata(os.path.join(self.work, "export", "student", "1"))
    self.assertEqual(metadata["null_threshold"], results["dev_null_threshold"])  # chosen on dev, used by the export
    report = parity.read_report(os.path.join(self.work, "export", "student_tflite", "1"))
    self.assertEqual(report["metric"], "SQuAD F1")
    self.assertAllClose(report["keras_accuracy"], results["test_f1"] / 100, atol=1e-6)
    self.assertRegex(self.export_student.stdout, r"Keras student test SQuAD F1 \d+\.\d\d% on 11 labelled questions")
    real_positions = int(np.sum(self._data().features["test"]["input_mask"]))  # parity's rows: every real position
    self.assertRegex(self.export_student.stdout, rf"TFLite float32 .* on {real_positions} positions")
    # The float32 TFLite file's F1, decoded here by hand.
    data = self._data()
    test = data.features["test"]
    logits = TFLiteClassifier(os.path.join(self.work, "export", "student_tflite", "1", "float32.tflite"))(test)
    spans = best_spans(logits[:, 0], logits[:, 1], data.examples["test"].features, 20, 30)
    windows = data.examples["test"].features
    decoded = squad_evaluate(gold_answers(windows.examples), {q: s.text for q, s in spans.items()},
                             {q: s.null_odds for q, s in spans.items()}, results["dev_null_threshold"])
    self.assertAllClose(report["float32"]["accuracy"], decoded["f1"] / 100, atol=1e-6)
    # The files come from serving_unmasked: padding positions keep their computed logits, so that full int8's one
    # scale per tensor covers logits of a few units, not MASKED_LOGIT too (-45 points of F1 when it did).
    keras = run_dir.load_model()
    inputs = {k: test[k] for k in INPUT_KEYS}
    unmasked = keras(inputs, training=False, mask_padding=False)["logits"].numpy()
    padding = np.broadcast_to((test["input_mask"] == 0)[:, None, :], logits.shape)
    self.assertTrue(padding.any())
    self.assertAllClose(logits, unmasked, atol=1e-4)
    masked = keras(inputs, training=False)["logits"].numpy()
    self.assertAllClose(masked[padding], np.full([padding.sum()], MASKED_LOGIT))
    self.assertGreater(np.min(logits[padding]), MASKED_LOGIT / 10)
    self.assertIsNotNone(report["full_int8"]["path"])
    self.assertLessEqual(report["full_int8"]["accuracy_drop_points"], 1.0)
    # serving_text: question and context in, the answer best_spans finds (every pair searched) out.
    loaded = tf.saved_model.load(os.path.join(self.work, "export", "student", "1"))
    questions = [example for example in windows.examples
                 if np.sum(windows.example_index == windows.examples.index(example)) == 1]
    out = loaded.signatures["serving_text"](question=tf.constant([q.question for q in questions]),
                                            context=tf.constant([q.context for q in questions]))
    keras_logits = run_dir.load_model()({k: test[k] for k in INPUT_KEYS}, training=False)["logits"].numpy()
    every_pair = best_spans(keras_logits[:, 0], keras_logits[:, 1], windows, MAX_SEQ_LENGTH, 30)
    for i, question in enumerate(questions):
      span = every_pair[question.qas_id]
      answered = span.null_odds <= results["dev_null_threshold"]
      self.assertEqual(out["answer"][i].numpy().decode(), span.text if answered else "", msg=question.qas_id)
      self.assertEqual(int(out["answer_start"][i]), span.start if answered else -1)
      self.assertEqual(int(out["answer_end"][i]), span.end if answered else -1)
      self.assertAllClose(out["null_odds"][i], span.null_odds, atol=1e-4)

  def test_verify_export_checks_span_exports(self):
    self.assertEqual(self.verified.returncode, 0, self.verified.stdout[-3000:] + self.verified.stderr[-3000:])
    for check in ("serving_default", "serving_text", "saved_model_cli serving_text", "text_tokenization",
                  "tflite:float32.tflite", "tflite:int8.tflite"):
      self.assertRegex(self.verified.stdout, rf"\[ok\] {check}:", msg=check)
    self.assertRegex(self.verified.stdout, r"\[ok\] tflite:int8.tflite: .*SQuAD F1")

  def test_report_gives_squad_f1(self):
    self.assertEqual(self.report.returncode, 0, self.report.stderr[-3000:])
    with open(os.path.join(self.work, "export", "report.json"), encoding="utf-8") as f:
      rows = {row["name"]: row for row in json.load(f)["rows"]}
    self.assertIn("| model | test SQuAD F1 | test exact match | % of teacher |", self.report.stdout)
    for name, run in (("teacher", "teacher"), ("student", "student")):
      results = RunDir(os.path.join(self.work, "runs", run)).read_eval_results()
      self.assertAllClose(rows[name]["test_accuracy"], results["test_f1"] / 100, atol=1e-6)
      self.assertAllClose(rows[name]["extra"]["exact match"], results["test_exact"] / 100, atol=1e-6)
    int8 = parity.read_report(os.path.join(self.work, "export", "student_tflite", "1"))["int8"]["accuracy"]
    self.assertAllClose(rows["student_int8"]["test_accuracy"], int8, atol=1e-6)


if __name__ == "__main__":
  tf.test.main()

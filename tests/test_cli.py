"""Tests for the command-line programs (tf_distill/cli).

The flag -> config functions run in-process under `flagsaver`. The programs themselves run as real subprocesses
(`python -m tf_distill.cli.<name>`), as users and scripts/*.sh run them: a tiny CSV task and a tiny pretrained
BERT directory (tests/tiny.py) go through train_teacher -> export_teacher -> distill -> export_student, and bad
inputs must end with exit status 1 and one clear line on stderr, never a Python traceback.
"""

import concurrent.futures
import errno
import json
import os
import re
import shutil
import subprocess
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import flags
from absl.testing import flagsaver
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from tf_distill import machine
from tf_distill.cli import common
from tf_distill.data.processors import CsvProcessor
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.run_dir import RunDir
from tf_distill.teacher import SavedModelTeacher

import tiny

FLAGS = flags.FLAGS
TIMEOUT = 600
# One epoch on 40 rows, batches of 8, max_seq_length 16 (the tiny BERT has 32 position embeddings).
COMMON_TRAIN_ARGS = ["--task_name=csv", "--max_seq_length=16", "--train_batch_size=8", "--eval_batch_size=16",
                     "--num_train_epochs=1", "--learning_rate=1e-3"]


def run_cli(program, args, cwd):
  """Runs `python -m tf_distill.cli.<program> args` and returns the CompletedProcess."""
  return subprocess.run([tiny.PYTHON, "-m", f"tf_distill.cli.{program}"] + list(args), cwd=cwd,
                        env=tiny.subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False)


def _describe(result):
  return f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"


def _read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


class FlagsToConfigTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    tiny.define_distill_flags_once()

  @flagsaver.flagsaver(teacher_model="export/teacher", temperature=4.0, alpha=0.3, kd_loss="kl")
  def test_distill_config(self):
    config = common.distill_config_from_flags(FLAGS)
    self.assertEqual((config.teacher_model, config.temperature, config.alpha, config.kd_loss),
                     ("export/teacher", 4.0, 0.3, "kl"))

  @flagsaver.flagsaver(teacher_model="export/teacher", augmentation="tinybert:n=4", augmentation_mode="per_epoch",
                       embeddings_file="glove.txt")
  def test_distill_config_augmentation(self):
    config = common.distill_config_from_flags(FLAGS)
    self.assertEqual((config.augmentation, config.augmentation_mode, config.embeddings_file, config.masked_lm_dir,
                      config.pos_tagger), ("tinybert:n=4", "per_epoch", "glove.txt", None, "auto"))

  @parameterized.named_parameters(
      ("alpha", dict(alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
      ("temperature", dict(temperature=0.0), r"temperature must be > 0, got 0.0"),
      ("no_teacher", dict(teacher_model=None), r"alpha=0.5 needs a teacher: pass --teacher_model=DIR"),
  )
  def test_distill_config_errors(self, overrides, message):
    with flagsaver.flagsaver(**{"teacher_model": "export/teacher", "alpha": 0.5, "temperature": 2.0, **overrides}):
      with self.assertRaisesRegex(ValueError, message):
        common.distill_config_from_flags(FLAGS)

  @flagsaver.flagsaver(student_num_layers=2, student_init_from_layers=["2", "5"], student_hidden_size=None)
  def test_student_config_parses_layer_numbers(self):
    config = common.student_config_from_flags(FLAGS)
    self.assertEqual(config.type, "bert")
    self.assertEqual((config.bert.num_hidden_layers, config.bert.init_from_layers, config.bert.hidden_size),
                     (2, (2, 5), None))

  @flagsaver.flagsaver(student_num_layers=2, student_init_from_layers=["1", "x"])
  def test_student_init_layers_must_be_numbers(self):
    with self.assertRaisesRegex(ValueError, r"--student_init_from_layers takes comma-separated layer numbers such "
                                r"as 2,5; got 1,x"):
      common.student_config_from_flags(FLAGS)

  @flagsaver.flagsaver(student_num_layers=2, student_init_layers=["1", "4"])
  def test_old_0_based_init_flag_is_refused_with_its_translation(self):
    with self.assertRaisesRegex(ValueError, r"--student_init_layers=1,4 counted teacher layers from 0; it is replaced "
                                r"by --student_init_from_layers, numbered from 1 like --layer_map: use "
                                r"--student_init_from_layers=2,5$"):
      common.student_config_from_flags(FLAGS)

  @flagsaver.flagsaver(student_num_layers=3, student_init_from_layers=["1", "4"])
  def test_student_init_layers_count(self):
    with self.assertRaisesRegex(ValueError, r"names 2 teacher layers \(1,4\) but the student has 3 layers"):
      common.student_config_from_flags(FLAGS)

  @flagsaver.flagsaver(task_name="csv", data_dir="/data", vocab_file=None, labels=["neg", "pos"],
                       tfds_data_dir="~/tfds", max_seq_length=32)
  def test_data_config(self):
    config = common.data_config_from_flags(FLAGS)
    self.assertIsNone(config.vocab_file)  # the run fills in the pretrained model's or the teacher's
    self.assertEqual(config.labels, ("neg", "pos"))
    self.assertEqual(config.tfds_data_dir, os.path.expanduser("~/tfds"))
    with flagsaver.flagsaver(vocab_file="/mine/vocab.txt"):
      self.assertEqual(common.data_config_from_flags(FLAGS).vocab_file, "/mine/vocab.txt")

  @flagsaver.flagsaver(task_name="conll", data_dir="/data", doc_stride=32, n_best_size=5)
  def test_question_answering_flags_are_refused_for_other_tasks(self):
    for name in ("doc_stride", "n_best_size"):
      FLAGS[name].present = 1
    try:
      with self.assertRaisesRegex(ValueError, r"^--task_name=conll does not read --doc_stride, --n_best_size \(only "
                                  r"question_answering tasks do\): drop them$"):
        common.data_config_from_flags(FLAGS)
      with flagsaver.flagsaver(task_name="squad"):
        self.assertEqual(common.data_config_from_flags(FLAGS).doc_stride, 32)
    finally:
      for name in ("doc_stride", "n_best_size"):
        FLAGS[name].present = 0

  @flagsaver.flagsaver(task_name="squad", text_b_column="context", unlabeled_data=None)
  def test_text_b_column_without_a_file_that_has_it_is_refused(self):
    with self.assertRaisesRegex(ValueError, r"^--text_b_column names .* --task_name=squad without --unlabeled_data "
                                r"reads no column: drop it, or add the --unlabeled_data file that has it$"):
      common.data_config_from_flags(FLAGS)
    self.assertEqual(common.data_config_from_flags(FLAGS, names_output_columns=True).text_b_column, "context")
    with flagsaver.flagsaver(unlabeled_data="pairs.csv"):
      self.assertEqual(common.data_config_from_flags(FLAGS).text_b_column, "context")
    with flagsaver.flagsaver(task_name="csv", data_dir="/data"):
      self.assertEqual(common.data_config_from_flags(FLAGS).text_b_column, "context")

  @flagsaver.flagsaver(task_name="csv", data_dir=None)
  def test_csv_task_needs_data_dir(self):
    with self.assertRaisesRegex(ValueError, "task_name 'csv' reads train/dev/test files from --data_dir"):
      common.data_config_from_flags(FLAGS)

  @flagsaver.flagsaver(train_batch_size=0)
  def test_train_config_errors(self):
    with self.assertRaisesRegex(ValueError, "train_batch_size must be > 0, got 0"):
      common.train_config_from_flags(FLAGS)

  def test_run_main_turns_errors_into_one_line(self):
    for error in (ValueError("bad alpha"), LookupError("no such loss"), FileNotFoundError("no file"),
                  FileExistsError("version exists"), FloatingPointError("loss became nan")):
      def main(argv, error=error):
        del argv
        raise error
      with self.assertRaises(SystemExit) as raised:
        common.run_main(main)(["prog"])
      self.assertEqual(raised.exception.code, f"error: {error}")
      self.assertIsNone(raised.exception.__cause__)
      self.assertTrue(raised.exception.__suppress_context__)  # `from None`: no chained traceback

  def test_run_main_turns_a_full_disk_into_one_line(self):
    # /dev/full makes the kernel answer every write with ENOSPC: TensorFlow's file writers and Python's both fail for
    # real, the way a checkpoint save does when --output_dir's disk fills.
    def tensorflow_write(argv):
      del argv
      with tf.io.gfile.GFile("/dev/full", "wb") as f:
        f.write(b"checkpoint bytes")

    def python_write(argv):
      del argv
      with open("/dev/full", "wb") as f:
        f.write(b"config.json")

    advice = ("; free space on it (or point the output flags at another disk) and run the same command again: "
              "a training run resumes from its last checkpoint")
    for main, where in ((tensorflow_write, " writing /dev/full"), (python_write, "")):
      with self.assertRaises(SystemExit) as raised:
        common.run_main(main)(["prog"])
      self.assertEqual(raised.exception.code, f"error: the disk is full{where}{advice}")
      self.assertTrue(raised.exception.__suppress_context__)
    quota = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "/runs/x/config.json")
    self.assertEqual(common.disk_full_line(quota), f"error: the disk is full writing /runs/x/config.json{advice}")

  def test_run_main_keeps_other_io_errors(self):
    def unreadable(argv):
      del argv
      raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/root/secret")

    def tensorflow_failure(argv):
      del argv
      missing = os.path.join(self.create_tempdir().full_path, "no_such_dir", "x")  # NotFoundError: an OpError, not a full disk
      with tf.io.gfile.GFile(missing, "wb") as f:
        f.write(b"x")
    with self.assertRaises(PermissionError):
      common.run_main(unreadable)(["prog"])
    with self.assertRaises(tf.errors.OpError):
      common.run_main(tensorflow_failure)(["prog"])
    self.assertIsNone(common.disk_full_line(RuntimeError("No space left on device")))

  def test_run_main_lets_bugs_through(self):
    def main(argv):
      del argv
      raise TypeError("a bug")
    with self.assertRaises(TypeError):
      common.run_main(main)(["prog"])
    self.assertEqual(common.run_main(lambda argv: 7)(["prog"]), 7)


class EndToEndTest(tf.test.TestCase):
  """train_teacher -> export_teacher -> distill -> export_student on a tiny CSV task, run once for the class."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_cli_")
    tiny.write_csv_task(os.path.join(cls.work, "data"))
    tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"))
    # Relative paths, as in scripts/*.sh and the flagfiles.
    steps = [
        ("train_teacher", ["--init_checkpoint=pretrained", "--data_dir=data", "--output_dir=runs/teacher"]
         + COMMON_TRAIN_ARGS),
        ("export_teacher", ["--output_dir=runs/teacher", "--export_dir=export"]),
        ("distill", ["--teacher_model=export/teacher", "--data_dir=data", "--output_dir=runs/student",
                     "--student_num_layers=1", "--student_init_from_layers=2", "--alpha=0.5", "--temperature=2"]
         + COMMON_TRAIN_ARGS),
        ("distill:intermediate", ["--teacher_model=export/teacher", "--data_dir=data",
                                  "--output_dir=runs/intermediate", "--student_num_layers=1",
                                  "--student_hidden_size=16", "--student_num_heads=4",
                                  "--student_intermediate_size=32", "--layer_map=0:0,uniform",
                                  "--intermediate_matches=hidden_mse,attention_mse_scores",
                                  "--stages=intermediate:1,prediction:1", "--teacher_cache=auto",
                                  "--teacher_cache_dir=cache_intermediate"] + COMMON_TRAIN_ARGS),
        ("distill:bilstm_cached", ["--teacher_model=export/teacher", "--data_dir=data", "--output_dir=runs/bilstm",
                                   "--student_type=bilstm", "--bilstm_embedding_size=32", "--bilstm_lstm_units=8",
                                   "--bilstm_hidden_units=8", "--kd_loss=mse", "--temperature=1", "--alpha=1",
                                   "--teacher_cache=auto", "--teacher_cache_dir=cache"] + COMMON_TRAIN_ARGS),
        ("export_student", ["--output_dir=runs/student", "--export_dir=export", "--parity_examples=16"]),
        ("export_student:saved_model_only", ["--output_dir=runs/student", "--export_dir=export",
                                             "--parity_examples=16", "--model_name=student_saved_model_only",
                                             "--tflite="]),
        ("report", ["--teacher_model=export/teacher", "--models=student:export/student",
                    "--tflite=student_int8:export/student_tflite", "--data_dir=data", "--latency_examples=3",
                    "--report_dir=report"]),
    ]
    cls.results = {}
    for name, args in steps:
      result = run_cli(name.split(":")[0], args, cls.work)
      cls.results[name] = result
      if result.returncode != 0:
        raise AssertionError(f"{name} failed: {_describe(result)}")

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  def path(self, *parts):
    return os.path.join(self.work, *parts)

  def _dev_accuracy_of(self, output_dir):
    """Dev accuracy of the run's best weights, recomputed here from the CSV file."""
    model = RunDir(self.path(output_dir)).load_model()
    processor = CsvProcessor(text_column="text", label_column="label", labels=list(tiny.LABELS))
    examples = processor.get_dev_examples(self.path("data"))
    features = WordPieceTokenizer(self.path(output_dir, "vocab.txt")).encode(examples, 16, list(tiny.LABELS))
    logits = model({k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False)["logits"]
    return float(np.mean(np.argmax(logits, -1) == features["label_ids"]))

  def _assert_run_outputs(self, output_dir):
    for name in ("config.json", "model_config.json", "labels.json", "vocab.txt", "eval_results.json",
                 "best/student.index", "checkpoints/epoch-01.index"):
      self.assertTrue(os.path.isfile(self.path(output_dir, name)), f"{output_dir}/{name} is missing")
    self.assertTrue(os.listdir(self.path(output_dir, "logs")))
    results = _read_json(self.path(output_dir, "eval_results.json"))
    for key in ("dev_accuracy", "test_accuracy", "best_dev_accuracy"):
      self.assertBetween(results[key], 0.0, 1.0)
    self.assertEqual(results["best_epoch"], 1)
    # One wall-clock time per epoch trained (bench/augmented_epoch.py reads them).
    self.assertLen(results["epoch_seconds"], len(results["history"]["loss"]))
    self.assertGreater(min(results["epoch_seconds"]), 0.0)
    self.assertEqual(results["dev_accuracy"], results["best_dev_accuracy"])
    self.assertAllClose(results["dev_accuracy"], self._dev_accuracy_of(output_dir))
    self.assertEqual(_read_json(self.path(output_dir, "labels.json"))["labels"], ["neg", "pos"])
    return results

  def test_train_teacher(self):
    results = self._assert_run_outputs("runs/teacher")
    # Fine-tuning has no distillation terms, so neither the progress bar nor the history shows them.
    self.assertEqual(sorted(results["history"]), ["accuracy", "loss", "val_accuracy", "val_loss"])
    stdout = self.results["train_teacher"].stdout
    self.assertRegex(stdout, r"teacher: dev accuracy [01]\.\d{4}, test accuracy")
    # stdout is a pipe here: one Keras line for the one epoch, no per-batch progress bar.
    self.assertNotIn("\r", stdout)
    self.assertNotIn("ETA:", stdout)
    self.assertNotIn("Epoch ", stdout)  # a one-epoch run has no epoch header
    self.assertLen(re.findall(r"^\d+/\d+ - .* - val_accuracy: [01]\.\d{4}", stdout, re.MULTILINE), 1)
    model_config = _read_json(self.path("runs/teacher", "model_config.json"))
    self.assertEqual(model_config, {**tiny.tiny_config().to_dict(), "hidden_dropout_prob": 0.1,
                                    "attention_probs_dropout_prob": 0.1})
    config = _read_json(self.path("runs/teacher", "config.json"))
    self.assertEqual(config["data"]["task_name"], "csv")
    self.assertEqual(config["data"]["max_seq_length"], 16)
    self.assertEqual(config["train"]["num_train_epochs"], 1)

  def test_export_teacher(self):
    self.assertIn("exported teacher to export/teacher/1", self.results["export_teacher"].stdout)
    teacher = SavedModelTeacher(self.path("export", "teacher"), required_outputs=("logits", "hidden_states"))
    self.assertEqual(teacher.path, self.path("export", "teacher", "1"))
    self.assertEqual(teacher.labels, ["neg", "pos"])
    self.assertEqual(teacher.max_seq_length, 16)
    features = tiny.random_features(4, 16, seed=51)
    self.assertAllClose(teacher(features)["logits"],
                        RunDir(self.path("runs/teacher")).load_model()(features, training=False)["logits"], atol=1e-5)
    self.assertEqual([h.shape for h in teacher(features)["hidden_states"]], [(4, 16, 32)] * 2)  # one per layer

  def test_distill(self):
    results = self._assert_run_outputs("runs/student")
    self.assertGreater(results["history"]["kd_loss"][0], 0.0)  # the teacher was queried
    self.assertEqual(_read_json(self.path("runs/student", "model_config.json"))["num_hidden_layers"], 1)
    config = _read_json(self.path("runs/student", "config.json"))
    self.assertEqual(config["distill"], {"teacher_model": "export/teacher", "teacher_weights": None,
                                         "intermediate_teacher": None, "temperature": 2.0, "alpha": 0.5,
                                         "kd_loss": "ce", "probability_shift": False, "layer_map": "uniform",
                                         "intermediate_matches": "",
                                         "stages": "", "temperature_schedule": "constant",
                                         "alpha_schedule": "constant", "teacher_cache": "off",
                                         "teacher_cache_dir": None,
                                         "foreign": {"signature": "serving_default", "input_map": "", "output": "",
                                                     "output_kind": "logits", "bert_config_file": None},
                                         "unlabeled_data": None, "unlabeled_ratio": None,
                                         "augmentation": "", "augmentation_mode": "fixed", "embeddings_file": None,
                                         "masked_lm_dir": None, "pos_tagger": "auto"})
    self.assertEqual(config["student"]["type"], "bert")
    self.assertEqual(config["student"]["bert"]["init_from_layers"], [2])
    self.assertEqual(config["data"]["vocab_file"], "export/teacher/1/assets.extra/vocab.txt")  # the teacher's

  def test_distill_with_intermediate_matches_and_stages(self):
    self._assert_run_outputs("runs/intermediate")
    history = _read_json(self.path("runs/intermediate", "eval_results.json"))["history"]
    # Stage 1 trains the intermediate terms only, stage 2 the logits terms only.
    self.assertAllClose(history["loss"][0], history["feature_loss"][0], rtol=1e-5)
    self.assertNotAllClose(history["loss"][1], history["feature_loss"][1])
    config = _read_json(self.path("runs/intermediate", "config.json"))["distill"]
    self.assertEqual(config["intermediate_matches"], "hidden_mse,attention_mse_scores")
    # The cache holds the logits and only what the matches read: teacher layer 2 (index 1) and the embeddings.
    stdout = self.results["distill:intermediate"].stdout
    self.assertIn("teacher cache: built", stdout)
    # Keras fit runs once per epoch; the header still counts the run's two epochs.
    self.assertEqual(re.findall(r"^Epoch \d+/\d+$", stdout, re.MULTILINE), ["Epoch 1/2", "Epoch 2/2"])
    manifest = _read_json(self.path("cache_intermediate", "manifest.json"))
    self.assertEqual(sorted(manifest["outputs"]), ["attention_scores", "embeddings", "hidden_states", "logits"])
    self.assertEqual(manifest["layers"], [1])

  def test_bilstm_student_with_teacher_cache(self):
    self._assert_run_outputs("runs/bilstm")
    self.assertIn("teacher cache: built", self.results["distill:bilstm_cached"].stdout)
    manifest = _read_json(self.path("cache", "manifest.json"))
    self.assertEqual(manifest["num_examples"], 40)
    self.assertEqual(_read_json(self.path("runs/bilstm", "model_config.json"))["model_type"], "bilstm")

  def test_report(self):
    rows = {row["name"]: row for row in _read_json(self.path("report", "report.json"))["rows"]}
    self.assertEqual(list(rows), ["teacher", "student", "student_int8"])
    # Test accuracy of the exported SavedModels equals what the Keras models scored at the end of training.
    self.assertAllClose(rows["teacher"]["test_accuracy"],
                        _read_json(self.path("runs/teacher", "eval_results.json"))["test_accuracy"])
    self.assertAllClose(rows["student"]["test_accuracy"],
                        _read_json(self.path("runs/student", "eval_results.json"))["test_accuracy"])
    self.assertLessEqual(abs(rows["student_int8"]["test_accuracy"] - rows["student"]["test_accuracy"]), 0.25)

    def bert_parameters(config):  # counted by hand from the BERT architecture
      h, i, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
      embeddings = (config["vocab_size"] + config["max_position_embeddings"] + config["type_vocab_size"]) * h + 2 * h
      layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
      return embeddings + n * layer + (h * h + h) + (h * config["num_labels"] + config["num_labels"])

    for name, run in (("teacher", "runs/teacher"), ("student", "runs/student")):
      self.assertEqual(rows[name]["parameters"], bert_parameters(_read_json(self.path(run, "model_config.json"))))
      self.assertGreater(rows[name]["latency_ms"], 0.0)
    self.assertEqual(rows["student_int8"]["parameters"], rows["student"]["parameters"])
    self.assertAllClose(rows["student_int8"]["size_mib"],
                        os.path.getsize(self.path("export", "student_tflite", "1", "int8.tflite")) / 2**20)
    table = self.results["report"].stdout
    self.assertIn("| model | test accuracy | % of teacher |", table)
    self.assertIn("| teacher | ", table)
    self.assertIn(f"Measured on {machine.describe()}.", table)  # the CPU the latencies and accuracies come from
    with open(self.path("report", "report.md"), encoding="utf-8") as f:
      self.assertIn(f.read().strip(), table)

  def test_export_student_without_tflite(self):
    self.assertTrue(os.path.isfile(self.path("export", "student_saved_model_only", "1", "saved_model.pb")))
    self.assertFalse(os.path.exists(self.path("export", "student_saved_model_only_tflite")))
    stdout = self.results["export_student:saved_model_only"].stdout
    self.assertIn("via saved_model_cli run: max |logit diff|", stdout)
    self.assertNotIn("TFLite", stdout)

  def test_export_student(self):
    saved_model = self.path("export", "student", "1")
    self.assertTrue(os.path.isfile(os.path.join(saved_model, "saved_model.pb")))
    loaded = tf.saved_model.load(saved_model)
    self.assertEqual(sorted(loaded.signatures), ["serving_default", "serving_text"])  # no distill signature
    tflite_dir = self.path("export", "student_tflite", "1")
    for name in ("float32.tflite", "int8.tflite", "parity.json"):
      self.assertTrue(os.path.isfile(os.path.join(tflite_dir, name)), name)
    parity = _read_json(os.path.join(tflite_dir, "parity.json"))
    self.assertLess(parity["saved_model_cli"]["max_abs_logit_diff"], 1e-3)
    self.assertLess(parity["float32"]["max_abs_logit_diff"], 1e-3)
    self.assertEqual(parity["float32"]["argmax_agreement"], 1.0)
    self.assertEqual(parity["float32"]["num_examples"], 16)
    self.assertGreaterEqual(parity["int8"]["argmax_agreement"], 0.75)
    self.assertLess(parity["int8"]["bytes"], parity["float32"]["bytes"])
    stdout = self.results["export_student"].stdout
    self.assertIn("via saved_model_cli run", stdout)
    self.assertIn("TFLite int8", stdout)
    for noise in tiny.TFLITE_NOISE:
      self.assertNotIn(noise, self.results["export_student"].stderr)  # console.quiet_tflite

  def test_export_run_from_another_working_directory(self):
    from tf_distill.export.run_export import export_run  # pylint: disable=import-outside-toplevel
    self.assertNotEqual(os.path.realpath(os.getcwd()), os.path.realpath(self.work))
    export_root = self.path("export_elsewhere")
    path = export_run(self.path("runs/teacher"), export_root, "teacher", None, with_distill_signature=False)
    with open(os.path.join(path, "assets.extra", "vocab.txt"), encoding="utf-8") as f:
      self.assertEqual(f.read().split(), tiny.VOCAB)

  def test_export_takes_the_text_settings_of_the_run(self):
    from tf_distill.export.run_export import export_run  # pylint: disable=import-outside-toplevel
    run_dir = self.path("runs/teacher_cased_pairs")
    shutil.copytree(self.path("runs/teacher"), run_dir)
    config = _read_json(os.path.join(run_dir, "config.json"))
    config["data"].update(do_lower_case=False, text_b_column="text_b")
    with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as f:
      json.dump(config, f)
    path = export_run(run_dir, self.path("export_cased"), "teacher", None, with_distill_signature=False)
    metadata = _read_json(os.path.join(path, "assets.extra", "tf_distill.json"))
    self.assertFalse(metadata["do_lower_case"])
    self.assertTrue(metadata["text_pairs"])
    text_inputs = tf.saved_model.load(path).signatures["serving_text"].structured_input_signature[1]
    self.assertCountEqual(text_inputs, ["text", "text_b"])


class ErrorCasesTest(tf.test.TestCase):
  """Bad inputs through the real programs: exit status 1, one `error: ...` line, no traceback.

  The cases are independent, so setUpClass runs them a few at a time and each test checks one result.
  """

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_cli_errors_")
    shared = tiny.shared_teacher()  # labels neg,pos; tiny.VOCAB; 32 position embeddings
    data = tiny.write_csv_task(os.path.join(cls.work, "data"), num_train=8, num_dev=4, num_test=4)
    bad_label = tiny.write_csv_task(os.path.join(cls.work, "bad_label"), num_train=8, num_dev=4, num_test=4,
                                    extra_rows={"dev": [("good film", "maybe")]})
    pretrained = tiny.write_pretrained_dir(os.path.join(cls.work, "pretrained"))
    other_vocab = tiny.write_other_vocab(os.path.join(cls.work, "other_vocab.txt"))
    distill = ["--task_name=csv", f"--data_dir={data}", "--max_seq_length=16", "--student_num_layers=1",
               "--num_train_epochs=1", "--train_batch_size=4"]
    cases = {
        "missing_teacher": ("distill", distill + ["--teacher_model=" + os.path.join(cls.work, "no_teacher"),
                                                  "--output_dir=runs/a"]),
        "alpha": ("distill", distill + [f"--teacher_model={shared.model_dir}", "--alpha=1.5", "--output_dir=runs/b"]),
        "temperature": ("distill", distill + [f"--teacher_model={shared.model_dir}", "--temperature=0",
                                              "--output_dir=runs/c"]),
        "unknown_label": ("train_teacher", [f"--init_checkpoint={pretrained}", "--task_name=csv",
                                            f"--data_dir={bad_label}", "--max_seq_length=16",
                                            "--output_dir=runs/d"]),
        "max_seq_length": ("distill", distill + [f"--teacher_model={shared.model_dir}", "--max_seq_length=64",
                                                 "--output_dir=runs/e"]),
        "vocab_mismatch": ("distill", distill + [f"--teacher_model={shared.model_dir}", f"--vocab_file={other_vocab}",
                                                 "--output_dir=runs/f"]),
        "mse_with_temperature": ("distill", distill + [f"--teacher_model={shared.model_dir}", "--kd_loss=mse",
                                                       "--output_dir=runs/g"]),
        "tflite_variant": ("export_student", ["--output_dir=runs/none", "--tflite=float16"]),
        "alpha_0_with_alpha_schedule": ("distill", distill + [f"--teacher_model={shared.model_dir}", "--alpha=0",
                                                              "--alpha_schedule=linear:0.5", "--output_dir=runs/h"]),
        "alpha_0_with_temperature_schedule": ("distill", distill + [
            f"--teacher_model={shared.model_dir}", "--alpha=0", "--temperature_schedule=flsw:1:1",
            "--output_dir=runs/i"]),
        "old_init_layers": ("distill", distill + [f"--teacher_model={shared.model_dir}", "--student_init_layers=0",
                                                  "--output_dir=runs/j"]),
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
      futures = {name: pool.submit(run_cli, program, args, cls.work) for name, (program, args) in cases.items()}
      cls.results = {name: future.result() for name, future in futures.items()}
    cls.paths = {"data": data, "bad_label": bad_label, "teacher_dir": shared.model_dir, "other_vocab": other_vocab,
                 "teacher_vocab": os.path.join(shared.path, "assets.extra", "vocab.txt")}

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  def assertCleanError(self, name, message):
    """Exit status 1 and a last stderr line `error: <message>`; no traceback or traced stack anywhere."""
    result = self.results[name]
    self.assertEqual(result.returncode, 1, _describe(result))
    self.assertNotIn("Traceback (most recent call last)", result.stderr)
    self.assertNotRegex(result.stderr, r'File "[^"]+", line \d+', "stderr shows a stack")
    last_line = result.stderr.strip().splitlines()[-1]
    self.assertRegex(last_line, "^error: " + message)

  def test_unknown_tflite_variant(self):
    self.assertCleanError("tflite_variant", re.escape("--tflite takes variants from ['float32', 'int8', "
                                                      "'full_int8', '16x8', 'selective'], got ['float16']"))

  def test_missing_teacher_model(self):
    self.assertCleanError("missing_teacher",
                          re.escape(f"teacher model '{self.work}/no_teacher' does not exist; pass the directory "
                                    "written by scripts/export_teacher.sh"))

  def test_alpha_0_with_an_alpha_schedule_is_refused(self):
    # It used to drop the teacher while the schedule raised alpha: the label term shrank and nothing was distilled.
    self.assertCleanError("alpha_0_with_alpha_schedule", re.escape(
        "--alpha=0 trains on hard labels only (the teacher's logits are not read), but --alpha_schedule=linear:0.5 "
        "would raise alpha during training"))
    self.assertFalse(os.path.exists(os.path.join(self.work, "runs/h")))  # refused before anything was written

  def test_alpha_0_with_a_temperature_schedule_is_refused(self):
    # It used to call a missing teacher and end in a traceback.
    self.assertCleanError("alpha_0_with_temperature_schedule", re.escape(
        "--temperature_schedule=flsw:1:1 shapes the distillation term, but --alpha=0 has none"))

  def test_old_0_based_init_layers_flag_is_refused(self):
    self.assertCleanError("old_init_layers", re.escape(
        "--student_init_layers=0 counted teacher layers from 0; it is replaced by --student_init_from_layers, "
        "numbered from 1 like --layer_map: use --student_init_from_layers=1"))

  def test_alpha_out_of_range(self):
    self.assertCleanError("alpha", r"alpha must be in \[0, 1\], got 1.5$")

  def test_zero_temperature(self):
    self.assertCleanError("temperature", r"temperature must be > 0, got 0.0$")

  def test_unknown_label_names_file_and_line(self):
    # 4 generated dev rows on lines 2-5, then the bad row on line 6.
    self.assertCleanError("unknown_label",
                          re.escape(f"{self.paths['bad_label']}/dev.csv, line 6: unknown label 'maybe'; "
                                    "known labels: ['neg', 'pos']"))

  def test_max_seq_length_beyond_teacher_positions(self):
    self.assertCleanError("max_seq_length", re.escape("max_seq_length=64 is beyond the teacher's 32 position "
                                                      "embeddings; use --max_seq_length<=32"))

  def test_vocab_mismatch(self):
    self.assertCleanError("vocab_mismatch",
                          re.escape(f"vocab mismatch: {self.paths['other_vocab']} differs from the vocab the teacher "
                                    f"was trained with; use {self.paths['teacher_vocab']} as --vocab_file"))

  def test_mse_with_default_temperature_fails_early_and_cleanly(self):
    self.assertCleanError("mse_with_temperature", "kd_loss 'mse' matches raw logits and takes no temperature; got "
                          r"temperature=2.0, use --temperature=1$")


if __name__ == "__main__":
  tf.test.main()

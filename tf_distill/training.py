"""Shared pieces of a training run: data loading, the Keras fit with its callbacks, and evaluation."""

import dataclasses
import json
import math
import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill.bert import BertClassifier, BertConfig
from tf_distill.callbacks import KeepBestStudent, StopOnNonFiniteLoss
from tf_distill.configs import DataConfig, TrainConfig
from tf_distill.data.pipeline import load_task_features, make_dataset
from tf_distill.data.processors import get_processor
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.distiller import Distiller
from tf_distill.optimization import create_optimizer

Features = Dict[str, np.ndarray]


@dataclasses.dataclass
class TaskData:
  features: Dict[str, Features]
  labels: List[str]


def load_data(config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
              max_train_examples: Optional[int] = None) -> TaskData:
  """Reads and tokenises `splits` of the configured task; optionally keeps the first N training examples."""
  kwargs = {}
  if config.task_name == "csv":
    kwargs = dict(text_column=config.text_column, label_column=config.label_column,
                  text_b_column=config.text_b_column, labels=list(config.labels) if config.labels else None)
  elif config.tfds_data_dir:
    kwargs = dict(tfds_data_dir=config.tfds_data_dir)
  processor = get_processor(config.task_name, **kwargs)
  tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
  features, labels = load_task_features(processor, tokenizer, config.data_dir, config.max_seq_length, splits)
  if max_train_examples and "train" in features:
    features["train"] = {k: v[:max_train_examples] for k, v in features["train"].items()}
  if config.labels is not None and list(config.labels) != list(labels):
    raise ValueError(f"--labels={','.join(config.labels)} differs from the task's labels {labels}")
  return TaskData(features, list(labels))


def length_buckets(max_seq_length: int) -> Tuple[int, ...]:
  """Token-count boundaries for length-bucketed training batches: 1/4, 3/8, 1/2 and 3/4 of max_seq_length."""
  return tuple(sorted({b for b in (max_seq_length // 4, 3 * max_seq_length // 8, max_seq_length // 2,
                                   3 * max_seq_length // 4) if b >= 1}))


def fit(distiller: Distiller, data: TaskData, config: TrainConfig, output_dir: str) -> Dict:
  """Trains with per-epoch dev evaluation, TensorBoard logs, epoch checkpoints and the best student kept.

  The best student's weights (by dev accuracy) are restored into `distiller.student` before returning.
  Returns a summary: best epoch, dev accuracy and the per-epoch history.
  """
  distiller.student.embeddings.word_embeddings.trainable = not config.freeze_word_embeddings
  num_train, max_seq_length = data.features["train"]["input_ids"].shape
  buckets = length_buckets(max_seq_length)
  # Bucketing leaves at most one partial batch per bucket.
  steps_per_epoch = math.ceil(num_train / config.train_batch_size) + len(buckets)
  epochs = int(config.num_train_epochs)
  distiller.compile(optimizer=create_optimizer(config.learning_rate, steps_per_epoch * epochs,
                                               config.warmup_proportion, config.weight_decay))
  train = make_dataset(data.features["train"], config.train_batch_size, training=True, seed=config.seed,
                       length_buckets=buckets)
  dev = make_dataset(data.features["dev"], config.eval_batch_size, training=False)
  best_path = os.path.join(output_dir, "best", "student")
  keep_best = KeepBestStudent(best_path)
  callbacks = [
      StopOnNonFiniteLoss(),
      keep_best,
      keras.callbacks.TensorBoard(log_dir=os.path.join(output_dir, "logs"), update_freq=50),
      keras.callbacks.ModelCheckpoint(os.path.join(output_dir, "checkpoints", "epoch-{epoch:02d}"),
                                      save_weights_only=True),
  ]
  history = distiller.fit(train, validation_data=dev, epochs=epochs, callbacks=callbacks, verbose=1)
  distiller.student.load_weights(best_path)
  return {"best_epoch": keep_best.best_epoch, "best_dev_accuracy": keep_best.best,
          "history": {k: [float(x) for x in v] for k, v in history.history.items()}}


def train_and_evaluate(distiller: Distiller, data: TaskData, config: TrainConfig, output_dir: str,
                       do_train: bool, do_eval: bool, name: str) -> Dict:
  """run_classifier's --do_train / --do_eval: fits (or loads the best weights), scores dev and test, writes
  eval_results.json and prints one line with the accuracies."""
  summary = {}
  if do_train:
    summary = fit(distiller, data, config, output_dir)
  else:
    distiller.student.load_weights(os.path.join(output_dir, "best", "student")).expect_partial()
  if do_eval:
    for split in ("dev", "test"):
      logits = predict_logits(distiller.student, data.features[split], config.eval_batch_size)
      summary[f"{split}_accuracy"] = accuracy(logits, data.features[split]["label_ids"])
    print(f"{name}: dev accuracy {summary['dev_accuracy']:.4f}, test accuracy {summary['test_accuracy']:.4f}")
  write_json(os.path.join(output_dir, "eval_results.json"), summary)
  return summary


def predict_logits(model: keras.Model, features: Features, batch_size: int) -> np.ndarray:
  """Student logits float32 [n, labels] for encoded features."""
  dataset = make_dataset(features, batch_size, training=False)
  return Distiller(model, alpha=0.0).predict(dataset, verbose=0)


def accuracy(logits: np.ndarray, label_ids: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, axis=-1) == label_ids))


def write_json(path: str, payload: Dict) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f, indent=2, sort_keys=True)


def write_run_info(output_dir: str, model: BertClassifier, data_config: DataConfig, labels: Sequence[str]) -> None:
  """Writes what an export needs besides the weights: model_config.json, labels.json and a copy of vocab.txt."""
  os.makedirs(output_dir, exist_ok=True)
  vocab_copy = os.path.join(output_dir, "vocab.txt")
  if os.path.abspath(data_config.vocab_file) != os.path.abspath(vocab_copy):
    shutil.copyfile(data_config.vocab_file, vocab_copy)
  write_json(os.path.join(output_dir, "model_config.json"), model.config.to_dict())
  write_json(os.path.join(output_dir, "labels.json"), {"labels": list(labels),
                                                       "max_seq_length": data_config.max_seq_length,
                                                       "task_name": data_config.task_name})


def set_seed(seed: int) -> None:
  keras.utils.set_random_seed(seed)


def load_trained(output_dir: str) -> BertClassifier:
  """Rebuilds a model trained by this program (or distill) from its output_dir with the best weights."""
  config_path = os.path.join(output_dir, "model_config.json")
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{output_dir} has no model_config.json; pass the --output_dir of a finished "
                            "train_teacher or distill run")
  model = BertClassifier(BertConfig.from_json_file(config_path)).build_weights()
  model.load_weights(os.path.join(output_dir, "best", "student")).expect_partial()
  return model

"""Classification: one label per example (or sentence pair), logits [batch, num_labels] from the pooled [CLS].

Tasks: `rotten_tomatoes`, `bbc_news` (TFDS builders) and `csv` (your own files), read by the processors of
`tf_distill.data.processors` and encoded by `WordPieceTokenizer.encode`; the metric is accuracy, which Keras'
evaluation reports each epoch as val_accuracy.
"""

from typing import Dict, Optional, Sequence

import numpy as np

from tf_distill.configs import DataConfig
from tf_distill.data.pipeline import load_task_features
from tf_distill.data.processors import processor_for
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.tasks.base import Features, TaskData, TaskType, check_task_labels


def accuracy(logits: np.ndarray, label_ids: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, axis=-1) == label_ids))


class Classification(TaskType):
  """Sentence (pair) classification, as Google BERT's run_classifier.py."""

  task_names = ("rotten_tomatoes", "bbc_news", "csv")
  head = "pooled"
  metric = "accuracy"
  metric_title = "accuracy"
  distills = True

  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    features, labels = load_task_features(processor_for(config), tokenizer, config.data_dir, config.max_seq_length,
                                          splits)
    if max_train_examples and "train" in features:
      features["train"] = {k: v[:max_train_examples] for k, v in features["train"].items()}
    check_task_labels(config, labels)
    return TaskData(features, list(labels))

  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    del labels
    return {"accuracy": accuracy(logits, features["label_ids"])}

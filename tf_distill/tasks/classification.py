"""Classification: one label per example (or sentence pair), logits [batch, num_labels] from the pooled [CLS].

Tasks: `rotten_tomatoes`, `bbc_news` (TFDS builders) and `csv` (your own files), read by the processors of
`tf_distill.data.processors` and encoded by `WordPieceTokenizer.encode`; the metric is accuracy, which Keras'
evaluation reports each epoch as val_accuracy. Exports: `serving_text` takes `text` (and `text_b`) and returns
logits and probabilities [batch, labels]; parity compares every example's logits, and a quantised export keeps the
test accuracy over the labelled examples.
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.configs import DataConfig
from tf_distill.data.pipeline import load_task_features
from tf_distill.data.processors import InputExample, processor_for
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.export import text_signature
from tf_distill.export.parity import labelled_accuracy
from tf_distill.tasks.base import Features, TaskData, TaskType, Texts, check_task_labels, sample


def accuracy(logits: np.ndarray, label_ids: np.ndarray) -> float:
  return float(np.mean(np.argmax(logits, axis=-1) == label_ids))


class Classification(TaskType):
  """Sentence (pair) classification, as Google BERT's run_classifier.py."""

  task_names = ("rotten_tomatoes", "bbc_news", "csv")
  head = "pooled"
  metric = "accuracy"
  metric_title = "accuracy"

  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    features, labels = load_task_features(processor_for(config), tokenizer, config.data_dir, config.max_seq_length,
                                          splits)
    if max_train_examples and "train" in features:
      features["train"] = {k: v[:max_train_examples] for k, v in features["train"].items()}
    check_task_labels(config, labels)
    return TaskData(features, list(labels))

  def training_texts(self, config: DataConfig, max_train_examples: Optional[int] = None) -> List[InputExample]:
    return processor_for(config).get_examples("train", config.data_dir)[:max_train_examples or None]

  def encode_unlabeled(self, tokenizer: WordPieceTokenizer, examples: Sequence[InputExample],
                       config: DataConfig) -> Tuple[Features, np.ndarray]:
    features = tokenizer.encode([dataclasses.replace(e, label=None) for e in examples], config.max_seq_length, ())
    return features, np.arange(len(examples))

  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    del labels
    return {"accuracy": accuracy(logits, features["label_ids"])}

  def export_examples(self, config: DataConfig, split: str, num_examples: int,
                      seed: Optional[int] = None) -> Tuple[Texts, Features]:
    examples = sample(processor_for(config).get_examples(split, config.data_dir), num_examples, seed)
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    texts = {"text": [e.text_a for e in examples]}
    if config.text_b_column is not None:
      texts["text_b"] = [e.text_b or "" for e in examples]
    return texts, tokenizer.encode(examples, config.max_seq_length, list(config.labels))

  def quality(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Optional[float]:
    del labels
    return labelled_accuracy(logits, features["label_ids"])

  def scored(self, logits: np.ndarray, features: Features) -> np.ndarray:
    del features
    return np.asarray(logits)

  def text_signature(self, serve, encoder, metadata: Dict):
    return text_signature.serving_text_function(serve, encoder, bool(metadata.get("text_pairs", False)))

  def text_parity(self, outputs: Dict[str, np.ndarray], features: Features, logits: np.ndarray):
    del features
    return np.asarray(logits), np.asarray(outputs["logits"])

  def signature_outputs(self, num_labels: int) -> Dict:
    outputs = {name: ("float32", [None, num_labels]) for name in ("logits", "probabilities")}
    return {"serving_default": outputs, "serving_text": outputs}

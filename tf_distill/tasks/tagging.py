"""Tagging (NER): one IOB2 tag per word, logits [batch, seq, num_tags] from every position's last hidden state.

Tasks:
  wnut17  WNUT-17 Emerging Entities, shipped with tf_distill (`tf_distill.data.tfds_builders.Wnut17`);
  conll   your own: `--data_dir` with train, dev and test files in CoNLL column format (`tf_distill.data.conll`,
          `find_split_file`), the tag in `--label_column` (a column number; default the last), the tag list from
          the training file or `--labels`.
Words are encoded by `tf_distill.data.token_alignment.encode_tagged`: the tag on each word's first piece, -1 on
every other position, long sentences in windows so that every word is scored once. The training rows keep
input_ids, input_mask, segment_ids and label_ids [n, seq]; dev and test also keep word_ids and sentence_ids, which
map predictions back to words.

The metric is entity-level micro F1 with conlleval semantics (`tf_distill.entity_metrics.entity_scores`) over the
words: gold tags and predictions are both read at the words' first pieces (`word_predictions`). The dev F1 picks the
best checkpoint (`val_f1`, computed after each epoch by `tf_distill.callbacks.DevScore`).
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.callbacks import DevScore
from tf_distill.configs import DataConfig
from tf_distill.data import conll, tfds_builders
from tf_distill.data.tokenization import FEATURE_KEYS, WordPieceTokenizer
from tf_distill.data.token_alignment import encode_tagged, word_predictions
from tf_distill.entity_metrics import entity_scores
from tf_distill.tasks.base import Features, TaskData, TaskType, check_task_labels

Sentences = List[Tuple[Sequence[str], Sequence[int]]]  # (words, tag ids) per sentence
_TFDS_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def conll_label_column(value: str) -> int:
  """`--label_column` of a CoNLL task: the tag's column number (0 is the word, -1 the last); "label", the flag's
  default for CSV tasks, means the last."""
  if value == "label":
    return -1
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"--label_column={value} must be the tag's column number for a CoNLL task (1, 2, ... or -1 for "
                     "the last column; column 0 is the word)") from None


def read_conll_task(config: DataConfig, splits: Sequence[str]) -> Tuple[Dict[str, Sentences], List[str]]:
  """The sentences of `splits` from `config.data_dir` and the tag list (`--labels`, else the training file's)."""
  if not config.data_dir:
    raise ValueError("task_name 'conll' reads train, dev and test CoNLL files from --data_dir; pass --data_dir")
  column = conll_label_column(config.label_column)
  path = lambda split: conll.find_split_file(config.data_dir, split)
  read = {}
  if config.labels is not None:
    labels = conll.check_labels(config.labels)
  else:
    read["train"] = conll.read_conll(path("train"), column)
    labels = conll.tags_of(read["train"])
  sentences = {}
  for split in splits:
    tagged = read.get(split) or conll.read_conll(path(split), column, labels)
    sentences[split] = list(zip((s.words for s in tagged), conll.tag_ids(tagged, labels)))
  return sentences, labels


def read_wnut17(config: DataConfig, splits: Sequence[str]) -> Tuple[Dict[str, Sentences], List[str]]:
  """The sentences of `splits` of the shipped WNUT-17 (prepared into `config.tfds_data_dir` on first use)."""
  builder = tfds_builders.prepare(tfds_builders.Wnut17, config.tfds_data_dir)
  sentences = {}
  for split in splits:
    dataset = builder.as_dataset(split=_TFDS_SPLITS[split], shuffle_files=False)
    rows = sorted(dataset.as_numpy_iterator(), key=lambda row: int(row["id"]))  # file order
    sentences[split] = [([word.decode("utf-8") for word in row["tokens"]], list(row["tags"])) for row in rows]
  labels = list(tfds_builders.Wnut17.LABELS)
  check_task_labels(config, labels)
  return sentences, labels


READERS = {"wnut17": read_wnut17, "conll": read_conll_task}


class Tagging(TaskType):
  """Token tagging with a tag per word, as BERT's NER recipe (first piece of each word)."""

  task_names = tuple(READERS)
  head = "token"
  metric = "f1"
  metric_title = "entity F1"
  distills = False

  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    sentences, labels = READERS[config.task_name](config, splits)
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    features = {}
    for split in splits:
      words, tag_ids = zip(*sentences[split])
      features[split] = encode_tagged(tokenizer, words, config.max_seq_length, tag_ids)
    if "train" in features:  # training reads the model inputs and the labels only
      features["train"] = {key: features["train"][key][:max_train_examples or None]
                           for key in FEATURE_KEYS + ("label_ids",)}
    return TaskData(features, labels)

  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    """Entity precision, recall, F1 (micro) and per type: {"precision", "recall", "f1", "per_type": {type: {...}}}."""
    report = entity_scores(word_predictions(features["label_ids"], features, labels),
                           word_predictions(logits, features, labels))
    per_type = {name: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
                for name, s in report.per_type.items()}
    return {"precision": report.micro.precision, "recall": report.micro.recall, "f1": report.micro.f1,
            "per_type": per_type}

  def dev_callbacks(self, dev: Features, labels: Sequence[str], batch_size: int):
    return (DevScore(self.monitor, lambda logits: self.score(logits, dev, labels)[self.metric], dev, batch_size),)

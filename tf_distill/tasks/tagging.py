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

Transfer-set text (unlabeled text, augmented variants of the training sentences, joined by spaces) is cut into words
at whitespace and encoded untagged: the teacher labels every piece. Exports: serving_default gives logits
[batch, seq, tags]; `serving_text` takes raw text and gives its words, their tags and the logits at each word's first
piece (`tf_distill.export.text_signature.tagging_text_function`). Parity compares the logits at the scored words, and
a quantised export keeps the test entity F1.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.callbacks import DevScore
from tf_distill.configs import DataConfig
from tf_distill.data import conll, tfds_builders
from tf_distill.data.processors import InputExample
from tf_distill.data.tokenization import FEATURE_KEYS, WordPieceTokenizer
from tf_distill.data.token_alignment import encode_tagged, word_predictions
from tf_distill.entity_metrics import entity_scores
from tf_distill.export import text_signature
from tf_distill.tasks.base import Features, TaskData, TaskType, Texts, check_task_labels, sample

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
  unit = "words"
  scored_unit = "words"

  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    """The splits' features; `max_train_examples` counts training sentences (a long one may be several rows)."""
    sentences, labels = READERS[config.task_name](config, splits)
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    features = {}
    for split in splits:
      chosen = sentences[split][:max_train_examples or None] if split == "train" else sentences[split]
      words, tag_ids = zip(*chosen)
      features[split] = encode_tagged(tokenizer, words, config.max_seq_length, tag_ids)
    if "train" in features:  # training reads the model inputs and the labels only
      features["train"] = {key: features["train"][key] for key in FEATURE_KEYS + ("label_ids",)}
    return TaskData(features, labels)

  def training_texts(self, config: DataConfig, max_train_examples: Optional[int] = None) -> List[InputExample]:
    """Each training sentence as its words joined by spaces (`encode_unlabeled` splits text on whitespace)."""
    sentences, _ = READERS[config.task_name](config, ("train",))
    return [InputExample(guid=f"train-{i}", text_a=" ".join(words))
            for i, (words, _) in enumerate(sentences["train"][:max_train_examples or None])]

  def encode_unlabeled(self, tokenizer: WordPieceTokenizer, examples: Sequence[InputExample],
                       config: DataConfig) -> Tuple[Features, np.ndarray]:
    """Each example's `text_a` split on whitespace into words, encoded untagged (label -1 everywhere); the features
    also hold word_ids and sentence_ids (`encode_tagged`)."""
    if any(example.text_b is not None for example in examples):
      raise ValueError("a tagging task reads one text per example; the unlabeled data has a second text column: "
                       "drop --text_b_column")
    features = encode_tagged(tokenizer, [example.text_a.split() for example in examples], config.max_seq_length)
    return features, features["sentence_ids"]

  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    """Entity precision, recall, F1 (micro) and per type: {"precision", "recall", "f1", "per_type": {type: {...}}}."""
    report = entity_scores(word_predictions(features["label_ids"], features, labels),
                           word_predictions(logits, features, labels))
    per_type = {name: {"precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
                for name, s in report.per_type.items()}
    return {"precision": report.micro.precision, "recall": report.micro.recall, "f1": report.micro.f1,
            "per_type": per_type}

  def dev_callbacks(self, data: TaskData, batch_size: int):
    dev, labels = data.features["dev"], data.labels
    return (DevScore(self.monitor, lambda logits: self.score(logits, dev, labels)[self.metric], dev, batch_size),)

  def export_examples(self, config: DataConfig, split: str, num_examples: int,
                      seed: Optional[int] = None) -> Tuple[Texts, Features]:
    """Sentences of `split`, their words joined by spaces, and their features (windows, word_ids, sentence_ids)."""
    sentences, _ = READERS[config.task_name](config, (split,))
    sentences = sample(sentences[split], num_examples, seed)
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    words, tag_ids = zip(*sentences) if sentences else ((), ())
    return ({"text": [" ".join(w) for w in words]},
            encode_tagged(tokenizer, words, config.max_seq_length, tag_ids))

  def quality(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Optional[float]:
    """Entity F1 (micro) of the words; None when no word has a tag (untagged text)."""
    if not (np.asarray(features["label_ids"]) >= 0).any():
      return None
    return self.score(logits, features, labels)["f1"]

  def scored(self, logits: np.ndarray, features: Features) -> np.ndarray:
    return np.asarray(logits)[np.asarray(features["word_ids"]) >= 0]

  def text_signature(self, serve, encoder, metadata: Dict):
    return text_signature.tagging_text_function(serve, encoder, metadata["labels"])

  def text_parity(self, outputs: Dict[str, np.ndarray], features: Features, logits: np.ndarray):
    """The logits at each word's first piece, from `logits` (read at `word_ids`) and from the signature's
    word_logits, for the sentences that fit one window (the signature reads a text in one window, cut at its end;
    in a longer sentence the features score words in the window where they have the most context)."""
    sentence_ids = np.asarray(features["sentence_ids"])
    rows, positions = np.nonzero(np.asarray(features["word_ids"]) >= 0)
    whole = np.bincount(sentence_ids)[sentence_ids[rows]] == 1
    rows, positions = rows[whole], positions[whole]
    sentences, words = sentence_ids[rows], np.asarray(features["word_ids"])[rows, positions]
    return np.asarray(logits)[rows, positions], np.asarray(outputs["word_logits"])[sentences, words]

  def signature_outputs(self, num_labels: int) -> Dict:
    return {"serving_default": {name: ("float32", [None, None, num_labels]) for name in ("logits", "probabilities")},
            "serving_text": {"words": ("string", [None, None]), "tags": ("string", [None, None]),
                             "word_logits": ("float32", [None, None, num_labels])}}

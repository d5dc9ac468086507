"""Tagged words to BERT features and back: each word's tag on its first WordPiece, long sentences in windows.

Each word is tokenised on its own (`WordPieceTokenizer.tokenize`, as BERT's NER recipe does); a word that yields no
piece (a lone control or format character such as U+FE0F) becomes one [UNK], so every word has a first piece.

A sentence of P pieces fits one feature when P <= W = max_seq_length - 2. A longer one is cut into windows of W
pieces whose starts advance by `doc_stride` S (default W // 2), as in BERT's `run_squad.py`: starts 0, S, 2S, ...
until a window reaches the last piece; the last window is the shorter remainder. Windows may cut a word between its
pieces. Every word is scored in exactly one window: of the windows holding its first piece p, the one where p has
the most context,
  score(window) = min(p - start, start + length - 1 - p) + 0.01 * length,
the first on ties (`run_squad`'s `_check_is_max_context`). In the other windows the word's first piece is context
only: label -1, word id -1.

Features, for n windows (n >= number of sentences; an empty sentence is one [CLS] [SEP] feature) of length L:
  input_ids:    int32 [n, L]  [CLS] pieces [SEP] then [PAD] (id 0)
  input_mask:   int32 [n, L]  1 for [CLS], pieces, [SEP]; 0 for padding
  segment_ids:  int32 [n, L]  all 0
  label_ids:    int32 [n, L]  the word's tag id on the first piece of a word scored in this window; -1 on other
                              pieces, [CLS], [SEP], padding, and everywhere when tags are not given
  word_ids:     int32 [n, L]  the word's index in its sentence where label_ids may be set; -1 elsewhere
  sentence_ids: int32 [n]     the index of the feature's sentence
so `word_ids >= 0` marks the positions the hard loss and the metric read, each word exactly once.
`word_predictions` inverts this: per-position predictions back to one tag per word.
"""

import collections
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.data.tokenization import FEATURE_KEYS, NO_LABEL, WordPieceTokenizer

TAGGING_FEATURE_KEYS = FEATURE_KEYS + ("label_ids", "word_ids", "sentence_ids")
UNK_TOKEN = "[UNK]"


def window_spans(num_pieces: int, window: int, doc_stride: int) -> List[Tuple[int, int]]:
  """[(start, length)] of the windows over `num_pieces` pieces: starts 0, S, 2S, ... until one reaches the end."""
  spans, start = [], 0
  while True:
    length = min(window, num_pieces - start)
    spans.append((start, length))
    if start + length >= num_pieces:
      return spans
    start += doc_stride


def max_context_span(spans: Sequence[Tuple[int, int]], position: int) -> int:
  """Index of the span in which `position` has the most context (module docstring); the first on ties."""
  best, best_score = -1, None
  for index, (start, length) in enumerate(spans):
    if not start <= position < start + length:
      continue
    score = min(position - start, start + length - 1 - position) + 0.01 * length
    if best_score is None or score > best_score:
      best, best_score = index, score
  return best


class WordPieceAligner:
  """Encodes words with a `WordPieceTokenizer`, remembering the pieces of each distinct word.

  Args:
    tokenizer: the teacher's tokenizer; piece ids are the line numbers of its vocab_file (BERT's `load_vocab`).
  """

  def __init__(self, tokenizer: WordPieceTokenizer):
    self.tokenizer = tokenizer
    with open(tokenizer.vocab_file, encoding="utf-8") as f:
      lines = f.read().split("\n")
    self._vocab = {line.strip(): index for index, line in enumerate(lines) if line.strip()}
    self.unk_id = self._vocab[UNK_TOKEN]
    self._pieces: Dict[str, List[int]] = {}

  def word_pieces(self, word: str) -> List[int]:
    """Piece ids of one word; [UNK] when it tokenises to nothing."""
    if word not in self._pieces:
      pieces = [self._vocab[token] for token in self.tokenizer.tokenize(word)]
      self._pieces[word] = pieces or [self.unk_id]
    return self._pieces[word]

  def encode(self, sentences: Sequence[Sequence[str]], max_seq_length: int,
             tag_ids: Optional[Sequence[Sequence[int]]] = None,
             doc_stride: Optional[int] = None) -> Dict[str, np.ndarray]:
    """The features of the module docstring.

    Args:
      sentences: each a sequence of words.
      max_seq_length: L, the feature length; windows hold up to L - 2 pieces.
      tag_ids: each sentence's tag ids (one per word, >= 0), or None for untagged text (label_ids all -1).
      doc_stride: pieces between window starts, 1 <= S <= L - 2; None means (L - 2) // 2, at least 1.
    """
    if max_seq_length < 3:
      raise ValueError(f"max_seq_length must be >= 3 to fit [CLS], a word piece and [SEP], got {max_seq_length}")
    window = max_seq_length - 2
    doc_stride = max(window // 2, 1) if doc_stride is None else doc_stride
    if not 1 <= doc_stride <= window:
      raise ValueError(f"doc_stride must be in [1, max_seq_length - 2 = {window}] so that windows overlap or touch "
                       f"and no piece is skipped, got {doc_stride}")
    if tag_ids is not None and len(tag_ids) != len(sentences):
      raise ValueError(f"tag_ids has {len(tag_ids)} sentences but sentences has {len(sentences)}; pass one tag list "
                       "per sentence")
    rows = []  # (sentence, piece ids, labels, word ids) per feature, before padding.
    for index, words in enumerate(sentences):
      tags = None if tag_ids is None else list(tag_ids[index])
      if tags is not None and len(tags) != len(words):
        raise ValueError(f"sentence {index}: {len(words)} words but {len(tags)} tag ids; pass one tag id per word")
      if tags is not None and min(tags, default=0) < 0:
        raise ValueError(f"sentence {index}: tag id {min(tags)} < 0; tag ids index the tag list, -1 is for pieces "
                         "that are not scored")
      rows.extend(self._sentence_rows(index, list(words), tags, window, doc_stride))
    n = len(rows)
    features = {key: np.zeros([n, max_seq_length], np.int32) for key in FEATURE_KEYS}
    features["label_ids"] = np.full([n, max_seq_length], NO_LABEL, np.int32)
    features["word_ids"] = np.full([n, max_seq_length], -1, np.int32)
    features["sentence_ids"] = np.zeros([n], np.int32)
    for i, (sentence, ids, labels, word_ids) in enumerate(rows):
      length = len(ids) + 2
      features["input_ids"][i, :length] = [self.tokenizer.cls_id] + ids + [self.tokenizer.sep_id]
      features["input_mask"][i, :length] = 1
      features["label_ids"][i, 1:length - 1] = labels
      features["word_ids"][i, 1:length - 1] = word_ids
      features["sentence_ids"][i] = sentence
    return features

  def _sentence_rows(self, sentence: int, words: List[str], tags: Optional[List[int]], window: int, doc_stride: int):
    pieces, first_pieces = [], []  # first_pieces[j]: position of word j's first piece in `pieces`.
    for word in words:
      first_pieces.append(len(pieces))
      pieces.extend(self.word_pieces(word))
    spans = window_spans(len(pieces), window, doc_stride)
    scored_in = [max_context_span(spans, position) for position in first_pieces]
    rows = []
    for span_index, (start, length) in enumerate(spans):
      labels = [NO_LABEL] * length
      word_ids = [-1] * length
      for word, position in enumerate(first_pieces):
        if scored_in[word] == span_index:
          word_ids[position - start] = word
          if tags is not None:
            labels[position - start] = tags[word]
      rows.append((sentence, pieces[start:start + length], labels, word_ids))
    return rows


def encode_tagged(tokenizer: WordPieceTokenizer, sentences: Sequence[Sequence[str]], max_seq_length: int,
                  tag_ids: Optional[Sequence[Sequence[int]]] = None,
                  doc_stride: Optional[int] = None) -> Dict[str, np.ndarray]:
  """`WordPieceAligner(tokenizer).encode(...)`: the features of the module docstring."""
  return WordPieceAligner(tokenizer).encode(sentences, max_seq_length, tag_ids=tag_ids, doc_stride=doc_stride)


def word_predictions(predictions: np.ndarray, features: Dict[str, np.ndarray],
                     labels: Optional[Sequence[str]] = None) -> List[list]:
  """Per-sentence, per-word predictions from per-position ones: each word's prediction is the one at its first piece
  in the window that scores it (`word_ids`).

  Args:
    predictions: int [n, L] tag ids, or float [n, L, num_tags] logits or probabilities (argmax is taken).
    features: the `encode_tagged` features the predictions are for (`word_ids`, `sentence_ids`).
    labels: the tag list; given, tags are returned as strings, else as int ids.

  Returns:
    One list per sentence (sentence_ids 0 .. max), one tag per word.
  """
  predictions = np.asarray(predictions)
  if predictions.ndim == 3:
    predictions = predictions.argmax(axis=-1)
  word_ids, sentence_ids = np.asarray(features["word_ids"]), np.asarray(features["sentence_ids"])
  if predictions.shape != word_ids.shape:
    raise ValueError(f"predictions have shape {predictions.shape} but the features {word_ids.shape} [n, L]; pass the "
                     "predictions of exactly these features, in order")
  num_sentences = int(sentence_ids.max()) + 1 if len(sentence_ids) else 0
  found: List[List[Tuple[int, int]]] = [[] for _ in range(num_sentences)]  # (word, prediction) per sentence
  rows, positions = np.nonzero(word_ids >= 0)
  for row, position in zip(rows, positions):
    found[sentence_ids[row]].append((int(word_ids[row, position]), int(predictions[row, position])))
  result = []
  for sentence, pairs in enumerate(found):
    pairs.sort()
    words = [word for word, _ in pairs]
    if words != list(range(len(words))):
      missing = sorted(set(range(max(words) + 1)) - set(words))
      repeated = sorted(word for word, count in collections.Counter(words).items() if count > 1)
      raise ValueError(f"sentence {sentence}: words {missing[:5]} are not scored and {repeated[:5]} more than once; "
                       "pass the features encode_tagged returned, unchanged")
    result.append([labels[tag] if labels is not None else tag for _, tag in pairs])
  return result

"""WordPiece tokenization of `InputExample`s into BERT's fixed-length int32 features.

Features, for n examples of max_seq_length L:
  input_ids:   int32 [n, L]  [CLS] a [SEP] (b [SEP]) then zeros ([PAD] is id 0 in BERT vocabularies)
  input_mask:  int32 [n, L]  1 for real tokens, 0 for padding
  segment_ids: int32 [n, L]  0 for [CLS] a [SEP], 1 for b [SEP], 0 for padding
  label_ids:   int32 [n]     index of the label in label_list, -1 when the example has no label
"""

import hashlib
import os
from typing import Dict, List, Sequence

import numpy as np
from tokenizers import BertWordPieceTokenizer

from tf_distill.data.processors import InputExample

FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")
NO_LABEL = -1
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]")


def truncate_pair(tokens_a: List[int], tokens_b: List[int], max_length: int) -> None:
  """Truncates in place, longest first as in BERT: pop from the longer list; from `tokens_b` on a tie."""
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


class WordPieceTokenizer:
  """BERT WordPiece tokenizer backed by the Rust `tokenizers` library; runs offline from a vocab.txt.

  Args:
    vocab_file: BERT vocabulary, one token per line.
    do_lower_case: lower-case and strip accents (uncased models) or leave text as is (cased models).
  """

  def __init__(self, vocab_file: str, do_lower_case: bool = True):
    if not os.path.isfile(vocab_file):
      raise FileNotFoundError(f"vocab_file {vocab_file!r} does not exist; pass the vocab.txt of the teacher model")
    with open(vocab_file, "rb") as f:
      content = f.read()
    self.vocab_sha256 = hashlib.sha256(content).hexdigest()
    # Token i is line i, stripped, as in BERT's `load_vocab`.
    lines = content.decode("utf-8").split("\n")
    vocab = {line.strip(): index for index, line in enumerate(lines) if line.strip()}
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
      raise ValueError(f"vocab_file {vocab_file!r} has no {missing} token(s); pass a BERT vocab.txt")
    self.vocab_file = vocab_file
    self.do_lower_case = do_lower_case
    self.cls_id = vocab["[CLS]"]
    self.sep_id = vocab["[SEP]"]
    self._tokenizer = BertWordPieceTokenizer(vocab, lowercase=do_lower_case)

  @property
  def vocab_size(self) -> int:
    return self._tokenizer.get_vocab_size()

  def tokenize(self, text: str) -> List[str]:
    """WordPiece tokens of `text`, without special tokens."""
    return self._tokenizer.encode(text, add_special_tokens=False).tokens

  def encode(self, examples: Sequence[InputExample], max_seq_length: int,
             label_list: Sequence[str]) -> Dict[str, np.ndarray]:
    """Encodes `examples` into the features described in the module docstring."""
    has_pairs = any(example.text_b is not None for example in examples)
    min_length = 3 if has_pairs else 2
    if max_seq_length < min_length:
      raise ValueError(f"max_seq_length must be >= {min_length} to fit [CLS] and [SEP]"
                       f"{' twice' if has_pairs else ''}, got {max_seq_length}")
    label_ids = {label: index for index, label in enumerate(label_list)}
    n = len(examples)
    features = {key: np.zeros([n, max_seq_length], np.int32) for key in FEATURE_KEYS}
    features["label_ids"] = np.full([n], NO_LABEL, np.int32)
    ids_a = self.encode_texts([example.text_a for example in examples])
    ids_b = self.encode_texts([example.text_b or "" for example in examples]) if has_pairs else None
    for i, example in enumerate(examples):
      if example.text_b is None:
        tokens_a, tokens_b = ids_a[i][:max_seq_length - 2], None
      else:
        tokens_a, tokens_b = list(ids_a[i]), list(ids_b[i])
        truncate_pair(tokens_a, tokens_b, max_seq_length - 3)
      ids = [self.cls_id] + tokens_a + [self.sep_id]
      segments = [0] * len(ids)
      if tokens_b is not None:
        ids += tokens_b + [self.sep_id]
        segments += [1] * (len(tokens_b) + 1)
      features["input_ids"][i, :len(ids)] = ids
      features["input_mask"][i, :len(ids)] = 1
      features["segment_ids"][i, :len(ids)] = segments
      if example.label is not None:
        if example.label not in label_ids:
          raise ValueError(f"example {example.guid!r} has label {example.label!r}, not in label_list "
                           f"{list(label_list)}; pass the task's full label list")
        features["label_ids"][i] = label_ids[example.label]
    return features

  def encode_texts(self, texts: List[str]) -> List[List[int]]:
    """WordPiece ids of each text, without special tokens."""
    return [encoding.ids for encoding in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

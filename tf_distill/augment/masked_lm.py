"""Masked-LM candidates for TinyBERT's augmentation, from a BERT with its MLM head that the user supplies.

The model is a Hugging Face-format directory (config.json, vocab.txt and TensorFlow weights: tf_model.h5 or
TensorFlow safetensors, as `TFBertForMaskedLM.save_pretrained` writes), loaded with transformers from that path only
(never from a hub). For the word at position i, TinyBERT's input is the sentence pair

    [CLS] pieces with word i's piece replaced by [MASK] [SEP] original pieces [SEP]     segments 0 ... 0 1 ... 1

cut to the model's position limit; the candidates are the top-k tokens at the mask, without WordPiece
continuations (`##x`) and special tokens (`[CLS]`, `[unused0]`, ...). A mask beyond the position limit gets none.
"""

import json
import os
from typing import Dict, List, Sequence

import numpy as np

BATCH_SIZE = 32


class MaskedLmError(ValueError):
  """The masked-LM directory cannot be used; the message says what to pass instead."""


class MaskedLmCandidates:
  """Args: model_dir: the HF-format BERT directory; k: candidates per word (before filtering)."""

  def __init__(self, model_dir: str, k: int = 15):
    from tf_distill.data.tokenization import WordPieceTokenizer  # pylint: disable=import-outside-toplevel
    if not os.path.isdir(model_dir):
      raise MaskedLmError(f"masked LM directory {model_dir!r} does not exist; pass a Hugging Face-format BERT "
                          "directory with its MLM head (config.json, vocab.txt, tf_model.h5)")
    missing = [f for f in ("config.json", "vocab.txt") if not os.path.isfile(os.path.join(model_dir, f))]
    if missing:
      raise MaskedLmError(f"masked LM directory {model_dir!r} lacks {missing}; found {sorted(os.listdir(model_dir))}")
    lower_case = True
    tokenizer_config = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.isfile(tokenizer_config):
      with open(tokenizer_config, encoding="utf-8") as f:
        lower_case = bool(json.load(f).get("do_lower_case", True))
    self.model_dir = model_dir
    self.k = k
    self.tokenizer = WordPieceTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=lower_case)
    self._vocab = self.tokenizer._tokenizer.get_vocab()  # pylint: disable=protected-access
    self._tokens = {i: t for t, i in self._vocab.items()}
    self._model = self._load(model_dir)
    self.max_length = int(self._model.config.max_position_embeddings)

  @staticmethod
  def _load(model_dir: str):
    import transformers  # pylint: disable=import-outside-toplevel
    try:
      model, info = transformers.TFBertForMaskedLM.from_pretrained(model_dir, local_files_only=True,
                                                                   output_loading_info=True)
    except (OSError, ValueError, ImportError) as e:
      raise MaskedLmError(f"cannot load a TensorFlow BERT masked LM from {model_dir!r} ({str(e).splitlines()[0]}); "
                          "it needs TensorFlow weights (tf_model.h5, e.g. from TFBertForMaskedLM.save_pretrained) "
                          "and its MLM head") from None
    missing = list(info.get("missing_keys") or [])
    if missing:  # transformers would initialise them randomly: the candidates would be noise
      raise MaskedLmError(f"{model_dir!r} lacks {len(missing)} masked-LM weights (e.g. {missing[0]}): it is a BERT "
                          "without its MLM head; pass a BERT saved with its masked-LM head (BertForMaskedLM / "
                          "BertForPreTraining), or leave out --masked_lm_dir to use embedding neighbours")
    return model

  def pieces(self, word: str) -> List[str]:
    return self.tokenizer.tokenize(word)

  def _input(self, word_pieces: List[List[str]], i: int):
    masked = [p for j, pieces in enumerate(word_pieces) for p in (["[MASK]"] if j == i else pieces)]
    original = [p for pieces in word_pieces for p in pieces]
    first = ["[CLS]"] + masked + ["[SEP]"]
    tokens = (first + original + ["[SEP]"])[:self.max_length]
    mask_position = 1 + sum(len(pieces) for pieces in word_pieces[:i])
    unk = self._vocab["[UNK]"]
    ids = [self._vocab.get(t, unk) for t in tokens]
    segments = [0] * min(len(first), len(tokens)) + [1] * max(0, len(tokens) - len(first))
    return ids, segments, mask_position

  def candidates(self, words: Sequence[str], positions: Sequence[int]) -> Dict[int, List[str]]:
    """position -> candidate words, for the single-piece words at `positions`."""
    word_pieces = [self.pieces(w) for w in words]
    inputs = {i: self._input(word_pieces, i) for i in positions}
    inputs = {i: x for i, x in inputs.items() if x[2] < self.max_length}
    result = {i: [] for i in positions}
    order = list(inputs)
    for start in range(0, len(order), BATCH_SIZE):
      batch = order[start:start + BATCH_SIZE]
      width = max(len(inputs[i][0]) for i in batch)
      ids = np.zeros([len(batch), width], np.int32)
      segments = np.zeros_like(ids)
      mask = np.zeros_like(ids)
      for row, i in enumerate(batch):
        n = len(inputs[i][0])
        ids[row, :n], segments[row, :n], mask[row, :n] = inputs[i][0], inputs[i][1], 1
      logits = self._model(input_ids=ids, token_type_ids=segments, attention_mask=mask, training=False).logits.numpy()
      for row, i in enumerate(batch):
        scores = logits[row, inputs[i][2]]
        top = np.argsort(-scores, kind="stable")[:self.k]
        tokens = [self._tokens[int(t)] for t in top]
        result[i] = [t for t in tokens if not t.startswith("##") and not (t.startswith("[") and t.endswith("]"))]
    return result

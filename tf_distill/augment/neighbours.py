"""Nearest neighbours by cosine similarity in a word-embedding space: the candidates of TinyBERT's multi-piece words
and of Tang et al.'s replacement when no part-of-speech tagger is installed.

Three sources of the space:
  `EmbeddingNeighbours(matrix, vocab)`   any float matrix [vocab_size, dim] with its token list
  `from_teacher(path)`                   the input word embeddings of a tf_distill teacher SavedModel (its
                                         `word_embeddings` variable) with its assets.extra/vocab.txt
  `from_pretrained_dir(path)`            the word embeddings of a Hugging Face-format BERT directory
  `from_glove(path)`                     a GloVe-format text file: `word v1 ... vd` per line (a word2vec text header
                                         `count dim` is accepted as the first line)

Candidates are the rows that are whole alphabetic words (WordPiece continuations `##x`, `[SPECIAL]` tokens,
numbers and punctuation are never proposed) other than the query. A word is looked up as it is, else lower-cased; one that is not in the vocab has no neighbours,
unless the space is a WordPiece vocab and a tokenizer is given: then its query vector is the mean of its pieces'
rows (so the teacher's space also serves words it splits into pieces). Title-case words get title-case candidates,
as in TinyBERT. Results are cached per word.
"""

import os
import re
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

_CANDIDATE = re.compile(r"[^\W\d_]+", re.UNICODE)


class EmbeddingsFileError(ValueError):
  """A word-vectors file is malformed; the message names the file, the 1-based line and the fix."""


class EmbeddingNeighbours:
  """The k nearest candidate words of a word by cosine similarity.

  Args:
    matrix: float [vocab_size, dim], one row per token of `vocab`.
    vocab: the tokens, row order.
    k: how many neighbours `neighbours` returns at most.
    tokenize: optional word -> WordPiece pieces (rows of `vocab`), for words that are not themselves in the vocab.
    lower_case: look words up lower-cased (uncased vocabularies).
    description: what the space is, for logs ("teacher word embeddings of ...").
  """

  def __init__(self, matrix: np.ndarray, vocab: Sequence[str], k: int = 15,
               tokenize: Optional[Callable[[str], List[str]]] = None, lower_case: bool = False,
               description: str = "word embeddings"):
    matrix = np.asarray(matrix, np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(vocab):
      raise ValueError(f"embedding matrix must be [len(vocab), dim] = [{len(vocab)}, dim], got {list(matrix.shape)}")
    if k < 1:
      raise ValueError(f"k must be >= 1, got {k}")
    self.vocab = list(vocab)
    self.index: Dict[str, int] = {}
    for i, token in enumerate(self.vocab):
      self.index.setdefault(token, i)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    self.unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    self.candidate_rows = np.array([i for i, t in enumerate(self.vocab) if _CANDIDATE.fullmatch(t)], np.int64)
    self._candidate_unit = self.unit[self.candidate_rows]  # [candidates, dim]
    self._candidate_position = {int(row): i for i, row in enumerate(self.candidate_rows)}
    self.k = k
    self.tokenize = tokenize
    self.lower_case = lower_case
    self.description = description
    self._cache: Dict[str, List[str]] = {}

  def _key(self, word: str) -> str:
    """The vocab entry of `word`: itself, else lower-cased (a cased word in an uncased space)."""
    return word if not self.lower_case and word in self.index else word.lower()

  def _query(self, word: str) -> Optional[np.ndarray]:
    key = self._key(word)
    if key in self.index:
      return self.unit[self.index[key]]
    if self.tokenize is not None:
      rows = [self.index[p] for p in self.tokenize(key) if p in self.index]
      if rows:
        return self.unit[rows].mean(axis=0)
    return None

  def neighbours(self, word: str) -> List[str]:
    """Up to k candidate words, most similar first (ties: lower row first); [] if the word has no vector."""
    if word not in self._cache:
      self.precompute([word])
    return self._cache[word]

  def precompute(self, words: Iterable[str], batch_size: int = 256) -> None:
    """Finds the neighbours of the words not cached yet, `batch_size` queries per matrix product."""
    todo = [w for w in dict.fromkeys(words) if w not in self._cache]
    queries = []
    for word in todo:
      query = self._query(word)
      if query is None or not len(self.candidate_rows):
        self._cache[word] = []
      else:
        queries.append((word, query))
    for start in range(0, len(queries), batch_size):
      chunk = queries[start:start + batch_size]
      similarity = np.stack([q for _, q in chunk]) @ self._candidate_unit.T  # [chunk, candidates]
      for (word, _), row in zip(chunk, similarity):
        self._cache[word] = self._top_k(word, row)

  def _top_k(self, word: str, similarity: np.ndarray) -> List[str]:
    own = self._candidate_position.get(self.index.get(self._key(word), -1))
    if own is not None:
      similarity[own] = -np.inf
    count = min(self.k, len(similarity))
    top = np.argpartition(-similarity, count - 1)[:count] if count < len(similarity) else np.arange(len(similarity))
    # Most similar first; ties by lower row. Rows tied with the k-th beyond `top` are not considered (measure zero).
    top = sorted(top, key=lambda i: (-similarity[i], i))
    found = [self.vocab[self.candidate_rows[i]] for i in top if np.isfinite(similarity[i])]
    return [w.title() for w in found] if word.istitle() else found


def read_vocab(path: str) -> List[str]:
  """A BERT vocab.txt: token i is line i, stripped."""
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  if lines and not lines[-1]:
    lines.pop()
  return [line.strip() for line in lines]


def from_teacher(path: str, k: int = 15, variables: Optional[Sequence] = None) -> EmbeddingNeighbours:
  """The input word embeddings of the tf_distill teacher SavedModel `path` (model dir: its latest version).
  `variables`: the model variables of that SavedModel already loaded (`SavedModelTeacher.variables`), so it is not
  loaded a second time."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tf_distill.data.tokenization import WordPieceTokenizer  # pylint: disable=import-outside-toplevel
  from tf_distill.export.serving import latest_version_dir, read_metadata  # pylint: disable=import-outside-toplevel
  from tf_distill.teacher import TeacherError  # pylint: disable=import-outside-toplevel
  version_dir = latest_version_dir(path)
  vocab_file = os.path.join(version_dir, "assets.extra", "vocab.txt")
  if not os.path.isfile(os.path.join(version_dir, "saved_model.pb")) or not os.path.isfile(vocab_file):
    raise TeacherError(f"teacher model {path!r} is not a tf_distill teacher export (no saved_model.pb or "
                       "assets.extra/vocab.txt); pass a directory written by scripts/export_teacher.sh, or "
                       "--embeddings_file=GLOVE.txt")
  if variables is None:
    loaded = tf.saved_model.load(version_dir)
    variables = loaded.model.variables if hasattr(loaded, "model") else []
  found = [v for v in variables if "word_embeddings" in v.name]
  if len(found) != 1:
    raise TeacherError(f"teacher {version_dir} has {len(found)} word-embedding variables "
                       f"({[v.name for v in found]}); expected one. Pass --embeddings_file=GLOVE.txt instead")
  matrix = found[0].numpy()
  vocab = read_vocab(vocab_file)
  lower_case = bool(read_metadata(version_dir).get("do_lower_case", True))
  if matrix.shape[0] < len(vocab):
    raise TeacherError(f"teacher {version_dir}: the word-embedding matrix has {matrix.shape[0]} rows but the vocab "
                       f"{len(vocab)} tokens")
  tokenizer = WordPieceTokenizer(vocab_file, do_lower_case=lower_case)
  return EmbeddingNeighbours(matrix[:len(vocab)], vocab, k=k, tokenize=tokenizer.tokenize, lower_case=lower_case,
                             description=f"teacher word embeddings of {version_dir}")


def from_pretrained_dir(path: str, k: int = 15) -> EmbeddingNeighbours:
  """The word embeddings of a Hugging Face-format BERT directory (model.safetensors, vocab.txt), as
  `tf_distill.pretrained` reads them; a teacher fine-tuned with --freeze_word_embeddings keeps exactly these."""
  from tf_distill import pretrained  # pylint: disable=import-outside-toplevel
  from tf_distill.data.tokenization import WordPieceTokenizer  # pylint: disable=import-outside-toplevel
  pretrained.check_pretrained_dir(path)
  matrix = pretrained.load_state_dict(path)["embeddings.word_embeddings.weight"]
  vocab_file = os.path.join(path, "vocab.txt")
  vocab = read_vocab(vocab_file)
  return EmbeddingNeighbours(matrix[:len(vocab)], vocab, k=k, tokenize=WordPieceTokenizer(vocab_file).tokenize,
                             lower_case=True, description=f"pretrained word embeddings of {path}")


def from_glove(path: str, k: int = 15, max_words: Optional[int] = None) -> EmbeddingNeighbours:
  """Reads a GloVe-format vectors file (UTF-8; first `max_words` lines only if given). Raises EmbeddingsFileError
  naming the file and line of the first malformed line."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"embeddings file {path!r} does not exist; pass a GloVe-format text file "
                            "(one `word v1 ... vd` per line)")
  words, rows, dim, seen = [], [], None, set()
  with open(path, "rb") as f:
    for number, raw in enumerate(f, start=1):
      if max_words is not None and len(words) >= max_words:
        break
      try:
        fields = raw.decode("utf-8").rstrip("\r\n").rstrip(" ").split(" ")
      except UnicodeDecodeError:
        raise EmbeddingsFileError(f"{path}, line {number}: not UTF-8; re-save the file as UTF-8") from None
      if number == 1 and len(fields) == 2 and all(x.isdigit() for x in fields):
        dim = int(fields[1])  # word2vec text header: count dim
        continue
      if fields == [""]:
        raise EmbeddingsFileError(f"{path}, line {number}: empty line; each line must be `word v1 ... vd`")
      if len(fields) < 2:
        raise EmbeddingsFileError(f"{path}, line {number}: a word without a vector; each line must be "
                                  "`word v1 ... vd`, fields separated by single spaces")
      if dim is None:
        dim = len(fields) - 1
      if len(fields) - 1 != dim:
        raise EmbeddingsFileError(f"{path}, line {number}: {len(fields) - 1} values but the vectors have {dim} "
                                  f"(fix the line; a word must not contain spaces)")
      try:
        vector = np.array([float(x) for x in fields[1:]], np.float32)
      except ValueError:
        bad = next(x for x in fields[1:] if not _is_float(x))
        raise EmbeddingsFileError(f"{path}, line {number}: {bad!r} is not a number; each line must be "
                                  "`word v1 ... vd`") from None
      if not np.all(np.isfinite(vector)):
        raise EmbeddingsFileError(f"{path}, line {number}: the vector of {fields[0]!r} has inf or nan values")
      if fields[0] in seen:
        raise EmbeddingsFileError(f"{path}, line {number}: {fields[0]!r} appears twice; keep one vector per word")
      seen.add(fields[0])
      words.append(fields[0])
      rows.append(vector)
  if not words:
    raise EmbeddingsFileError(f"{path}, line 1: no vectors in the file; pass a GloVe-format text file")
  return EmbeddingNeighbours(np.stack(rows), words, k=k, description=f"GloVe-format vectors {path}")


def _is_float(text: str) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False

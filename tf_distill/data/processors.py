"""Task processors in the style of Google BERT's `run_classifier.py`: each turns a task's data into `InputExample`s.

Tasks are registered by name in `TASKS`; `get_processor("csv", text_column="sentence", label_column="label")`.
"""

import abc
import codecs
import csv
import dataclasses
import os
import re
from typing import Dict, List, Optional, Sequence

from absl import logging

from tf_distill.data import tfds_builders
from tf_distill.registry import Registry

SPLITS = ("train", "dev", "test")
# Longest field the CSV reader accepts (Python's csv default is 131072 characters, less than some long documents).
# A longer field is almost always a quote that is never closed, swallowing the rest of the file.
MAX_FIELD_CHARS = 2**24


@dataclasses.dataclass(frozen=True)
class InputExample:
  """One example: `text_b` is None for single-sentence tasks and `label` is None when unknown (test data)."""
  guid: str
  text_a: str
  text_b: Optional[str] = None
  label: Optional[str] = None


class DataError(ValueError):
  """The data on disk is malformed; the message names the file, the 1-based line and how to fix it."""


class DataProcessor(abc.ABC):
  """Reads the train/dev/test examples and the label list of one task."""

  @abc.abstractmethod
  def get_train_examples(self, data_dir: Optional[str]) -> List[InputExample]:
    """Examples of the training split."""

  @abc.abstractmethod
  def get_dev_examples(self, data_dir: Optional[str]) -> List[InputExample]:
    """Examples of the development (validation) split."""

  @abc.abstractmethod
  def get_test_examples(self, data_dir: Optional[str]) -> List[InputExample]:
    """Examples of the test split; labels may be None."""

  @abc.abstractmethod
  def get_labels(self) -> List[str]:
    """Label names; a label's id is its index in this list."""

  def get_examples(self, split: str, data_dir: Optional[str]) -> List[InputExample]:
    """Examples of `split`, one of "train", "dev", "test"."""
    readers = {"train": self.get_train_examples, "dev": self.get_dev_examples, "test": self.get_test_examples}
    if split not in readers:
      raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return readers[split](data_dir)


TASKS: Registry = Registry("task")


@TASKS.register("csv")
class CsvProcessor(DataProcessor):
  """Reads `train`, `dev` and `test` files from `data_dir`, each either `.csv` or `.tsv`, with a header row.

  Columns are found by header name. The test file may lack the label column (labels are then None), and an
  empty label in the test file means "unknown". `.tsv` files are read without quoting, as BERT does; `.csv`
  files use standard CSV quoting. Files must be UTF-8 (a UTF-8 byte-order mark is fine).

  Blank lines (empty, or only spaces and tabs without a delimiter) are skipped: `skipped_blank_lines` maps each
  file read to how many, and the count is logged. Every other problem raises `DataError` naming the file and the
  1-based line: wrong field counts, unbalanced quotes, bytes that are not UTF-8 (UTF-16 files included), NUL bytes,
  fields over `MAX_FIELD_CHARS` characters, empty texts or labels, a wanted column missing or named twice in the
  header, and labels outside the label list.

  Args:
    text_column: header name of the text.
    label_column: header name of the label.
    text_b_column: header name of the second text of a sentence-pair task, or None.
    labels: the label list; None infers it (sorted) from the train file the first time any split is read.
    delimiter: field delimiter; None infers it from the extension (`,` for .csv, tab for .tsv).
  """

  def __init__(self, text_column: str, label_column: str, text_b_column: Optional[str] = None,
               labels: Optional[Sequence[str]] = None, delimiter: Optional[str] = None):
    if labels is not None:
      labels = list(labels)
      if not labels or not all(isinstance(label, str) and label for label in labels):
        raise ValueError(f"labels must be a non-empty list of non-empty strings, got {labels!r}")
      if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique, got {labels!r}")
    if delimiter is not None and len(delimiter) != 1:
      raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    self.text_column = text_column
    self.text_b_column = text_b_column
    self.label_column = label_column
    self.delimiter = delimiter
    self._labels = labels
    self.skipped_blank_lines: Dict[str, int] = {}

  def get_train_examples(self, data_dir: str) -> List[InputExample]:
    return self._read_split(data_dir, "train")

  def get_dev_examples(self, data_dir: str) -> List[InputExample]:
    return self._read_split(data_dir, "dev")

  def get_test_examples(self, data_dir: str) -> List[InputExample]:
    return self._read_split(data_dir, "test")

  def get_labels(self) -> List[str]:
    if self._labels is None:
      raise ValueError("the label list is inferred from the train file: call get_train_examples(data_dir) "
                       "first, or pass labels=[...] to CsvProcessor")
    return list(self._labels)

  def _read_split(self, data_dir: str, split: str) -> List[InputExample]:
    if self._labels is None and split != "train":
      self._read_split(data_dir, "train")  # Infers the label list.
    path = find_split_file(data_dir, split)
    rows = self.read_rows(path, split)
    if self._labels is None:
      self._labels = sorted({label for _, _, _, label in rows})
    else:
      for line, _, _, label in rows:
        if label is not None and label not in self._labels:
          raise DataError(f"{path}, line {line}: unknown label {label!r}; known labels: {self._labels}. "
                          "Fix the label, or list every label with --labels (DataConfig.labels in the API).")
    return [InputExample(guid=f"{split}-{line}", text_a=text_a, text_b=text_b, label=label)
            for line, text_a, text_b, label in rows]

  def read_rows(self, path: str, split: str):
    """Returns [(line, text_a, text_b, label)] with 1-based line numbers of where each row starts."""
    delimiter = self.delimiter or ("\t" if path.endswith(".tsv") else ",")
    quoting = csv.QUOTE_NONE if path.endswith(".tsv") else csv.QUOTE_MINIMAL
    rows, blank_lines = [], 0
    field_size_limit = csv.field_size_limit(MAX_FIELD_CHARS)
    try:
      with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting, strict=True)
        line = 1
        try:
          header = next(reader, None)
          if not header:
            raise DataError(f"{path}, line 1: no header row (the file is empty or starts with a blank line); "
                            "the first line must name the columns")
          check_nul(path, 1, header)
          columns = self._column_indices(path, header, split)
          line = reader.line_num + 1
          for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):  # csv yields [] for an empty line.
              blank_lines += 1
            else:
              check_nul(path, line, row)
              rows.append(self._parse_row(path, line, row, header, columns, split))
            line = reader.line_num + 1
        except csv.Error as e:
          if "field larger than field limit" in str(e):
            raise DataError(f"{path}, line {line}: a field is longer than {MAX_FIELD_CHARS} characters; usually a "
                            "quote opened on this line is never closed. Fix the quoting") from e
          raise DataError(f"{path}, line {line}: malformed {delimiter!r}-delimited row ({e}); fix the quoting") from e
    except UnicodeDecodeError as e:
      raise not_utf8_error(path) from e
    finally:
      csv.field_size_limit(field_size_limit)
    self.skipped_blank_lines[path] = blank_lines
    if blank_lines:
      logging.info("%s: skipped %d blank line(s)", path, blank_lines)
    if not rows:
      raise DataError(f"{path}, line 2: no examples after the header row; the {split} split must not be empty")
    return rows

  def _column_indices(self, path: str, header: List[str], split: str) -> Dict[str, Optional[int]]:
    wanted = {"text_a": self.text_column, "text_b": self.text_b_column, "label": self.label_column}
    columns = {}
    for role, name in wanted.items():
      if name is None or (role == "label" and split == "test" and name not in header):
        columns[role] = None
      elif header.count(name) > 1:
        raise DataError(f"{path}, line 1: column {name!r} appears {header.count(name)} times in the header "
                        f"{header}; rename all but one")
      elif name in header:
        columns[role] = header.index(name)
      else:
        raise DataError(f"{path}, line 1: no column {name!r} in the header {header}; "
                        f"rename the column or pass the right {role.replace('text_a', 'text')}_column")
    return columns

  def _parse_row(self, path: str, line: int, row: List[str], header: List[str],
                 columns: Dict[str, Optional[int]], split: str):
    if len(row) != len(header):
      raise DataError(f"{path}, line {line}: {len(row)} fields but the header has {len(header)} ({header}); "
                      "fix the row (quote fields that contain the delimiter)")
    values = {role: (row[index] if index is not None else None) for role, index in columns.items()}
    for role in ("text_a", "text_b"):
      if columns[role] is not None and not values[role].strip():
        raise DataError(f"{path}, line {line}: empty text in column {header[columns[role]]!r}; "
                        "fill it in or delete the row")
    label = values["label"]
    if label is not None and not label.strip():
      if split != "test":
        raise DataError(f"{path}, line {line}: empty label in column {self.label_column!r}; "
                        "fill it in or delete the row")
      label = None
    return line, values["text_a"], values["text_b"], label


def _nul_error(path: str, line: int) -> DataError:
  return DataError(f"{path}, line {line}: contains a NUL byte; the file is binary or UTF-16/UTF-32 encoded. "
                   "Re-save it as UTF-8 text")


def check_nul(path: str, line: int, row: List[str]) -> None:
  if any("\x00" in field for field in row):
    raise _nul_error(path, line)


def not_utf8_error(path: str) -> DataError:
  """A DataError naming the line of the first byte that is not UTF-8 (the decoder reads ahead in chunks, so the
  reader's own line count would point too early), or of the first NUL byte of a UTF-16/UTF-32 file."""
  with open(path, "rb") as f:
    content = f.read()
  if content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
    return DataError(f"{path}, line 1: the file is UTF-16 or UTF-32 (it starts with the byte-order mark "
                     f"{content[:2]!r}); re-save it as UTF-8")
  # Lines end as the csv reader counts them; these bytes never occur inside a UTF-8 multi-byte character.
  lines = re.split(rb"\r\n|\r|\n", content)
  if b"\x00" in content:
    return _nul_error(path, next(i + 1 for i, raw in enumerate(lines) if b"\x00" in raw))
  for index, raw in enumerate(lines):
    try:
      raw.decode("utf-8")
    except UnicodeDecodeError as e:
      return DataError(f"{path}, line {index + 1}: not UTF-8 (byte {raw[e.start:e.start + 1]!r} at byte "
                       f"{e.start + 1} of the line); re-save the file as UTF-8")
  return DataError(f"{path}, line 1: not UTF-8; re-save the file as UTF-8")


def find_split_file(data_dir: str, split: str) -> str:
  """Returns `data_dir/<split>.csv` or `.tsv`, whichever exists; DataError if neither or both do."""
  if not os.path.isdir(data_dir):
    raise DataError(f"data_dir {data_dir!r} is not a directory; pass the directory that holds "
                    f"{split}.csv or {split}.tsv")
  found = [os.path.join(data_dir, split + ext) for ext in (".csv", ".tsv")
           if os.path.isfile(os.path.join(data_dir, split + ext))]
  if not found:
    raise DataError(f"no {split}.csv or {split}.tsv in {data_dir}; it contains: {sorted(os.listdir(data_dir))}")
  if len(found) > 1:
    raise DataError(f"both {found[0]} and {found[1]} exist; keep only one {split} file")
  return found[0]


class TfdsProcessor(DataProcessor):
  """Reads a task from a TFDS builder in `tfds_builders`, preparing it offline on first use.

  Args:
    tfds_data_dir: where TFDS keeps prepared data; None means tfds's default (`$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`). The `data_dir` passed to `get_*_examples` is not used.
  """

  builder_cls = None  # A builder from tfds_builders, with LABELS.
  _TFDS_SPLITS = {"train": "train", "dev": "validation", "test": "test"}

  def __init__(self, tfds_data_dir: Optional[str] = None):
    self.tfds_data_dir = os.path.expanduser(tfds_data_dir) if tfds_data_dir else None
    self._builder = None

  def get_train_examples(self, data_dir: Optional[str] = None) -> List[InputExample]:
    return self._read_split("train")

  def get_dev_examples(self, data_dir: Optional[str] = None) -> List[InputExample]:
    return self._read_split("dev")

  def get_test_examples(self, data_dir: Optional[str] = None) -> List[InputExample]:
    return self._read_split("test")

  def get_labels(self) -> List[str]:
    return list(self.builder_cls.LABELS)

  def builder(self):
    if self._builder is None:
      self._builder = tfds_builders.prepare(self.builder_cls, self.tfds_data_dir)
    return self._builder

  def _read_split(self, split: str) -> List[InputExample]:
    dataset = self.builder().as_dataset(split=self._TFDS_SPLITS[split], shuffle_files=False)
    examples = []
    for batch in dataset.batch(4096).as_numpy_iterator():
      for text, label, key in zip(batch["text"], batch["label"], batch[self.builder_cls.KEY_FEATURE]):
        examples.append(InputExample(guid=f"{split}-{len(examples)}-{key.decode('utf-8')}",
                                     text_a=text.decode("utf-8"), label=self.builder_cls.LABELS[label]))
    return examples


@TASKS.register("rotten_tomatoes")
class RottenTomatoesProcessor(TfdsProcessor):
  """Rotten Tomatoes snippets, labels ["rotten", "fresh"]; splits by movie."""
  builder_cls = tfds_builders.RottenTomatoes


@TASKS.register("bbc_news")
class BbcNewsProcessor(TfdsProcessor):
  """BBC News articles in 5 topics, deduplicated."""
  builder_cls = tfds_builders.BbcNews


def get_processor(task_name: str, **kwargs) -> DataProcessor:
  """Builds the processor registered as `task_name` with constructor `kwargs`."""
  return TASKS.get(task_name)(**kwargs)


def processor_for(config) -> DataProcessor:
  """The processor of a `configs.DataConfig`: its CSV columns and labels, or its TFDS data directory."""
  if config.task_name == "csv":
    return get_processor("csv", text_column=config.text_column, label_column=config.label_column,
                         text_b_column=config.text_b_column, labels=list(config.labels) if config.labels else None)
  return get_processor(config.task_name, **({"tfds_data_dir": config.tfds_data_dir} if config.tfds_data_dir else {}))

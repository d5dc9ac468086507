"""CoNLL column files of tagged words (NER): the reader, BIO / IOB2 tag checks and the tag list.

The format, as in the CoNLL-2003 and WNUT-17 files:
  - one word per line, its columns separated by tabs or by spaces; the word is column 0, its tag is `label_column`
    (default -1, the last column), so `EU NNP B-NP B-ORG` and `EU\\tB-ORG` both read as ("EU", "B-ORG");
  - a blank line (empty, or only spaces and tabs) between sentences; `-DOCSTART-` lines are skipped and end the
    sentence they interrupt;
  - UTF-8 text (a byte-order mark is fine), plain or gzip-compressed (found by its magic bytes, not the name).
A tab-separated line is split at tabs only (a word may contain spaces), any other line at runs of spaces. Lines end
at `\\n` (a `\\r` before it is dropped), never at the other characters `str.splitlines` splits at (U+2028, U+0085,
...), which occur inside tweets.

Tags are IOB2: `O`, `B-TYPE` or `I-TYPE` with a non-empty TYPE (types may contain `-`, e.g. `B-creative-work`).
An `I-TYPE` after `O` or after another type is kept as it is: the entity metric reads it as the start of an entity,
as conlleval does (`tf_distill.entity_metrics`). What is rejected is a tag no label list can hold: an I- tag whose
type no B- tag in the file names (or, given `labels`, a tag not in them).

The tag list (`tag_list`) is `O` first, then `B-TYPE`, `I-TYPE` per type, types sorted:
  ["O", "B-location", "I-location", "B-person", "I-person"].
A tag's id is its index in the list.

Every problem raises `ConllError` (a ValueError) with one line: the file, the 1-based line and the fix.
"""

import dataclasses
import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

from tf_distill.data.raw_files import read_bytes

OUTSIDE = "O"
DOCSTART = "-DOCSTART-"
_BLANK = " \t\r\f\v"  # ASCII whitespace only: a word may be U+00A0 or U+3000, which str.strip() would eat.
_SPACES = re.compile(r"[ \f\v]+")


class ConllError(ValueError):
  """A CoNLL file or tag list is malformed; the message names the file, the 1-based line and how to fix it."""


@dataclasses.dataclass(frozen=True)
class TaggedSentence:
  """One sentence: `words[i]` is tagged `tags[i]`; `line` is the 1-based line of its first word in the file."""
  words: Tuple[str, ...]
  tags: Tuple[str, ...]
  line: int = 0


def split_tag(tag: str) -> Tuple[str, Optional[str]]:
  """("O", None), ("B", TYPE) or ("I", TYPE); ValueError for any other shape."""
  if tag == OUTSIDE:
    return OUTSIDE, None
  if len(tag) > 2 and tag[:2] in ("B-", "I-") and not any(c.isspace() for c in tag):
    return tag[0], tag[2:]
  raise ValueError(f"tag {tag!r} is not IOB2; tags are 'O', 'B-TYPE' or 'I-TYPE'")


def tag_list(types: Iterable[str]) -> List[str]:
  """["O", "B-t1", "I-t1", "B-t2", "I-t2", ...] for the entity types, sorted."""
  tags = [OUTSIDE]
  for entity_type in sorted(set(types)):
    tags += [f"B-{entity_type}", f"I-{entity_type}"]
  return tags


def tags_of(sentences: Sequence[TaggedSentence]) -> List[str]:
  """The tag list (`tag_list`) of every type tagged in `sentences`, by a B- or an I- tag."""
  return tag_list(split_tag(tag)[1] for sentence in sentences for tag in sentence.tags if tag != OUTSIDE)


def check_labels(labels: Sequence[str]) -> List[str]:
  """Returns `labels` as a list after checking each is an IOB2 tag and none repeats; ConllError otherwise."""
  labels = list(labels)
  if not labels:
    raise ConllError("labels is empty; list the tags, e.g. --labels=O,B-PER,I-PER, or leave it unset to read them "
                     "from the training file")
  for label in labels:
    try:
      split_tag(label)
    except ValueError as e:
      raise ConllError(f"labels: {e}. Fix --labels (DataConfig.labels in the API)") from None
  repeated = sorted({label for label in labels if labels.count(label) > 1})
  if repeated:
    raise ConllError(f"labels: {repeated} listed more than once; list each tag once in --labels")
  return labels


def tag_ids(sentences: Sequence[TaggedSentence], labels: Sequence[str]) -> List[List[int]]:
  """Each sentence's tags as indices into `labels`; ConllError naming the sentence's line for a tag not in them."""
  index = {label: i for i, label in enumerate(labels)}
  ids = []
  for sentence in sentences:
    missing = [tag for tag in sentence.tags if tag not in index]
    if missing:
      raise ConllError(f"sentence at line {sentence.line}: tag {missing[0]!r} is not in the label list {list(labels)}; "
                       "add it to --labels")
    ids.append([index[tag] for tag in sentence.tags])
  return ids


def read_conll(path: str, label_column: int = -1, labels: Optional[Sequence[str]] = None) -> List[TaggedSentence]:
  """Reads the tagged sentences of a CoNLL file (module docstring), plain or gzipped.

  Args:
    path: the file.
    label_column: index of the tag column (negative counts from the end); the word is column 0. Every line must
      have as many columns as the file's first word line.
    labels: the known tags (`--labels`, or the list read from the training file when reading dev and test); a tag
      not in them is an error. None accepts every IOB2 tag whose type a B- tag in this file names.

  Returns:
    The sentences in file order, none empty.

  Raises:
    ConllError: for a line with a wrong column count, an empty word or tag, a tag that is not IOB2, an I- tag of an
      unknown type, a tag not in `labels`, bytes that are not UTF-8, a NUL byte, or a file without sentences.
  """
  if labels is not None:
    labels = check_labels(labels)
  lines = _read_lines(path)
  sentences, words, tags, first_line = [], [], [], 0
  num_columns = tag_index = None
  for number, line in enumerate(lines, start=1):
    stripped = line.strip(_BLANK)
    fields = ([field.strip(_BLANK) for field in stripped.split("\t")] if "\t" in stripped
              else _SPACES.split(stripped))
    if not stripped or fields[0] == DOCSTART:
      if words:
        sentences.append(TaggedSentence(tuple(words), tuple(tags), first_line))
      words, tags = [], []
      continue
    if num_columns is None:
      num_columns, tag_index = len(fields), _tag_index(path, number, len(fields), label_column)
    elif len(fields) != num_columns:
      raise ConllError(f"{path}, line {number}: {len(fields)} column(s) but the file's first word line has "
                       f"{num_columns}; every line needs the same columns (word ... tag), a blank line ends a sentence")
    word, tag = fields[0], fields[tag_index]
    if not word:
      raise ConllError(f"{path}, line {number}: empty word in column 0; fill it in or delete the line")
    if not tag:
      raise ConllError(f"{path}, line {number}: missing tag in column {tag_index}; tag the word ('O' if it is in no "
                       "entity)")
    try:
      split_tag(tag)
    except ValueError as e:
      raise ConllError(f"{path}, line {number}: {e}; fix the tag"
                       f"{'' if label_column == -1 else ' or --label_column'}") from None
    if not words:
      first_line = number
    words.append(word)
    tags.append(tag)
  if words:
    sentences.append(TaggedSentence(tuple(words), tuple(tags), first_line))
  if not sentences:
    raise ConllError(f"{path}, line 1: no tagged words; a CoNLL file has one word and its tag per line")
  _check_tags(path, sentences, labels)
  return sentences


SPLIT_FILE_EXTENSIONS = ("", ".conll", ".txt", ".tsv", ".conll.gz", ".txt.gz", ".tsv.gz")


def find_split_file(data_dir: str, split: str) -> str:
  """`data_dir/<split>` with one of `SPLIT_FILE_EXTENSIONS` (train.conll, dev.txt, test.tsv.gz, ...); ConllError
  when there is none or more than one."""
  if not os.path.isdir(data_dir):
    raise ConllError(f"data_dir {data_dir!r} is not a directory; pass the directory that holds the train, dev and "
                     "test CoNLL files")
  found = [os.path.join(data_dir, split + ext) for ext in SPLIT_FILE_EXTENSIONS
           if os.path.isfile(os.path.join(data_dir, split + ext))]
  if not found:
    raise ConllError(f"no {split} file ({', '.join(split + ext for ext in SPLIT_FILE_EXTENSIONS if ext)}) in "
                     f"{data_dir}; it contains: {sorted(os.listdir(data_dir))}")
  if len(found) > 1:
    raise ConllError(f"{' and '.join(found)} all exist; keep only one {split} file")
  return found[0]


def _tag_index(path: str, line: int, num_columns: int, label_column: int) -> int:
  if num_columns < 2:
    raise ConllError(f"{path}, line {line}: 1 column; a CoNLL line needs the word and its tag, separated by a tab or "
                     "spaces")
  if not -num_columns <= label_column < num_columns or label_column % num_columns == 0:
    raise ConllError(f"{path}, line {line}: label_column {label_column} does not name a tag column of the file's "
                     f"{num_columns} columns (column 0 is the word); pass --label_column between 1 and "
                     f"{num_columns - 1}, or -1 for the last")
  return label_column % num_columns


def _check_tags(path: str, sentences: List[TaggedSentence], labels: Optional[List[str]]) -> None:
  """Raises for the first tag no label list can hold: with `labels`, a tag not in them; without, an I- tag whose
  type no B- tag in the file names. Lines are found from each sentence's first line (its words are consecutive)."""
  if labels is None:
    types = sorted({tag[2:] for sentence in sentences for tag in sentence.tags if tag.startswith("B-")})
    source = "no B- tag in this file names"
  else:
    types = sorted({split_tag(label)[1] for label in labels if label != OUTSIDE})
    source = "the label list (from the training file or --labels) does not name"
  known_types, known_tags = set(types), None if labels is None else set(labels)
  for sentence in sentences:
    for offset, tag in enumerate(sentence.tags):
      unknown_type = tag.startswith("I-") and tag[2:] not in known_types
      if not unknown_type and (known_tags is None or tag in known_tags):
        continue
      where = f"{path}, line {sentence.line + offset}"
      if unknown_type:
        raise ConllError(f"{where}: tag {tag!r} has a type {source}; known types: {types}. Fix the tag or list it "
                         "with --labels")
      raise ConllError(f"{where}: tag {tag!r} is not in the label list (from the training file or --labels) "
                       f"{labels}; fix the tag or add it to --labels")


def _read_lines(path: str) -> List[str]:
  content = read_bytes(path, ConllError, "a CoNLL file (one word and its tag per line)")
  if content.startswith(b"\xef\xbb\xbf"):
    content = content[3:]
  if content.startswith((b"\xff\xfe", b"\xfe\xff")):
    raise ConllError(f"{path}, line 1: the file is UTF-16 or UTF-32 (it starts with a byte-order mark); re-save it "
                     "as UTF-8")
  lines = []
  for number, raw in enumerate(content.split(b"\n"), start=1):
    if b"\x00" in raw:
      raise ConllError(f"{path}, line {number}: contains a NUL byte; the file is binary or UTF-16/UTF-32 encoded. "
                       "Re-save it as UTF-8 text")
    try:
      lines.append(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
      raise ConllError(f"{path}, line {number}: not UTF-8 (byte {raw[e.start:e.start + 1]!r} at byte {e.start + 1} "
                       "of the line); re-save the file as UTF-8") from None
  return lines

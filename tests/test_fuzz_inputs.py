"""Fuzzes what users feed the programs: CSV/TSV files through CsvProcessor (and on into the tokenizer), and the
numeric and list flags through the real absl parsing and the flags -> config functions.

Every input must end one of three ways: read correctly, a DataError (flags: an absl flags.Error or a ValueError)
that names the file and a line that exists, or a documented skip that is counted (blank lines). Any other
exception fails the test.
"""

import codecs
import csv
import functools
import io
import os
import re
import tempfile
import unittest
from unittest import mock

import tf_distill  # pylint: disable=unused-import  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

from absl import flags
from absl.testing import parameterized
from hypothesis import HealthCheck, assume, given, settings, strategies as st
import tensorflow as tf

from tf_distill.cli import common
from tf_distill.data import processors
from tf_distill.data.processors import CsvProcessor, DataError
from tf_distill.data.tokenization import WordPieceTokenizer

import tiny

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Byte chunks that make CSV files interesting: delimiters, quotes, all line endings, blank and whitespace lines,
# BOMs, NUL, latin-1 and broken UTF-8, and valid multi-byte UTF-8.
CHUNKS = [b"text", b"label", b"pos", b"neg", b"good film", b",", b"\t", b";", b'"', b'""', b"\n", b"\r\n", b"\r",
          b" ", b"  \n", b"\n\n", b"\x00", b"\xe9", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3", "é€😀".encode(),
          b"a" * 50, b"x,y,z"]


ROWS = st.tuples(st.sampled_from([b"good film", b"bad", "\u00e9\u20ac\U0001f600".encode(), b'"quoted, text"',
                                  b'"two\nlines"', b'"never closed', b"  ", b"", b"a" * 60]),
                 st.sampled_from([b"pos", b"neg", b" pos", b"", b"pos,extra"])).map(b",".join)


def _write(directory, name, content: bytes):
  path = os.path.join(directory, name)
  with open(path, "wb") as f:
    f.write(content)
  return path


def _count_lines(content: bytes) -> int:
  return len(LINE_BREAK.split(content.decode("latin-1")))


class CsvFuzzTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tokenizer = WordPieceTokenizer(tiny.write_vocab(os.path.join(tempfile.mkdtemp(), "vocab.txt")))

  def read(self, directory, split, **kwargs):
    """Examples of `split`, or the DataError; the DataError must name the split's file and a line that exists."""
    processor = CsvProcessor(text_column="text", label_column="label", **kwargs)
    try:
      examples = processor.get_examples(split, directory)
    except DataError as e:
      match = re.match(r"^(.+?), line (\d+): \S", str(e))
      self.assertIsNotNone(match, f"DataError without '<file>, line <n>: ': {e}")
      path = match.group(1)
      self.assertTrue(os.path.isfile(path), str(e))
      with open(path, "rb") as f:
        self.assertBetween(int(match.group(2)), 1, _count_lines(f.read()) + 1, str(e))
      return processor, e
    # Whatever was read can be tokenised.
    self.tokenizer.encode(examples, 16, processor.get_labels())
    return processor, examples

  @settings(max_examples=250, **SETTINGS)
  @given(st.lists(st.one_of(ROWS, ROWS, ROWS, ROWS, st.lists(st.sampled_from(CHUNKS), max_size=4).map(b"".join)),
                  max_size=8),
         st.sampled_from([b"\n", b"\r\n", b"\r"]), st.booleans())
  def test_arbitrary_files(self, lines, line_end, tsv):
    """A header, then mostly well-formed rows mixed with byte soup: malformed rows, bad encodings, NUL, blank
    lines, unbalanced quotes, broken headers (a soup line may join the header when line endings mix)."""
    if tsv:
      lines = [line.replace(b",", b"\t") for line in lines]
    content = line_end.join([b"text\tlabel" if tsv else b"text,label"] + lines)
    with tempfile.TemporaryDirectory() as directory:
      _write(directory, "train.tsv" if tsv else "train.csv", content)
      _, result = self.read(directory, "train")
      if not isinstance(result, DataError):
        for example in result:
          self.assertTrue(example.text_a.strip() and example.label.strip(), example)
          self.assertNotIn("\x00", example.text_a)

  @settings(max_examples=100, **SETTINGS)
  @given(st.lists(st.tuples(st.text(min_size=1, max_size=20).filter(lambda t: t.strip() and "\x00" not in t),
                            st.sampled_from(["pos", "neg", "mixed feelings"]),
                            st.integers(0, 2)), min_size=1, max_size=8),
         st.sampled_from(["utf-8", "utf-8-sig"]))
  def test_quoted_csv_round_trips_and_counts_blank_lines(self, rows, encoding):
    """Rows written by csv.writer, with blank lines in between, read back exactly, with the right line numbers."""
    out, line, expected, blank = io.StringIO(), 2, [], 0
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    for text, label, blank_after in rows:
      start = out.tell()
      writer.writerow([text, label])
      expected.append((f"train-{line}", text, label))
      line += len(LINE_BREAK.findall(out.getvalue()[start:]))
      out.write("\r\n" * blank_after)
      line, blank = line + blank_after, blank + blank_after
    with tempfile.TemporaryDirectory() as directory:
      path = _write(directory, "train.csv", out.getvalue().encode(encoding))
      processor, examples = self.read(directory, "train")
      self.assertNotIsInstance(examples, DataError)
      self.assertEqual([(e.guid, e.text_a, e.label) for e in examples], expected)
      self.assertEqual(processor.skipped_blank_lines, {path: blank})

  @settings(max_examples=60, **SETTINGS)
  @given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=5),
         st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=5))
  def test_dev_labels_must_be_train_labels(self, train_labels, dev_labels):
    with tempfile.TemporaryDirectory() as directory:
      _write(directory, "train.csv",
             ("text,label\n" + "".join(f"film {i},{label}\n" for i, label in enumerate(train_labels))).encode())
      dev = _write(directory, "dev.csv",
                   ("text,label\n" + "".join(f"movie,{label}\n" for label in dev_labels)).encode())
      _, result = self.read(directory, "dev")
      unknown = [i for i, label in enumerate(dev_labels) if label not in train_labels]
      if unknown:
        self.assertIsInstance(result, DataError)
        self.assertStartsWith(str(result), f"{dev}, line {unknown[0] + 2}: unknown label "
                                           f"{dev_labels[unknown[0]]!r}; known labels: {sorted(set(train_labels))}")
      else:
        self.assertEqual([e.label for e in result], dev_labels)

  @parameterized.named_parameters(
      ("latin1", lambda text: text.encode("latin-1"), 4, r"not UTF-8 \(byte b'\\xe9' at byte 4 of the line\)"),
      ("cp1252_quotes", lambda text: text.replace("é", "\u201c").encode("cp1252"), 4, "not UTF-8"),
      ("utf16", lambda text: text.encode("utf-16"), 1, "the file is UTF-16 or UTF-32"),
      ("utf16_be_no_bom", lambda text: text.encode("utf-16-be"), 1, "contains a NUL byte"),
      ("utf32", lambda text: text.encode("utf-32"), 1, "the file is UTF-16 or UTF-32"),
  )
  def test_wrong_encodings(self, encode, line, message):
    # 200 lines before the bad one: the UTF-8 decoder reads ahead, the line must still be the right one.
    text = "text,label\n" + "ok,pos\n" * 2 + "café,neg\n" + "".join(f"row {i},pos\n" for i in range(200))
    with tempfile.TemporaryDirectory() as directory:
      path = _write(directory, "train.csv", encode(text))
      _, error = self.read(directory, "train")
      self.assertIsInstance(error, DataError)
      self.assertRegex(str(error), f"^{re.escape(path)}, line {line}: {message}")
      self.assertIn("UTF-8", str(error))

  def test_utf8_bom_is_fine(self):
    with tempfile.TemporaryDirectory() as directory:
      _write(directory, "train.csv", codecs.BOM_UTF8 + "text,label\ncafé,pos\n".encode())
      self.assertEqual([e.text_a for e in self.read(directory, "train")[1]], ["café"])

  def test_nul_byte_names_its_line(self):
    with tempfile.TemporaryDirectory() as directory:
      path = _write(directory, "train.tsv", b"text\tlabel\nok\tpos\nbad\x00film\tneg\n")
      self.assertStartsWith(str(self.read(directory, "train")[1]), f"{path}, line 3: contains a NUL byte")

  def test_long_fields(self):
    with tempfile.TemporaryDirectory() as directory:
      # Longer than Python's csv default limit (131072) is fine ...
      _write(directory, "train.csv", b"text,label\n" + b"word " * 40000 + b",pos\nok,neg\n")
      self.assertLen(self.read(directory, "train")[1], 2)
      # ... but a field over MAX_FIELD_CHARS, typically from a quote never closed, is named.
      with mock.patch.object(processors, "MAX_FIELD_CHARS", 1000):
        path = _write(directory, "train.csv", b'text,label\nok,pos\n"never closed,neg\n' + b"more,pos\n" * 200)
        error = self.read(directory, "train")[1]
      self.assertStartsWith(str(error), f"{path}, line 3: a field is longer than 1000 characters; usually a quote "
                                        "opened on this line is never closed")
      self.assertEqual(csv.field_size_limit(), 131072)  # the global limit is restored

  def test_duplicate_header_column(self):
    with tempfile.TemporaryDirectory() as directory:
      path = _write(directory, "train.csv", b"label,text,text\npos,a,b\n")
      self.assertEqual(str(self.read(directory, "train")[1]),
                       f"{path}, line 1: column 'text' appears 2 times in the header ['label', 'text', 'text']; "
                       "rename all but one")

  def test_whitespace_lines_are_skipped_and_counted(self):
    with tempfile.TemporaryDirectory() as directory:
      path = _write(directory, "train.csv", b"text,label\n  \ngood,pos\n\n \t \nbad,neg\n\n")
      processor, examples = self.read(directory, "train")
      self.assertEqual([(e.guid, e.text_a) for e in examples], [("train-3", "good"), ("train-6", "bad")])
      self.assertEqual(processor.skipped_blank_lines, {path: 4})


def _fresh_flag_values():
  """The flags of common.define_data/train/student_flags, defined in a new FlagValues (not the global FLAGS)."""
  flag_values = flags.FlagValues()
  patches = [mock.patch.object(flags, name, functools.partial(getattr(flags, name), flag_values=flag_values))
             for name in dir(flags) if name.startswith("DEFINE")]
  for patch in patches:
    patch.start()
  try:
    common.define_data_flags()
    common.define_train_flags("runs/fuzz", default_learning_rate=1e-4, default_epochs=3)
    common.define_student_flags()
  finally:
    for patch in patches:
      patch.stop()
  return flag_values


# Finite numbers and malformed ones; nan and inf are in test_non_finite_numbers_are_rejected.
NUMBERS = st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["", " ", "-0", "0x10", "1_000", "3.", ".5", "1,2", "one", "2 ", "\u0662"]))
NUMERIC_FLAGS = ["max_seq_length", "train_batch_size", "eval_batch_size", "learning_rate", "num_train_epochs",
                 "warmup_proportion", "weight_decay", "seed", "max_train_examples", "save_every_steps", "temperature",
                 "alpha", "student_num_layers", "student_hidden_size", "student_num_heads",
                 "student_intermediate_size"]
LIST_VALUES = st.lists(st.one_of(NUMBERS, st.sampled_from(["neg", "pos", "neg", " "])), max_size=5).map(",".join)
SCHEDULES = st.one_of(st.sampled_from(["constant", "linear:", "linear:x", "flsw::", "cwsm:1:2:3", "linear:nan"]),
                      st.tuples(st.sampled_from(["linear", "flsw", "cwsm", "constant", "stage"]),
                                st.lists(NUMBERS, max_size=3)).map(lambda t: ":".join([t[0], *t[1]])))
STAGES = st.lists(st.tuples(st.sampled_from(["intermediate", "prediction", "progressive", "x", ""]), NUMBERS).map(
    ":".join), max_size=3).map(",".join)


class FlagFuzzTest(tf.test.TestCase):

  def parse(self, argv):
    """Parses argv with fresh flags and builds the configs; returns the configs, or the clean error."""
    flag_values = _fresh_flag_values()
    try:
      flag_values(["prog", "--task_name=csv", "--data_dir=/data", "--teacher_model=export/teacher"] + argv)
    except flags.Error as e:  # absl prints "FATAL Flags parsing error: ..." and exits 1
      return e
    try:
      return (common.data_config_from_flags(flag_values), common.train_config_from_flags(flag_values),
              common.student_config_from_flags(flag_values), common.distill_config_from_flags(flag_values))
    except (ValueError, LookupError) as e:  # run_main turns these into one `error: ...` line
      self.assertTrue(str(e).strip(), f"empty error message from {argv}")
      return e

  @settings(max_examples=150, **SETTINGS)
  @given(st.lists(st.tuples(st.sampled_from(NUMERIC_FLAGS), NUMBERS).map(lambda t: f"--{t[0]}={t[1]}"),
                  min_size=1, max_size=4))
  def test_numeric_flags(self, argv):
    result = self.parse(argv)
    if isinstance(result, tuple):
      data, train, student, distill = result
      for name, value in [("max_seq_length", data.max_seq_length), ("train_batch_size", train.train_batch_size),
                          ("learning_rate", train.learning_rate), ("num_train_epochs", train.num_train_epochs),
                          ("temperature", distill.temperature), ("student_num_layers", student.bert.num_hidden_layers)]:
        self.assertGreater(value, 0, f"{argv} accepted {name}={value}")
      self.assertTrue(0 <= distill.alpha <= 1 and 0 <= train.warmup_proportion < 1, argv)

  def test_non_finite_numbers_are_rejected(self):
    for argv in (["--learning_rate=nan"], ["--learning_rate=1e999"], ["--temperature=inf"], ["--temperature=nan"],
                 ["--weight_decay=inf"], ["--temperature_schedule=linear:nan"]):
      result = self.parse(argv)
      self.assertNotIsInstance(result, tuple, f"{argv} was accepted")

  def test_clean_errors_for_malformed_numbers(self):  # a few fixed cases, so that the error path surely runs
    self.assertIsInstance(self.parse(["--num_train_epochs=inf"]), flags.IllegalFlagValueError)
    self.assertIsInstance(self.parse(["--max_seq_length=1"]), ValueError)
    self.assertRegex(str(self.parse(["--alpha=nan"])), r"alpha must be in \[0, 1\], got nan")
    self.assertRegex(str(self.parse(["--student_init_from_layers=1,x", "--student_num_layers=2"])),
                     r"--student_init_from_layers takes comma-separated layer numbers such as 2,5; got 1,x")

  @settings(max_examples=100, **SETTINGS)
  @given(st.sampled_from(["labels", "student_init_from_layers"]), LIST_VALUES,
         st.sampled_from(["temperature_schedule", "alpha_schedule"]), SCHEDULES, STAGES)
  def test_list_and_schedule_flags(self, list_flag, list_value, schedule_flag, schedule, stages):
    argv = [f"--{list_flag}={list_value}", f"--{schedule_flag}={schedule}", f"--stages={stages}"]
    assume(all("\x00" not in arg for arg in argv))
    result = self.parse(argv)
    if isinstance(result, tuple) and list_flag == "student_init_from_layers" and list_value:
      bert = result[2].bert
      self.assertEqual(len(bert.init_from_layers), bert.num_hidden_layers, argv)
      self.assertGreaterEqual(min(bert.init_from_layers), 1, argv)


if __name__ == "__main__":
  tf.test.main()

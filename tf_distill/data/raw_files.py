"""Reading a data file's bytes, plain or gzipped (told apart by the gzip magic bytes, not the name), with one-line
errors in the reader's own error type."""

import gzip
import os
from typing import Type

GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str, error: Type[Exception], expected: str) -> bytes:
  """The contents of `path`, decompressed when gzipped. `error` is raised for a missing file (naming `expected`, e.g.
  "a CoNLL file (one word and its tag per line)") or damaged gzip data."""
  if not os.path.isfile(path):
    raise error(f"{path}: no such file; pass {expected}")
  with open(path, "rb") as f:
    content = f.read()
  if content.startswith(GZIP_MAGIC):
    try:
      content = gzip.decompress(content)
    except (OSError, EOFError) as e:
      raise error(f"{path}: gzip data is damaged ({e}); re-compress the file or pass it uncompressed") from None
  return content

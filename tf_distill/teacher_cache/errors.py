"""What the cache modules share below them: the on-disk format version and the error they raise (so that `key` and
`manifest` need not import each other)."""

from typing import Optional

FORMAT_VERSION = 1


class CacheError(ValueError):
  """A teacher cache is missing, incomplete, or does not match this run: `reason`, then the `fix` if one is given
  (left out where --teacher_cache=auto applies the fix itself)."""

  def __init__(self, reason: str, fix: Optional[str] = None):
    super().__init__(f"{reason}; {fix}" if fix else reason)
    self.reason = reason

"""`resolve`: what `--teacher_cache=off|build|use|auto` does with a cache directory."""

from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from tf_distill.configs import TEACHER_CACHE_MODES
from tf_distill.teacher_cache.key import CacheKey
from tf_distill.teacher_cache.errors import CacheError
from tf_distill.teacher_cache.manifest import check_features, describe_teacher
from tf_distill.teacher_cache.reader import TeacherCache, open_cache
from tf_distill.teacher_cache.writer import build_cache


def resolve(mode: str, cache_dir: str, key: CacheKey, teacher: Optional[Callable],
            features: Mapping[str, np.ndarray], outputs: Sequence[str] = ("logits",),
            layers: Optional[Sequence[int]] = None, batch_size: int = 64, num_shards: int = 4,
            log: Callable[[str], None] = print) -> Optional[TeacherCache]:
  """`--teacher_cache`: off -> None; build -> (re)build then open; use -> open or raise CacheError; auto -> open a
  valid cache, else (missing, partial or mismatched, with the reason logged) build it, then open.

  The returned cache describes `teacher` (labels, num_labels, bert_config) when one is given, else the teacher the
  manifest recorded at build time.
  """
  if mode not in TEACHER_CACHE_MODES:
    raise CacheError(f"unknown teacher_cache mode {mode!r}; use one of {list(TEACHER_CACHE_MODES)}")
  if mode == "off":
    return None
  if not cache_dir:
    raise CacheError(f"teacher_cache={mode} needs a cache directory (--teacher_cache_dir)")
  num_examples = check_features(features)
  teacher_info = describe_teacher(teacher)
  if mode in ("use", "auto"):
    try:
      cache = open_cache(cache_dir, key, outputs, layers, teacher_info)
      if cache.num_examples != num_examples:
        raise CacheError(f"teacher cache at {cache_dir} holds {cache.num_examples} examples but the training "
                         f"features have {num_examples}")
      log(f"teacher cache: using {cache_dir} ({cache.num_examples} examples, outputs {list(cache.outputs)})")
      return cache
    except CacheError as e:
      if mode == "use":
        raise
      log(f"teacher cache: building, because {e.reason}")
  if teacher is None:
    raise CacheError(f"building the teacher cache at {cache_dir} needs the teacher; pass --teacher_model")
  manifest = build_cache(teacher, features, cache_dir, key, outputs, layers, batch_size, num_shards)
  log(f"teacher cache: built {cache_dir} ({manifest['num_examples']} examples in {manifest['build_seconds']:.1f} s)")
  return open_cache(cache_dir, key, outputs, layers, teacher_info)

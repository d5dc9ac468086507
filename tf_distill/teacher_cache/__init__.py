"""Teacher-output cache: query the teacher once, then train later epochs on the student alone.

`--teacher_cache=off|build|use|auto` (`resolve`). The cache is a teacher source: `TeacherCache.__call__(features,
outputs)` returns the same dict layout as the online teacher, looked up by the batch's `example_index`.

  key.py       CacheKey, cache_key, teacher_fingerprint, features_fingerprint: what a cache depends on
  errors.py    the format version and CacheError
  manifest.py  the on-disk layout, manifest.json and the checks before reading
  writer.py    build_cache: one pass of the teacher over the training features
  reader.py    TeacherCache, open_cache: the cache as a teacher source
  policy.py    resolve: the off/build/use/auto modes
"""

from tf_distill.data.tokenization import FEATURE_KEYS
from tf_distill.teacher import INDEX_KEY
from tf_distill.teacher_cache.key import CacheKey, cache_key, features_fingerprint, teacher_fingerprint
from tf_distill.teacher_cache.errors import FORMAT_VERSION, CacheError
from tf_distill.teacher_cache.manifest import MANIFEST_FILE, check_manifest, read_manifest
from tf_distill.teacher_cache.policy import resolve
from tf_distill.teacher_cache.reader import TeacherCache, open_cache
from tf_distill.teacher_cache.writer import build_cache

__all__ = [
    "FEATURE_KEYS", "FORMAT_VERSION", "INDEX_KEY", "MANIFEST_FILE", "CacheError", "CacheKey", "TeacherCache",
    "build_cache", "cache_key", "check_manifest", "features_fingerprint", "open_cache", "read_manifest", "resolve",
    "teacher_fingerprint",
]

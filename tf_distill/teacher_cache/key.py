"""What a teacher cache depends on: the teacher SavedModel, the vocab, max_seq_length and the tokenised data.

A cache is keyed by the teacher SavedModel (sha256 over saved_model.pb and variables/; for a teacher ensemble, its
`fingerprint()` over every member's, the weights and the intermediate member), the vocab file's sha256,
max_seq_length and a fingerprint of the tokenised training features; `CacheKey.differences` names every field that
differs from a manifest's. Which outputs are stored is not part of the key: a cache serves any subset of them.
"""

import dataclasses
import hashlib
import json
import os
from typing import Iterable, List, Mapping, Tuple, Union

import numpy as np

from tf_distill.data.tokenization import FEATURE_KEYS
from tf_distill.teacher import TeacherSource
from tf_distill.teacher_cache.errors import FORMAT_VERSION, CacheError


@dataclasses.dataclass(frozen=True)
class CacheKey:
  """What the cached teacher outputs depend on. `digest` is the hex key stored in the manifest."""
  teacher_sha256: str
  vocab_sha256: str
  max_seq_length: int
  data_fingerprint: str
  format_version: int = FORMAT_VERSION

  @property
  def digest(self) -> str:
    payload = json.dumps(dataclasses.asdict(self), sort_keys=True).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()

  def __str__(self) -> str:
    return self.digest

  def differences(self, stored: Mapping) -> List[str]:
    """Human-readable reasons why a cache built under `stored` (a manifest's key fields) cannot serve this key."""
    reasons = {
        "teacher_sha256": "teacher changed (the teacher SavedModel's saved_model.pb/variables hash, or an "
                          "ensemble's members, weights or intermediate teacher, differ)",
        "vocab_sha256": "vocab changed (the vocab file's sha256 differs)",
        "max_seq_length": "max_seq_length differs",
        "data_fingerprint": "training data changed (the tokenised training features differ)",
        "format_version": "cache format version differs",
    }
    out = []
    for name, reason in reasons.items():
      mine, theirs = getattr(self, name), stored.get(name)
      if mine != theirs:
        out.append(f"{reason}: cache has {_short(theirs)}, this run has {_short(mine)}")
    return out


def _short(value) -> str:
  return f"{value[:12]}..." if isinstance(value, str) and len(value) > 16 else repr(value)


def _hash_files(paths: Iterable[Tuple[str, str]]) -> str:
  """sha256 over (name, contents) pairs, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  for name, path in paths:
    digest.update(name.encode("utf-8") + b"\0")
    with open(path, "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
  return digest.hexdigest()


def teacher_fingerprint(teacher: Union[str, TeacherSource]) -> str:
  """sha256 over a SavedModel's saved_model.pb and every file under variables/ (names included).

  `teacher`: the SavedModel directory, or a teacher source: its `fingerprint()` where it has one (an ensemble),
  else its `path`'s.
  """
  if not isinstance(teacher, str):
    return teacher.fingerprint() if hasattr(teacher, "fingerprint") else teacher_fingerprint(teacher.path)
  teacher_path = teacher
  graph = os.path.join(teacher_path, "saved_model.pb")
  if not os.path.isfile(graph):
    raise CacheError(f"{teacher_path!r} is not a SavedModel (no saved_model.pb); pass the teacher version directory")
  files = [("saved_model.pb", graph)]
  variables = os.path.join(teacher_path, "variables")
  for root, _, names in sorted(os.walk(variables)):
    for name in sorted(names):
      path = os.path.join(root, name)
      files.append((os.path.relpath(path, teacher_path), path))
  return _hash_files(files)


def features_fingerprint(features: Mapping[str, np.ndarray]) -> str:
  """sha256 over the teacher inputs (input_ids, input_mask, segment_ids): dtype, shape and bytes.

  It changes whenever the data file, the tokenizer, the vocab, max_seq_length or max_train_examples change the
  examples the teacher sees, so it is a stricter key than the data file's path or hash.
  """
  digest = hashlib.sha256()
  for key in FEATURE_KEYS:
    if key not in features:
      raise CacheError(f"features lack {key!r}; pass the tokenised training features (WordPieceTokenizer.encode)")
    array = np.ascontiguousarray(features[key])
    digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode("utf-8"))
    digest.update(array.tobytes())
  return digest.hexdigest()


def cache_key(teacher: Union[str, TeacherSource], vocab_file: str, max_seq_length: int,
              data_fingerprint: str) -> CacheKey:
  """The key of a cache of `teacher`'s outputs (a SavedModel directory or a teacher source, as
  `teacher_fingerprint` takes) on the data fingerprinted by `data_fingerprint`.

  Which outputs are stored is not part of the key: a cache serves any request for a subset of its outputs.
  """
  if not os.path.isfile(vocab_file):
    raise CacheError(f"vocab file {vocab_file!r} does not exist; pass the --vocab_file the data was tokenised with")
  return CacheKey(teacher_sha256=teacher_fingerprint(teacher), vocab_sha256=_hash_files([("", vocab_file)]),
                  max_seq_length=int(max_seq_length), data_fingerprint=str(data_fingerprint))

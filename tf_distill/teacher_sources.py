"""`--teacher_model` -> the `TeacherSource` a run reads: a tf_distill export (`SavedModelTeacher`, recognised by its
metadata) or a foreign SavedModel (`ForeignSavedModelTeacher`, read as the `--teacher_*` flags say); several,
comma-separated, make an `EnsembleTeacher` of them (its foreign members all read as those flags say)."""

import os

from tf_distill.configs import DataConfig, DistillConfig
from tf_distill.ensemble import EnsembleTeacher
from tf_distill.export.serving import METADATA_FILE, latest_version_dir
from tf_distill.foreign_teacher import ForeignSavedModelTeacher
from tf_distill.teacher import SavedModelTeacher, TeacherError, TeacherSource


def is_tf_distill_export(path: str) -> bool:
  return os.path.isfile(os.path.join(latest_version_dir(path), "assets.extra", METADATA_FILE))


def load_one(path: str, distill: DistillConfig, data: DataConfig, foreign_flags_used: bool = False) -> TeacherSource:
  """One teacher SavedModel: tf_distill's own, or a foreign one read through `distill.foreign`. The --teacher_*
  flags are refused for a tf_distill export unless `foreign_flags_used` (another ensemble member is foreign)."""
  if not path or not os.path.isdir(path) or is_tf_distill_export(path):
    if path and os.path.isdir(path) and not distill.foreign.is_default and not foreign_flags_used:
      raise TeacherError(f"teacher {path} is a tf_distill export, which carries its own signatures and metadata; "
                         "the --teacher_signature/--teacher_input_map/--teacher_output/--teacher_output_kind/"
                         "--teacher_bert_config_file flags are for foreign SavedModels: drop them")
    return SavedModelTeacher(path)
  return ForeignSavedModelTeacher(distill.foreign, path, labels=data.labels, vocab_file=data.vocab_file,
                                  bert_config_file=distill.foreign.bert_config_file)


def load_teacher(distill: DistillConfig, data: DataConfig) -> TeacherSource:
  paths = distill.teacher_models
  if len(paths) < 2:
    return load_one(distill.teacher_model, distill, data)
  foreign = any(os.path.isdir(p) and not is_tf_distill_export(p) for p in paths)
  intermediate = 1 if distill.intermediate_teacher is None else distill.intermediate_teacher
  return EnsembleTeacher([load_one(p, distill, data, foreign_flags_used=foreign) for p in paths],
                         distill.teacher_weights, intermediate)

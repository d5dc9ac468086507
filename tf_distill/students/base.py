"""The student registry: each student type registers, next to its definition, how it is built and reloaded."""

import dataclasses
from typing import Callable

from tf_distill.registry import Registry


@dataclasses.dataclass(frozen=True)
class StudentType:
  """How one kind of student is made.

  build:              (its `tf_distill.configs` student config, teacher: TeacherSource) -> built keras.Model
  from_model_config:  (the model's `config.to_dict()`, as in model_config.json) -> built keras.Model
  intermediate_outputs: whether the model returns hidden states and attention (intermediate matches need them)
  mixed_precision:    whether it can train under a mixed Keras dtype policy
  """
  build: Callable
  from_model_config: Callable
  intermediate_outputs: bool
  mixed_precision: bool


STUDENTS: Registry[StudentType] = Registry("student type")

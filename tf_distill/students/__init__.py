"""Students: a smaller BERT (`bert`) or Tang et al.'s BiLSTM (`bilstm`), built through one registry.

    from tf_distill.configs import BertStudentConfig, StudentConfig
    student = build_student(StudentConfig(type="bert", bert=BertStudentConfig(num_hidden_layers=2,
                                                                              init_from_layers=(2, 5))), teacher)
    model = model_from_config(json.load(open("runs/student/model_config.json")))  # rebuilt, untrained weights
"""

from typing import Dict

from tf_distill.configs import StudentConfig
from tf_distill.students import bert, bilstm  # noqa: F401  (register the student types)
from tf_distill.students.base import STUDENTS, StudentType


def student_type(model) -> StudentType:
  """The registered type of a built student (its config's `model_type`)."""
  return STUDENTS.get(model.config.model_type)


def build_student(config: StudentConfig, teacher):
  """The student `config.type` names, shaped (and initialised) from `teacher`, a `tf_distill.teacher.TeacherSource`."""
  config.validate()
  return STUDENTS.get(config.type).build(config.get(), teacher)


def model_from_config(values: Dict):
  """Rebuilds a student (or teacher) from its `config.to_dict()`; `model_type` names the type (default: bert)."""
  return STUDENTS.get(values.get("model_type", "bert")).from_model_config(values)

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
  """The student `config.type` names, shaped (and initialised) from `teacher`, a `tf_distill.teacher.TeacherSource`;
  with `config.init_run`, its weights are then that run's best student's, whose shape must be the same."""
  config.validate()
  model = STUDENTS.get(config.type).build(config.get(), teacher)
  if config.init_run:
    from tf_distill.run_dir import RunDir  # pylint: disable=import-outside-toplevel
    run = RunDir(config.init_run)
    theirs, ours = run.read_model_config(), model.config.to_dict()
    if theirs != ours:
      differ = sorted(key for key in set(theirs) | set(ours) if theirs.get(key) != ours.get(key))
      raise ValueError(f"--student_init_run={config.init_run} holds a student of another shape ("
                       + ", ".join(f"{key}: {theirs.get(key)} there, {ours.get(key)} here" for key in differ)
                       + "); pass the student flags that run used")
    if not run.has_best_weights():
      raise FileNotFoundError(f"--student_init_run={config.init_run} has no best student weights; pass the "
                              "--output_dir of a finished distill run")
    model.load_weights(run.best_weights).expect_partial()
  return model


def model_from_config(values: Dict):
  """Rebuilds a student (or teacher) from its `config.to_dict()`; `model_type` names the type (default: bert)."""
  return STUDENTS.get(values.get("model_type", "bert")).from_model_config(values)

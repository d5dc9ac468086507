"""Teacher-assistant chains (Mirzadeh et al., 2020; the multi-step distillation of MiniLM and ERNIE 3.0): the
teacher teaches an assistant of middle size, the assistant is exported as a teacher, and it teaches the student.

    chain = TeacherAssistantChain(
        DataConfig(), TrainConfig(output_dir="runs/chain"), DistillConfig(teacher_model="export/teacher"),
        assistant=BertStudentConfig(num_hidden_layers=3, init_from_layers=(1, 3, 5)),
        student=StudentConfig(bert=BertStudentConfig(num_hidden_layers=1, init_from_layers=(1,))))
    print("\\n".join(chain.run().lines()))

Both stages are `DistillRun`s with the same data, training and distillation settings. What differs per stage:
  student        stage 1 trains `assistant` (always BERT: it teaches with its hidden states and attention), stage 2
                 `student` (BERT or BiLSTM). Each `init_from_layers` counts the layers of its own stage's teacher:
                 the assistant's name teacher layers, the student's assistant layers.
  teacher        stage 1: `distill.teacher_model` (a tf_distill export, or a foreign SavedModel read through
                 `distill.foreign`); stage 2: the assistant's export, a tf_distill export (`distill.foreign` unused).
  teacher cache  `distill.teacher_cache_dir` holds stage 1's cache (the first teacher's outputs, which other runs over
                 the same teacher and data can share); stage 2's stays in its run directory, and a `use` mode becomes
                 `auto` there, since no cache of the new assistant can exist before the chain.
Every setting is checked against both stages before stage 1 trains.

Layout under `train.output_dir`:
  assistant/                    stage 1's run directory (`tf_distill.run_dir.RunDir`)
  export/assistant/<version>/   the assistant as a teacher SavedModel (serving_default, distill, tf_distill metadata)
  student/                      stage 2's run directory

Running the same chain again resumes it: each run resumes from its own directory (a finished one only evaluates
again), and the assistant's export is reused while it is newer than the assistant's best weights.
"""

import dataclasses
import os
from typing import Dict, List, Optional

import tf_distill  # noqa: F401
import tensorflow as tf

from tf_distill import console
from tf_distill.configs import (BertStudentConfig, DataConfig, DistillConfig, ForeignTeacherConfig, StudentConfig,
                                TrainConfig)
from tf_distill.export.run_export import export_run
from tf_distill.export.serving import latest_version_dir
from tf_distill.layer_map import parse_matches
from tf_distill.run import DistillRun, check_student_settings
from tf_distill.run_dir import RunDir
from tf_distill.students.bert import student_bert_config

ASSISTANT, STUDENT, EXPORT = "assistant", "student", "export"
WIDTH_FIELDS = ("hidden_size", "num_attention_heads", "intermediate_size")


@dataclasses.dataclass(frozen=True)
class ChainResult:
  """What a chain trained: the assistant's export and each stage's summary (`DistillRun.train_and_evaluate`'s)."""
  assistant_export: str
  assistant: Dict
  student: Dict
  assistant_description: str  # "3 layers"
  student_description: str    # "1 layer", "bilstm"

  def lines(self) -> List[str]:
    """One line per stage with its dev and test accuracy (when evaluated), and where the assistant export is."""
    return [f"chain stage 1, teacher -> assistant ({self.assistant_description}): {_accuracies(self.assistant)}",
            f"chain: assistant exported as a teacher to {self.assistant_export}",
            f"chain stage 2, assistant -> student ({self.student_description}): {_accuracies(self.student)}"]


def _accuracies(summary: Dict) -> str:
  if "test_accuracy" not in summary:
    return "not evaluated"
  return f"dev accuracy {summary['dev_accuracy']:.4f}, test accuracy {summary['test_accuracy']:.4f}"


def _describe(student: StudentConfig) -> str:
  if student.type != "bert":
    return student.type
  layers = student.bert.num_hidden_layers
  return f"{layers} layer{'s' if layers != 1 else ''}"


class TeacherAssistantChain:
  """teacher -> assistant -> student (module docstring). Construction loads the teacher and checks both stages."""

  def __init__(self, data: DataConfig, train: TrainConfig, distill: DistillConfig, assistant: BertStudentConfig,
               student: StudentConfig, strategy: Optional[tf.distribute.Strategy] = None):
    self.root = train.validate().output_dir
    self.data_config, self.train_config, self.distill_config = data, train, distill.validate()
    self.assistant_config, self.student_config = assistant.validate(), student.validate()
    self.strategy = strategy
    self.assistant_run = DistillRun(data, self.stage_train_config(ASSISTANT), distill,
                                    StudentConfig(type="bert", bert=assistant), strategy)
    self._check_stages()

  @property
  def assistant_dir(self) -> RunDir:
    return self.assistant_run.run_dir

  @property
  def export_dir(self) -> str:
    return os.path.join(self.root, EXPORT)

  def stage_train_config(self, stage: str) -> TrainConfig:
    return dataclasses.replace(self.train_config, output_dir=os.path.join(self.root, stage))

  def student_distill_config(self, assistant_export: str) -> DistillConfig:
    """Stage 2's distillation settings: stage 1's, taught by the assistant export (module docstring)."""
    mode = "auto" if self.distill_config.teacher_cache == "use" else self.distill_config.teacher_cache
    return dataclasses.replace(self.distill_config, teacher_model=assistant_export, foreign=ForeignTeacherConfig(),
                               teacher_cache=mode, teacher_cache_dir=None)

  def _check_stages(self) -> None:
    """Refuses, before stage 1 trains, layer numbers and settings that a stage would refuse later."""
    check_student_settings(self.train_config, self.distill_config, self.student_config)
    assistant_layers = self.assistant_config.num_hidden_layers
    teacher_layers = int(self.assistant_run.teacher.bert_config["num_hidden_layers"])
    beyond = [layer for layer in self.assistant_config.init_from_layers or () if layer > teacher_layers]
    if beyond:
      raise ValueError(f"assistant_init_from_layers names teacher layers {beyond}, but the teacher has layers "
                       f"1..{teacher_layers}")
    student = self.student_config.bert
    if self.distill_config.intermediate_matches:
      try:
        parse_matches(self.distill_config.intermediate_matches, student.num_hidden_layers, assistant_layers,
                      self.distill_config.layer_map)
      except ValueError as e:
        raise ValueError(f"in stage 2 the {assistant_layers}-layer assistant is the teacher: {e}") from e
    if self.student_config.type != "bert" or student.init_from_layers is None:
      return
    beyond = [layer for layer in student.init_from_layers if layer > assistant_layers]
    if beyond:
      raise ValueError(f"student_init_from_layers names assistant layers {beyond}, but the assistant has layers "
                       f"1..{assistant_layers}: in a chain the student is initialised from its teacher, the assistant")
    assistant_shape = student_bert_config(self.assistant_run.teacher.bert_config, self.assistant_config).to_dict()
    student_shape = student_bert_config(assistant_shape, student).to_dict()
    differ = [f"{name} {student_shape[name]} (the assistant's: {assistant_shape[name]})" for name in WIDTH_FIELDS
              if student_shape[name] != assistant_shape[name]]
    if differ:
      raise ValueError(f"student_init_from_layers copies assistant layers, but the student has {', '.join(differ)}: "
                       "drop --student_init_from_layers or the student width flags")

  def export_assistant(self) -> str:
    """The assistant as a teacher SavedModel: the latest export under `export_dir` when it is newer than the
    assistant's best weights, else a new version."""
    latest = latest_version_dir(os.path.join(self.export_dir, ASSISTANT))
    if (os.path.isfile(os.path.join(latest, "saved_model.pb"))
        and os.path.getmtime(latest) >= os.path.getmtime(self.assistant_dir.best_weights + ".index")):
      console.info(f"chain: the assistant's export {latest} is up to date; reusing it")
      return latest
    return export_run(self.assistant_dir, self.export_dir, ASSISTANT, with_distill_signature=True)

  def run(self, do_train: bool = True, do_eval: bool = True) -> ChainResult:
    """Stage 1, the assistant's export, stage 2; returns both stages' summaries."""
    assistant = _describe(StudentConfig(bert=self.assistant_config))
    console.phase(f"chain stage 1: teacher -> assistant ({assistant})")
    assistant_summary = self.assistant_run.train_and_evaluate(do_train, do_eval)
    assistant_export = self.export_assistant()
    console.phase(f"chain stage 2: assistant -> student ({_describe(self.student_config)})")
    student_run = DistillRun(self.data_config, self.stage_train_config(STUDENT),
                             self.student_distill_config(assistant_export), self.student_config, self.strategy)
    student_summary = student_run.train_and_evaluate(do_train, do_eval)
    return ChainResult(assistant_export, assistant_summary, student_summary, assistant, _describe(self.student_config))

"""Task types: each kind of task (`classification`, `tagging`, `question_answering`) in a module of its own,
registered here.

    task_type = task_type_of("wnut17")       # the Tagging instance
    data = task_type.load_data(data_config)  # TaskData
    model = build_pretrained_classifier(path, len(data.labels), head=task_type.head)
    task_type.score(logits, data.features["dev"], data.labels)  # {"f1": ..., ...}

`TaskType` (tf_distill.tasks.base) says what a type supplies. Adding one touches its module, its tests and this file.
"""

from typing import Dict, List, Sequence

from tf_distill.registry import Registry
from tf_distill.tasks.base import TaskData, TaskType
from tf_distill.tasks.classification import Classification
from tf_distill.tasks.question_answering import QuestionAnswering
from tf_distill.tasks.tagging import Tagging

TASK_TYPES: Registry[TaskType] = Registry("task type")
TASK_TYPES.register("classification")(Classification())
TASK_TYPES.register("tagging")(Tagging())
TASK_TYPES.register("question_answering")(QuestionAnswering())


def _types_by_task_name() -> Dict[str, TaskType]:
  by_name = {}
  for type_name in TASK_TYPES.names():
    for task_name in TASK_TYPES.get(type_name).task_names:
      if task_name in by_name:
        raise ValueError(f"task {task_name!r} is claimed by two task types")
      by_name[task_name] = TASK_TYPES.get(type_name)
  return by_name


def task_type_of(task_name: str) -> TaskType:
  """The task type of `--task_name`; LookupError listing the known task names otherwise."""
  by_name = _types_by_task_name()
  if task_name not in by_name:
    raise LookupError(f"unknown task {task_name!r}; known: {sorted(by_name)}")
  return by_name[task_name]


def task_data_flags() -> List[str]:
  """The names of the data flags that some task type alone reads (`TaskType.data_flags`)."""
  return sorted({name for type_name in TASK_TYPES.names() for name in TASK_TYPES.get(type_name).data_flags})


def check_data_flags(task_name: str, given: Sequence[str]) -> None:
  """Refuses data flags in `given` (names of flags set on the command line) that only other task types read
  (`TaskType.data_flags`), e.g. --doc_stride with a tagging task: they would be silently ignored."""
  if task_name not in _types_by_task_name():
    return  # an unknown task is refused where the task type is looked up, naming the known ones
  task_type = task_type_of(task_name)
  others = {name: type_name for type_name in TASK_TYPES.names() for name in TASK_TYPES.get(type_name).data_flags}
  ignored = sorted(name for name in given if name in others and name not in task_type.data_flags)
  if ignored:
    raise ValueError(f"--task_name={task_name} does not read {', '.join(f'--{name}' for name in ignored)} (only "
                     f"{others[ignored[0]]} tasks do): drop {'it' if len(ignored) == 1 else 'them'}")


def task_type_for_head(head: str) -> TaskType:
  """The task type whose models end in `head` (a model's config says its head; an export's metadata has no task
  type of its own when it came from another toolkit)."""
  for type_name in TASK_TYPES.names():
    if TASK_TYPES.get(type_name).head == head:
      return TASK_TYPES.get(type_name)
  raise LookupError(f"no task type has the head {head!r}")


def task_type_of_export(metadata: Dict) -> TaskType:
  """The task type of an export, from the head of the model_config in its metadata (`tf_distill.json`;
  classification without one)."""
  return task_type_for_head(metadata.get("model_config", {}).get("head", "pooled"))


__all__ = ["TASK_TYPES", "TaskData", "TaskType", "check_data_flags", "task_data_flags", "task_type_for_head", "task_type_of", "task_type_of_export"]

"""The directory of a train_teacher or distill run: `RunDir` is the only code that knows the names of its files.

    run = RunDir("runs/student")
    model = run.load_model()                     # rebuilt from model_config.json, with the best weights
    data_config = run.data_config()              # the run's DataConfig, its vocab copy and labels
    run.export_metadata()                        # what an export of it records: labels, max_seq_length, ...

Layout:
  config.json         the resolved configs, {"data": {...}, "train": {...}, ...}: `write_config`, `read_config`
  model_config.json   `model.config.to_dict()`, enough to rebuild the model: `write_model_info`
  labels.json         {"labels": [...]} (`labels`); runs written before RunDir also keep max_seq_length and
                      task_name there, which config.json holds too: only when config.json lacks them are they read
  vocab.txt           a copy of the vocab the run tokenised with
  eval_results.json   best epoch, dev and test metric (accuracy; a tagger's entity F1), history: `write_eval_results`,
                      `read_eval_results`
  best/student.*      the TF checkpoint of the best weights by the dev metric (`best_weights` is its prefix)
  resume/             the exact-resume checkpoints (tf_distill.checkpointing.RunState)
  checkpoints/        the weights after each epoch, epoch-NN
  logs/               TensorBoard
  teacher_cache/      distill's teacher cache, unless --teacher_cache_dir puts it elsewhere
"""

import dataclasses
import json
import os
import shutil
from typing import Dict, List, Optional, Sequence

from tf_distill.configs import DataConfig

_FINISHED_RUN = "pass the --output_dir of a finished train_teacher or distill run"
# DataConfig fields that a run may leave None and choose on dev: data_config() reads eval_results.json's dev_<field>.
_CHOSEN_ON_DEV = ("null_threshold",)


def _path(*parts: str, doc: Optional[str] = None) -> property:
  """A read-only property: `<run dir>/<parts...>`."""
  return property(lambda self: os.path.join(self.path, *parts), doc=doc or f"<run dir>/{'/'.join(parts)}")


class RunDir:
  """One run's directory. `RunDir(path)` touches nothing; the readers raise FileNotFoundError naming the missing
  file and the fix. A RunDir is path-like (`os.fspath(run)`), so `RunDir(RunDir(p))` is `RunDir(p)`."""

  def __init__(self, path):
    self.path = os.fspath(path)

  def __fspath__(self) -> str:
    return self.path

  def __repr__(self) -> str:
    return f"RunDir({self.path!r})"

  config_file = _path("config.json")
  model_config_file = _path("model_config.json")
  labels_file = _path("labels.json")
  vocab_file = _path("vocab.txt")
  eval_results_file = _path("eval_results.json")
  best_weights = _path("best", "student", doc="The TF checkpoint prefix of the best weights (`load_weights` and "
                       "`save_weights` take it as it is; the files are best/student.index and .data-*).")
  resume_dir = _path("resume")
  checkpoints_dir = _path("checkpoints")
  logs_dir = _path("logs")
  teacher_cache_dir = _path("teacher_cache", doc="distill's default teacher cache directory "
                            "(DistillConfig.teacher_cache_dir overrides it).")

  def has_best_weights(self) -> bool:
    """Whether a best-weights checkpoint has been written (an epoch has finished)."""
    return os.path.exists(self.best_weights + ".index")

  # Writers.

  def write_config(self, **configs) -> None:
    """Writes the resolved config dataclasses, by section name (`data=..., train=...`), to config.json."""
    _write_json(self.config_file, {name: dataclasses.asdict(config) for name, config in configs.items()})

  def write_model_info(self, model, data_config: DataConfig, labels: Sequence[str]) -> None:
    """What an export needs besides the weights: model_config.json (`model.config.to_dict()`), labels.json and a
    copy of `data_config.vocab_file` as vocab.txt."""
    os.makedirs(self.path, exist_ok=True)
    if os.path.abspath(data_config.vocab_file) != os.path.abspath(self.vocab_file):
      shutil.copyfile(data_config.vocab_file, self.vocab_file)
    _write_json(self.model_config_file, model.config.to_dict())
    _write_json(self.labels_file, {"labels": list(labels)})

  def write_eval_results(self, summary: Dict) -> None:
    _write_json(self.eval_results_file, summary)

  # Readers.

  def _read(self, path: str) -> Dict:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{self.path} has no {os.path.relpath(path, self.path)}; {_FINISHED_RUN}")
    with open(path, encoding="utf-8") as f:
      return json.load(f)

  def read_config(self) -> Dict:
    """config.json: {section name: the config's fields}."""
    return self._read(self.config_file)

  def read_model_config(self) -> Dict:
    """model_config.json: the model's `config.to_dict()`."""
    return self._read(self.model_config_file)

  def read_eval_results(self) -> Dict:
    return self._read(self.eval_results_file)

  @property
  def labels(self) -> List[str]:
    """The label names, in label-id order."""
    return list(self._read(self.labels_file)["labels"])

  def _data_fields(self) -> Dict:
    """config.json's "data" section; max_seq_length and task_name that it lacks come from an old labels.json."""
    fields = dict(self.read_config().get("data", {}))
    old_labels_file = self._read(self.labels_file)
    for key in ("max_seq_length", "task_name"):
      if key not in fields and key in old_labels_file:
        fields[key] = old_labels_file[key]
    if "max_seq_length" not in fields:
      raise ValueError(f"{self.config_file} has no data.max_seq_length; it was not written by train_teacher or "
                       f"distill: {_FINISHED_RUN}")
    chosen = [name for name in _CHOSEN_ON_DEV if fields.get(name) is None]
    if chosen and os.path.isfile(self.eval_results_file):
      results = self.read_eval_results()
      fields.update({name: results[f"dev_{name}"] for name in chosen if results.get(f"dev_{name}") is not None})
    return fields

  def data_config(self, data_dir: Optional[str] = None, tfds_data_dir: Optional[str] = None) -> DataConfig:
    """The run's data settings with its labels and its vocab copy; `data_dir` / `tfds_data_dir` replace the run's
    when given (the data may live elsewhere now)."""
    fields = self._data_fields()
    fields.update(vocab_file=self.vocab_file, labels=tuple(self.labels), data_dir=data_dir or fields.get("data_dir"),
                  tfds_data_dir=tfds_data_dir or fields.get("tfds_data_dir"))
    return DataConfig(**{f.name: fields[f.name] for f in dataclasses.fields(DataConfig) if f.name in fields})

  def export_metadata(self) -> Dict:
    """What an export of the run records and tokenises with: labels, max_seq_length, task_name, do_lower_case and
    text_pairs (whether it classifies sentence pairs), as the run's config.json has them, and the data flags that
    only its task type reads (`TaskType.data_flags`: a QA export's doc_stride, ..., null_threshold)."""
    from tf_distill.tasks import task_type_of  # pylint: disable=import-outside-toplevel  (imports TensorFlow)
    data_config = self.data_config()
    metadata = {"labels": list(data_config.labels), "max_seq_length": data_config.max_seq_length,
                "task_name": data_config.task_name, "do_lower_case": data_config.do_lower_case,
                "text_pairs": data_config.text_b_column is not None}
    try:
      own_flags = task_type_of(data_config.task_name).data_flags
    except LookupError:  # a task this version does not know (an old run's): no flags of its own
      own_flags = ()
    return {**metadata, **{name: getattr(data_config, name) for name in own_flags}}

  def load_model(self):
    """The run's model (BERT or BiLSTM, as model_config.json says) with its best weights."""
    # Imported here so that reading a run's files needs no TensorFlow.
    from tf_distill.students import model_from_config  # pylint: disable=import-outside-toplevel
    model = model_from_config(self.read_model_config())
    if not self.has_best_weights():
      raise FileNotFoundError(f"{self.path} has no best weights ({os.path.relpath(self.best_weights, self.path)}"
                              f".index); the run ended before an epoch finished: {_FINISHED_RUN}")
    model.load_weights(self.best_weights).expect_partial()
    return model


def _write_json(path: str, payload: Dict) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f, indent=2, sort_keys=True)

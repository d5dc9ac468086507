"""Frozen run configurations. Library code takes these, never absl FLAGS; `validate()` names every bad value."""

import dataclasses
import json
import math
import os
from typing import Optional, Tuple


def _check_positive(obj, *names):
  for name in names:
    value = getattr(obj, name)
    if value is not None and not math.isfinite(value):
      raise ValueError(f"{name} must be a finite number, got {value}")
    if value is None or value <= 0:
      raise ValueError(f"{name} must be > 0, got {value}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Which examples to read and how to tokenise them (run_classifier's --task_name, --data_dir, ...)."""
  task_name: str = "rotten_tomatoes"
  data_dir: Optional[str] = None
  vocab_file: Optional[str] = None
  do_lower_case: bool = True
  max_seq_length: int = 64
  text_column: str = "text"
  text_b_column: Optional[str] = None
  label_column: str = "label"
  labels: Optional[Tuple[str, ...]] = None
  tfds_data_dir: Optional[str] = None
  # Extractive QA (run_squad's flags): window stride and question cut in pieces, longest answer and spans paired;
  # the null-odds threshold above which a question gets no answer (v2.0; None: chosen on dev); drop_unanswerable
  # reads a v2.0 file as v1.1 (its unanswerable questions dropped from every split: every question gets an answer).
  doc_stride: int = 128
  max_query_length: int = 64
  max_answer_length: int = 30
  n_best_size: int = 20
  null_threshold: Optional[float] = None
  drop_unanswerable: bool = False

  def validate(self) -> "DataConfig":
    if self.max_seq_length < 2:
      raise ValueError(f"max_seq_length must be >= 2 ([CLS] and [SEP]), got {self.max_seq_length}")
    for name in ("doc_stride", "max_query_length", "max_answer_length", "n_best_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if self.null_threshold is not None and not math.isfinite(self.null_threshold):
      raise ValueError(f"null_threshold must be a finite number, got {self.null_threshold!r}")
    if self.drop_unanswerable and self.null_threshold is not None:
      raise ValueError("null_threshold decides which questions get no answer, and drop_unanswerable answers every "
                       "question: pass one of --null_threshold and --drop_unanswerable")
    if self.task_name == "csv" and not self.data_dir:
      raise ValueError("task_name 'csv' reads train/dev/test files from --data_dir; pass --data_dir")
    if self.labels is not None and len(set(self.labels)) != len(self.labels):
      raise ValueError(f"labels must be distinct, got {list(self.labels)}")
    return self


PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation settings shared by teacher fine-tuning and distillation."""
  output_dir: str = "runs/default"
  train_batch_size: int = 32
  eval_batch_size: int = 64
  learning_rate: float = 5e-5
  num_train_epochs: float = 3.0
  warmup_proportion: float = 0.1
  weight_decay: float = 0.01
  seed: int = 42
  max_train_examples: Optional[int] = None
  # Keep the word-embedding matrix fixed. Adam's dense moment updates of a 30522 x 384 matrix cost about as much
  # as a transformer layer per step on CPU (bench/step_time.py, bench/RESULTS.md).
  freeze_word_embeddings: bool = False
  # "lazy_adamw": embedding tables' sparse gradients update only the rows in the batch (optimization.LazyAdamW;
  # untouched rows' moments are not decayed and get no weight decay). "adamw" (default): exact AdamW.
  embedding_optimizer: str = "adamw"
  save_every_steps: int = 100  # resume checkpoint interval, in batches (plus one at every epoch end)
  distribution_strategy: str = "one_device"  # tf_distill.distribute.STRATEGIES
  mixed_precision: str = "float32"  # a Keras policy: float32, mixed_float16 or mixed_bfloat16

  def validate(self) -> "TrainConfig":
    _check_positive(self, "train_batch_size", "eval_batch_size", "learning_rate", "num_train_epochs",
                    "save_every_steps")
    _check_optimisation(self)
    if self.mixed_precision not in PRECISION_POLICIES:
      raise ValueError(f"mixed_precision must be one of {list(PRECISION_POLICIES)}, got {self.mixed_precision!r}")
    if self.embedding_optimizer not in ("adamw", "lazy_adamw"):
      raise ValueError(f"embedding_optimizer must be adamw or lazy_adamw, got {self.embedding_optimizer!r}")
    if self.embedding_optimizer == "lazy_adamw" and self.freeze_word_embeddings:
      raise ValueError("embedding_optimizer=lazy_adamw has nothing to update with freeze_word_embeddings; "
                       "drop one of them")
    if self.max_train_examples is not None and self.max_train_examples < 1:
      raise ValueError(f"max_train_examples must be >= 1 when set, got {self.max_train_examples}")
    return self


def _check_optimisation(obj) -> None:
  """The checks TrainConfig and GeneralDistillConfig share: warm-up share, weight decay, distribution strategy."""
  if not 0.0 <= obj.warmup_proportion < 1.0:
    raise ValueError(f"warmup_proportion must be in [0, 1), got {obj.warmup_proportion}")
  if not math.isfinite(obj.weight_decay) or obj.weight_decay < 0:
    raise ValueError(f"weight_decay must be a finite number >= 0, got {obj.weight_decay}")
  if obj.distribution_strategy not in ("one_device", "mirrored", "multi_worker_mirrored"):
    raise ValueError(f"distribution_strategy must be one_device, mirrored or multi_worker_mirrored, got "
                     f"{obj.distribution_strategy!r}")


def _check_optional_positive(obj, *names):
  _check_positive(obj, *(name for name in names if getattr(obj, name) is not None))


@dataclasses.dataclass(frozen=True)
class BertStudentConfig:
  """A smaller BERT, shaped from the teacher; optionally initialised from teacher layers (BERT-PKD / DistilBERT).

  Layers are numbered as everywhere in tf_distill (`tf_distill.layer_map`): teacher layers 1..N, 0 = embeddings.
  """
  num_hidden_layers: int = 2
  hidden_size: Optional[int] = None           # None: the teacher's
  num_attention_heads: Optional[int] = None   # None: the teacher's
  intermediate_size: Optional[int] = None     # None: the teacher's
  init_from_layers: Optional[Tuple[int, ...]] = None  # teacher layer (1..N) per student layer; None: random init
  # A Hugging Face-format BERT directory (general distillation's output) whose encoder starts the student; its
  # config.json gives the student's shape, which the fields above must not contradict.
  init_checkpoint: Optional[str] = None

  def validate(self) -> "BertStudentConfig":
    _check_positive(self, "num_hidden_layers")
    _check_optional_positive(self, "hidden_size", "num_attention_heads", "intermediate_size")
    if self.init_checkpoint and self.init_from_layers:
      raise ValueError(f"--student_init_checkpoint={self.init_checkpoint} and --student_init_from_layers="
                       f"{','.join(map(str, self.init_from_layers))} both initialise the student; pass one "
                       "(--student_init_from_layers= to clear a preset's)")
    layers = self.init_from_layers
    if layers is not None and len(layers) != self.num_hidden_layers:
      raise ValueError(f"student_init_from_layers names {len(layers)} teacher layers ({','.join(map(str, layers))}) "
                       f"but the student has {self.num_hidden_layers} layers; give one teacher layer per student "
                       "layer")
    if layers is not None and min(layers) < 1:
      raise ValueError(f"student_init_from_layers={','.join(map(str, layers))}: teacher layers are numbered from 1 "
                       "(0 is the embeddings, which every initialised student copies anyway), as in --layer_map")
    return self


@dataclasses.dataclass(frozen=True)
class BiLstmStudentConfig:
  """Tang et al. (2019)'s BiLSTM: word embeddings, a BiLSTM, a ReLU layer."""
  embedding_size: int = 300
  lstm_units: int = 300      # per direction
  hidden_units: int = 400    # the ReLU layer

  def validate(self) -> "BiLstmStudentConfig":
    _check_positive(self, "embedding_size", "lstm_units", "hidden_units")
    return self


STUDENT_TYPES = ("bert", "bilstm")


@dataclasses.dataclass(frozen=True)
class StudentConfig:
  """Which student to build: a one-of config (Model Garden's `OneOfConfig`), `type` naming the field that is used.

  `tf_distill.students` builds each type through its registry. `init_run`: a finished distill run whose best
  student (of the same type and shape) starts this one, e.g. to continue it quantisation-aware (--stages=qat:1).
  """
  type: str = "bert"
  bert: BertStudentConfig = BertStudentConfig()
  bilstm: BiLstmStudentConfig = BiLstmStudentConfig()
  init_run: Optional[str] = None

  def validate(self) -> "StudentConfig":
    if self.type not in STUDENT_TYPES:
      raise ValueError(f"student_type must be one of {list(STUDENT_TYPES)}, got {self.type!r}")
    self.get().validate()
    if self.bert.init_checkpoint and self.type != "bert":
      raise ValueError(f"--student_init_checkpoint={self.bert.init_checkpoint} is a BERT encoder; the "
                       f"{self.type} student cannot start from it: drop it or use --student_type=bert")
    if self.bert.init_checkpoint and self.init_run:
      raise ValueError(f"--student_init_run={self.init_run} and --student_init_checkpoint="
                       f"{self.bert.init_checkpoint} both initialise the student; pass one")
    if self.init_run and self.type == "bert" and self.bert.init_from_layers:
      raise ValueError(f"--student_init_run={self.init_run} and --student_init_from_layers="
                       f"{','.join(map(str, self.bert.init_from_layers))} both initialise the student; pass one "
                       "(--student_init_from_layers= to clear a preset's)")
    return self

  def get(self):
    """The config of the chosen student type."""
    return getattr(self, self.type)


TEACHER_CACHE_MODES = ("off", "build", "use", "auto")
AUGMENTATION_MODES = ("fixed", "per_epoch")
TEACHER_OUTPUT_KINDS = ("logits", "probabilities", "log_probabilities")


@dataclasses.dataclass(frozen=True)
class ForeignTeacherConfig:
  """How to read a teacher SavedModel tf_distill did not export (`tf_distill.foreign_teacher`). Unused (all
  defaults) for tf_distill exports, which are recognised by their metadata."""
  signature: str = "serving_default"
  input_map: str = ""          # OURS=THEIRS pairs, e.g. "input_ids=input_word_ids,segment_ids=input_type_ids"
  output: str = ""             # the output to read; "" = the only one, else the one named like output_kind
  output_kind: str = "logits"  # logits | probabilities | log_probabilities
  bert_config_file: Optional[str] = None  # the teacher's BERT shape, to shape the student

  def validate(self) -> "ForeignTeacherConfig":
    if self.output_kind not in TEACHER_OUTPUT_KINDS:
      raise ValueError(f"teacher_output_kind must be one of {list(TEACHER_OUTPUT_KINDS)}, got {self.output_kind!r}")
    return self

  @property
  def is_default(self) -> bool:
    return self == ForeignTeacherConfig()


@dataclasses.dataclass(frozen=True)
class DistillConfig:
  """What to distil from: the teacher SavedModel, the logits objective, intermediate matches and schedules."""
  teacher_model: str = ""              # one SavedModel, or comma-separated ones: an ensemble (tf_distill.ensemble)
  teacher_weights: Optional[Tuple[float, ...]] = None  # one per ensemble member (normalised); None: equal
  intermediate_teacher: Optional[int] = None  # 1-based member serving intermediates and the BERT shape; None: 1
  temperature: float = 2.0
  alpha: float = 0.5
  kd_loss: str = "ce"
  probability_shift: bool = False      # TextBrewer's: the true label's teacher logit swapped to the top
  layer_map: str = "uniform"           # tf_distill.layer_map grammar
  intermediate_matches: str = ""       # e.g. "hidden_mse,attention_mse_scores"; "" for logits only
  stages: str = ""                     # tf_distill.schedules grammar, e.g. "intermediate:2,prediction:3"
  temperature_schedule: str = "constant"  # constant | linear:END | flsw:BETA:GAMMA | cwsm:BETA
  alpha_schedule: str = "constant"        # constant | linear:END
  teacher_cache: str = "off"           # off | build | use | auto
  teacher_cache_dir: Optional[str] = None  # default: <output_dir>/teacher_cache
  foreign: ForeignTeacherConfig = ForeignTeacherConfig()  # for a teacher export without tf_distill metadata
  unlabeled_data: Optional[str] = None  # transfer-set text without labels: a .csv/.tsv/.txt file or a built-in name
  unlabeled_ratio: Optional[float] = None  # unlabeled examples per labelled one in an epoch; None: all every epoch
  augmentation: str = ""               # tf_distill.augment.spec grammar, e.g. "tang:n=20"; "" for none
  augmentation_mode: str = "fixed"     # fixed (one set, every epoch) | per_epoch (fresh variants each epoch)
  embeddings_file: Optional[str] = None  # GloVe-format vectors for neighbours; default: the teacher's embeddings
  masked_lm_dir: Optional[str] = None  # tinybert: HF-format BERT with its MLM head
  pos_tagger: str = "auto"             # tang: auto | spacy | nltk | none

  def __post_init__(self):
    if isinstance(self.foreign, dict):  # read back from config.json
      object.__setattr__(self, "foreign", ForeignTeacherConfig(**self.foreign))
    if isinstance(self.teacher_weights, list):
      object.__setattr__(self, "teacher_weights", tuple(self.teacher_weights))

  @property
  def teacher_models(self) -> Tuple[str, ...]:
    """The SavedModel directories of `teacher_model`: one, or an ensemble's members in order."""
    return tuple(p.strip() for p in self.teacher_model.split(",")) if self.teacher_model else ()

  def validate(self) -> "DistillConfig":
    self.foreign.validate()
    if self.kd_loss == "mse" and self.foreign.output_kind != "logits":
      raise ValueError(f"kd_loss 'mse' matches raw logits, but --teacher_output_kind={self.foreign.output_kind} "
                       "gives them only up to a constant per example; use --kd_loss=ce or kl")
    if not 0.0 <= self.alpha <= 1.0:
      raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
    if not math.isfinite(self.temperature):
      raise ValueError(f"temperature must be a finite number, got {self.temperature}")
    if self.temperature <= 0:
      raise ValueError(f"temperature must be > 0, got {self.temperature}")
    for name in ("temperature_schedule", "alpha_schedule"):
      spec = getattr(self, name)
      _, _, rest = spec.partition(":")
      try:
        numbers = [float(x) for x in rest.split(":")] if rest else []
      except ValueError:
        numbers = [math.nan]
      if not all(math.isfinite(x) for x in numbers):
        raise ValueError(f"--{name}={spec!r} needs finite numbers, e.g. linear:1.0")
    self._check_teacher_use()
    self._check_ensemble()
    if (self.alpha > 0 or self.intermediate_matches) and not self.teacher_model:
      raise ValueError(f"alpha={self.alpha} needs a teacher: pass --teacher_model=DIR (a teacher SavedModel)")
    if self.kd_loss == "mse" and (self.temperature != 1.0 or self.temperature_schedule != "constant"):
      raise ValueError(f"kd_loss 'mse' matches raw logits and takes no temperature; got "
                       f"temperature={self.temperature}, use --temperature=1")
    if self.teacher_cache not in TEACHER_CACHE_MODES:
      raise ValueError(f"teacher_cache must be one of {list(TEACHER_CACHE_MODES)}, got {self.teacher_cache!r}")
    self._check_unlabeled()
    self._check_augmentation()
    return self

  def _check_ensemble(self) -> None:
    """--teacher_weights and --intermediate_teacher describe the members of a --teacher_model=a,b,... ensemble."""
    paths = self.teacher_models
    if any(not p for p in paths):
      raise ValueError(f"--teacher_model={self.teacher_model} has an empty entry; list teacher SavedModels separated "
                       "by single commas, e.g. --teacher_model=export/t1,export/t2")
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
      raise ValueError(f"--teacher_model lists {repeated} more than once; list each teacher once and give it a "
                       "larger --teacher_weights instead")
    if len(paths) < 2:
      given = [f"--{name}={value}" for name, value in (
          ("teacher_weights", ",".join(map(str, self.teacher_weights or ())) or None),
          ("intermediate_teacher", self.intermediate_teacher)) if value is not None]
      if given:
        raise ValueError(f"{' '.join(given)} describes a teacher ensemble, but --teacher_model names one teacher; "
                         "list several (--teacher_model=export/t1,export/t2) or drop it")
      return
    from tf_distill.ensemble import check_members  # pylint: disable=import-outside-toplevel
    intermediate = 1 if self.intermediate_teacher is None else self.intermediate_teacher
    check_members(len(paths), self.teacher_weights, intermediate)

  def _check_augmentation(self) -> None:
    """Augmented variants carry no label: like unlabeled text they add only distillation terms (tf_distill.augment)."""
    if self.augmentation_mode not in AUGMENTATION_MODES:
      raise ValueError(f"augmentation_mode must be one of {list(AUGMENTATION_MODES)}, got {self.augmentation_mode!r}")
    if not self.augmentation:
      given = [f"--{name}={value}" for name, value in (
          ("augmentation_mode", None if self.augmentation_mode == "fixed" else self.augmentation_mode),
          ("embeddings_file", self.embeddings_file), ("masked_lm_dir", self.masked_lm_dir),
          ("pos_tagger", None if self.pos_tagger == "auto" else self.pos_tagger)) if value]
      if given:
        raise ValueError(f"{' '.join(given)} configures augmentation, but there is no --augmentation; pass "
                         "--augmentation=SPEC (e.g. tang:n=20) or drop it")
      return
    from tf_distill.augment.spec import parse_spec  # pylint: disable=import-outside-toplevel
    parse_spec(self.augmentation)
    if self.alpha == 0 and not self.intermediate_matches:
      raise ValueError(f"--augmentation={self.augmentation} adds variants that only the distillation terms learn "
                       "from, but --alpha=0 and no --intermediate_matches leave none; set --alpha above 0 or drop "
                       "--augmentation")

  def _check_unlabeled(self) -> None:
    """Unlabeled examples add only distillation terms (tf_distill.data.unlabeled)."""
    if self.unlabeled_ratio is not None:
      if not self.unlabeled_data:
        raise ValueError(f"--unlabeled_ratio={self.unlabeled_ratio} sets the share of unlabeled examples, but there "
                         "is no --unlabeled_data; pass --unlabeled_data=FILE or drop --unlabeled_ratio")
      _check_positive(self, "unlabeled_ratio")
    if self.unlabeled_data and self.alpha == 0 and not self.intermediate_matches:
      raise ValueError(f"--unlabeled_data={self.unlabeled_data} adds examples that only the distillation terms "
                       "learn from, but --alpha=0 and no --intermediate_matches leave none; set --alpha above 0 or "
                       "drop --unlabeled_data")

  def _check_teacher_use(self) -> None:
    """alpha = 0 means hard labels only; settings that shape a distillation term contradict it (so that
    `tf_distill.distiller.teacher_outputs_needed` can read the logits term's use off alpha alone)."""
    if self.alpha > 0:
      return
    if self.alpha_schedule != "constant":
      raise ValueError(f"--alpha=0 trains on hard labels only (the teacher's logits are not read), but "
                       f"--alpha_schedule={self.alpha_schedule} would raise alpha during training; to distil with a "
                       "schedule start above 0 (e.g. --alpha=0.01), or drop --alpha_schedule")
    for name, value, default in (("temperature_schedule", self.temperature_schedule, "constant"),
                                 ("probability_shift", self.probability_shift, False)):
      if value != default:
        raise ValueError(f"--{name}={value} shapes the distillation term, but --alpha=0 has none (hard labels "
                         f"only); drop --{name} or set --alpha above 0")
    if self.teacher_cache != "off" and not self.intermediate_matches:
      raise ValueError(f"--teacher_cache={self.teacher_cache} caches the teacher's outputs, but this run reads none "
                       "(--alpha=0 and no --intermediate_matches); drop --teacher_cache or set --alpha above 0")


@dataclasses.dataclass(frozen=True)
class FinetunedCheckpointConfig:
  """An already fine-tuned classifier to export as a teacher without training (`tf_distill.finetuned`): a Hugging
  Face BertForSequenceClassification directory, or a Google BERT checkpoint as run_classifier.py writes it (which
  needs `bert_config_file`, `vocab_file` and `labels`). Flag names follow run_classifier.py."""
  init_checkpoint: str = ""
  bert_config_file: Optional[str] = None
  vocab_file: Optional[str] = None            # default: the Hugging Face directory's vocab.txt
  labels: Optional[Tuple[str, ...]] = None    # default: the Hugging Face config's id2label
  do_lower_case: Optional[bool] = None        # None: the directory's tokenizer_config.json, else True
  max_seq_length: int = 128
  task_name: Optional[str] = None             # recorded in the export's metadata (`tf_distill report` reads it)
  text_pairs: bool = False                    # serving_text takes text and text_b

  def validate(self) -> "FinetunedCheckpointConfig":
    if not self.init_checkpoint:
      raise ValueError("init_checkpoint is empty; pass --init_checkpoint=DIR (a Hugging Face directory) or "
                       "--init_checkpoint=model.ckpt-N (a Google BERT checkpoint)")
    if self.max_seq_length < 2:
      raise ValueError(f"max_seq_length must be >= 2 ([CLS] and [SEP]), got {self.max_seq_length}")
    if self.labels is not None and len(set(self.labels)) != len(self.labels):
      raise ValueError(f"labels must be distinct, got {list(self.labels)}")
    return self


@dataclasses.dataclass(frozen=True)
class GeneralDistillConfig:
  """General distillation (`tf_distill.general.run`): a pretrained teacher encoder into a student BERT on plain text.

  The teacher is `teacher_checkpoint` (a Hugging Face-format directory; "" = all-MiniLM-L6-v2 from its package) or
  `teacher_model` (an exported tf_distill teacher), never both. The objective is `intermediate_matches` over
  `layer_map` (`tf_distill.layer_map`), e.g. TinyBERT's "hidden_mse,attention_mse_scores" over "0:0,uniform". Training
  runs `num_train_steps` steps in Keras epochs of `save_every_steps` steps, each ending in a resume checkpoint.
  """
  output_dir: str = "runs/general"
  teacher_checkpoint: str = ""
  teacher_model: str = ""
  corpus: Tuple[str, ...] = ("builtin",)
  corpus_format: str = "lines"
  do_lower_case: bool = True
  max_seq_length: int = 128
  student: BertStudentConfig = BertStudentConfig(num_hidden_layers=4)
  layer_map: str = "0:0,uniform"
  intermediate_matches: str = "hidden_mse,attention_mse_scores"
  train_batch_size: int = 32
  learning_rate: float = 1e-4
  num_train_steps: int = 1000
  warmup_proportion: float = 0.1
  weight_decay: float = 0.01
  seed: int = 42
  save_every_steps: int = 100
  shuffle_buffer: int = 10000
  distribution_strategy: str = "one_device"

  def validate(self) -> "GeneralDistillConfig":
    _check_positive(self, "max_seq_length", "train_batch_size", "learning_rate", "num_train_steps",
                    "save_every_steps", "shuffle_buffer")
    if self.max_seq_length < 2:
      raise ValueError(f"max_seq_length must be >= 2 (a window starts with [CLS] and holds a piece), got "
                       f"{self.max_seq_length}")
    if self.teacher_checkpoint and self.teacher_model:
      raise ValueError(f"--teacher_checkpoint={self.teacher_checkpoint} and --teacher_model={self.teacher_model} "
                       "both name the teacher; pass one")
    if not self.corpus:
      raise ValueError("corpus is empty; pass --corpus=FILE_OR_DIR[,...] or --corpus=builtin")
    if self.corpus_format not in ("lines", "paragraphs"):
      raise ValueError(f"corpus_format must be lines or paragraphs, got {self.corpus_format!r}")
    if not self.intermediate_matches.strip():
      raise ValueError("general distillation learns from the teacher's intermediates only: pass "
                       "--intermediate_matches, e.g. hidden_mse,attention_mse_scores (TinyBERT)")
    if self.num_train_steps % self.save_every_steps:
      lower = self.num_train_steps - self.num_train_steps % self.save_every_steps
      raise ValueError(f"num_train_steps={self.num_train_steps} is not a multiple of save_every_steps="
                       f"{self.save_every_steps} (a checkpoint ends every {self.save_every_steps} steps); use "
                       f"{lower or self.save_every_steps} or {lower + self.save_every_steps}")
    _check_optimisation(self)
    self.student.validate()
    return self


def save_json(path: str, **configs) -> None:
  """Writes the resolved configs to `path` (`output_dir/config.json`) so the run can be reproduced."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump({k: dataclasses.asdict(v) for k, v in configs.items()}, f, indent=2, sort_keys=True)

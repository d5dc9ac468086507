"""Flag definitions shared by the command-line programs, and the pure flags -> config functions.

Flag names follow Google BERT's `run_classifier.py` where it has one. Flags are only defined by `define_*`
functions called from a program's `main` module, never at import time of library code.
"""

import errno
import os
import re
from typing import Optional

from absl import flags

import tf_distill  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

from tf_distill import console
from tf_distill.configs import (AUGMENTATION_MODES, PRECISION_POLICIES, STUDENT_TYPES, TEACHER_CACHE_MODES,
                                BertStudentConfig, BiLstmStudentConfig, DataConfig, DistillConfig, ForeignTeacherConfig,
                                StudentConfig, TrainConfig)
from tf_distill.distribute import STRATEGIES, configure_cpu_replicas, make_strategy
from tf_distill.tasks import check_data_flags, task_data_flags


def define_data_flags() -> None:
  flags.DEFINE_string("task_name", "rotten_tomatoes", "Task: rotten_tomatoes, bbc_news or csv (classification); "
                      "wnut17 or conll (tagging); squad (extractive QA: the shipped SQuAD 2.0 articles, or "
                      "--data_dir with train, dev and test SQuAD JSON files).")
  flags.DEFINE_string("data_dir", None, "For task csv: directory with train, dev and test .csv/.tsv files; for conll: "
                      "with train, dev and test CoNLL files (.conll, .txt, .tsv, optionally .gz).")
  flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt. Default: the pretrained model's / teacher's.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case input text (uncased models).")
  flags.DEFINE_integer("max_seq_length", 64, "Maximum WordPiece sequence length, [CLS] and [SEP] included.")
  flags.DEFINE_string("text_column", "text", "For task csv and a .csv/.tsv --unlabeled_data: column with the text "
                      "(for squad's unlabeled pairs: the question).")
  flags.DEFINE_string("text_b_column", None, "For task csv and a .csv/.tsv --unlabeled_data: column with the second "
                      "text of a sentence pair (for squad's unlabeled pairs: the context).")
  flags.DEFINE_string("label_column", "label", "For task csv: column with the label; for conll: the tag's column "
                      "number (0 is the word; default the last).")
  flags.DEFINE_list("labels", None, "Label list, in id order. Default: inferred from the training file.")
  flags.DEFINE_string("tfds_data_dir", None, "Where TFDS keeps prepared datasets. Default: ~/tensorflow_datasets.")
  flags.DEFINE_integer("doc_stride", 128, "For squad: word pieces between the starts of a long context's windows.")
  flags.DEFINE_integer("max_query_length", 64, "For squad: a question keeps its first N word pieces.")
  flags.DEFINE_integer("max_answer_length", 30, "For squad: the longest predicted answer, in word pieces.")
  flags.DEFINE_integer("n_best_size", 20, "For squad: the top start and top end logits paired per window.")
  flags.DEFINE_float("null_threshold", None, "For squad (v2.0): a question whose null odds (null score - best span "
                     "score) exceed it gets no answer. Default: the threshold that maximises dev F1, chosen by "
                     "training and recorded in eval_results.json, which exports use.")
  flags.DEFINE_bool("drop_unanswerable", False, "For squad: read v2.0 files as v1.1, dropping every split's "
                    "unanswerable questions, so that every question gets an answer (run_squad without "
                    "--version_2_with_negative). flags/qa*.flags set it: the shipped articles' 1,451 unanswerable "
                    "training questions are too few to learn when to abstain.")


def define_train_flags(default_output_dir: str, default_learning_rate: float, default_epochs: int) -> None:
  flags.DEFINE_string("output_dir", default_output_dir, "Where checkpoints, logs, config.json and results go.")
  flags.DEFINE_bool("do_train", True, "Train.")
  flags.DEFINE_bool("do_eval", True, "Evaluate the best model on the dev and test splits.")
  flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
  flags.DEFINE_integer("eval_batch_size", 64, "Evaluation batch size.")
  flags.DEFINE_float("learning_rate", default_learning_rate, "Peak learning rate of AdamW.")
  flags.DEFINE_integer("num_train_epochs", default_epochs, "Number of training epochs.")
  flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of steps with linear learning-rate warm-up.")
  flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to LayerNorm and biases).")
  flags.DEFINE_integer("seed", 42, "Random seed.")
  flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples (quick runs).")
  flags.DEFINE_bool("freeze_word_embeddings", False, "Do not train the word-embedding matrix (much faster steps "
                    "on CPU; the other embeddings and all layers still train).")
  flags.DEFINE_enum("embedding_optimizer", "adamw", ["adamw", "lazy_adamw"],
                    "adamw: exact AdamW. lazy_adamw: the word-embedding table's sparse gradient updates only the "
                    "rows in the batch (moments of other rows not decayed, no weight decay on them); faster short "
                    "steps, different maths (bench/RESULTS.md).")
  flags.DEFINE_integer("save_every_steps", 100, "Write the resume checkpoint (<output_dir>/resume) every N batches "
                       "and at each epoch end; rerunning the same command after a crash or kill resumes from it.")
  flags.DEFINE_enum("distribution_strategy", "one_device", list(STRATEGIES),
                    "tf.distribute strategy. multi_worker_mirrored reads the cluster from TF_CONFIG.")
  flags.DEFINE_integer("cpu_replicas", None, "Split the CPU into N logical devices, e.g. to run mirrored on a "
                       "CPU-only machine.")
  flags.DEFINE_enum("mixed_precision", "float32", list(PRECISION_POLICIES), "Keras dtype policy of the model being "
                    "trained: mixed_float16 (GPUs), mixed_bfloat16 (CPUs with AVX512-BF16/AMX, TPUs). No gain on "
                    "AVX2-only CPUs (bench/RESULTS.md). The teacher SavedModel and exports stay float32.")


def define_student_flags() -> None:
  flags.DEFINE_string("teacher_model", None, "Teacher SavedModel: export/teacher or export/teacher/<version>; "
                      "several, comma-separated, distil from their ensemble (weighted mean of their logits).")
  flags.DEFINE_list("teacher_weights", None, "Ensemble: one weight per --teacher_model, e.g. 0.5,0.25,0.25 "
                    "(normalised to sum 1). Default: equal.")
  flags.DEFINE_integer("intermediate_teacher", None, "Ensemble: the --teacher_model (1-based) whose hidden states, "
                       "attention and embeddings the intermediate matches read and whose shape the student takes. "
                       "Default: 1.")
  flags.DEFINE_float("temperature", 2.0, "Softmax temperature T of the soft targets.")
  flags.DEFINE_float("alpha", 0.5, "Weight of the distillation term; 0 trains on hard labels only.")
  flags.DEFINE_string("teacher_signature", "serving_default", "A --teacher_model without tf_distill metadata "
                      "(e.g. a run_classifier.py export): the signature to call.")
  flags.DEFINE_string("teacher_input_map", "", "Its input names, OURS=THEIRS, e.g. input_ids=input_word_ids,"
                      "segment_ids=input_type_ids (default: the usual names are tried).")
  flags.DEFINE_string("teacher_output", "", "Its output to read (default: the only one, or the one named like "
                      "--teacher_output_kind).")
  flags.DEFINE_enum("teacher_output_kind", "logits", ["logits", "probabilities", "log_probabilities"],
                    "What --teacher_output holds; soft targets are softmax(log p / T) for probabilities.")
  flags.DEFINE_string("teacher_bert_config_file", None, "Its bert_config.json / config.json, to shape the student.")
  flags.DEFINE_enum("kd_loss", "ce", ["ce", "kl", "mse"], "Logits distillation loss.")
  flags.DEFINE_bool("probability_shift", False, "TextBrewer's probability shift: before the soft targets are made, "
                    "swap each example's largest teacher logit with the true label's.")
  flags.DEFINE_string("layer_map", "uniform", "Which student layer learns from which teacher layer: uniform "
                      "(TinyBERT), skip / last (BERT-PKD), or pairs such as 0:0,1:2,2:4 (0 = embeddings).")
  flags.DEFINE_string("intermediate_matches", "", "Intermediate losses over the layer map, e.g. "
                      "'hidden_mse,attention_mse_scores' or explicit 's1:t3:hidden_mse:1.0;...'. Empty: logits only.")
  flags.DEFINE_string("stages", "", "Training stages, e.g. intermediate:2,prediction:3 (TinyBERT), progressive:2, or "
                      "joint:3,qat:1 (the last epoch quantisation-aware: int8 simulated, so the full_int8 TFLite "
                      "file keeps the float accuracy); their epochs replace --num_train_epochs.")
  flags.DEFINE_string("temperature_schedule", "constant", "constant, linear:END, flsw:BETA:GAMMA or cwsm:BETA.")
  flags.DEFINE_string("alpha_schedule", "constant", "constant or linear:END.")
  flags.DEFINE_enum("teacher_cache", "off", list(TEACHER_CACHE_MODES), "Cache the teacher's outputs on the training "
                    "data: build, use (refuse a missing or stale cache), auto (use if valid, else build), off.")
  flags.DEFINE_string("teacher_cache_dir", None, "Where the teacher cache lives. Default: <output_dir>/teacher_cache.")
  flags.DEFINE_string("unlabeled_data", None, "Unlabeled text the teacher labels, learnt from by the distillation "
                      "terms only: a .csv/.tsv with the task's text column(s), a .txt with one example per line, or "
                      "rotten_tomatoes_plots (plot sentences of the embedded default's training movies).")
  flags.DEFINE_float("unlabeled_ratio", None, "Unlabeled examples per labelled example in each epoch, drawn anew "
                     "every epoch (seeded). Default: the whole --unlabeled_data every epoch.")
  define_augmentation_flags()
  flags.DEFINE_enum("augmentation_mode", "fixed", list(AUGMENTATION_MODES), "fixed: N variants per training "
                    "example made once and used every epoch (teacher-labelled once with --teacher_cache); per_epoch: "
                    "fresh variants for every epoch, all made before training starts.")
  flags.DEFINE_enum("student_type", "bert", list(STUDENT_TYPES), "Student architecture.")
  flags.DEFINE_integer("student_num_layers", 2, "Student transformer layers.")
  flags.DEFINE_integer("student_hidden_size", None, "Student width. Default: the teacher's.")
  flags.DEFINE_integer("student_num_heads", None, "Student attention heads. Default: the teacher's.")
  flags.DEFINE_integer("student_intermediate_size", None, "Student FFN size. Default: the teacher's.")
  flags.DEFINE_list("student_init_from_layers", None,
                    "Teacher layer initialising each student layer, numbered as in --layer_map (teacher layers 1..N, "
                    "0 = embeddings), e.g. 2,5. The embeddings, pooler and classifier are copied too. Default: "
                    "random init.")
  flags.DEFINE_string("student_init_checkpoint", None, "A Hugging Face-format BERT directory whose encoder starts "
                      "the BERT student, e.g. runs/general_tinybert4/student from scripts/general_distill.sh; the "
                      "student flags must match its config.json (unset width flags take its values).")
  flags.DEFINE_string("student_init_run", None, "A finished distill run (its --output_dir) whose best student starts "
                      "this run, same type and shape; e.g. --student_init_run=runs/student --stages=qat:1 continues "
                      "it quantisation-aware for a full-int8 export.")
  flags.DEFINE_list("student_init_layers", None, "Replaced by --student_init_from_layers (1-based; this flag was "
                    "0-based). Refused when given.")
  flags.DEFINE_integer("bilstm_embedding_size", 300, "BiLSTM student: word-embedding width.")
  flags.DEFINE_integer("bilstm_lstm_units", 300, "BiLSTM student: LSTM units per direction.")
  flags.DEFINE_integer("bilstm_hidden_units", 400, "BiLSTM student: ReLU layer units.")


def define_augmentation_flags() -> None:
  """--augmentation and the resources its rules may use (tf_distill distill and tf_distill augment)."""
  from tf_distill.augment.pos import TAGGERS  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string("augmentation", None, "Rule and parameters: tang:n=20,p_mask=0.1,p_pos=0.1,p_ng=0.25 or "
                      "tinybert:n=20,p=0.4,k=15 (left-out parameters keep these defaults).")
  flags.DEFINE_string("embeddings_file", None, "GloVe-format word vectors for the neighbours, instead of the "
                      "teacher's embeddings.")
  flags.DEFINE_string("masked_lm_dir", None, "tinybert: Hugging Face-format BERT with its MLM head (TensorFlow "
                      "weights) for the candidates of single-piece words.")
  flags.DEFINE_enum("pos_tagger", "auto", list(TAGGERS), "tang: part-of-speech tagger for the replacement; auto "
                    "uses one if installed (pip install 'tf_distill[pos]'), else embedding neighbours.")


def define_export_flags(default_run_dir: str, default_model_name: str,
                        flag_values: flags.FlagValues = flags.FLAGS) -> None:
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("output_dir", default_run_dir, "The --output_dir of the training run to export.", **kw)
  flags.DEFINE_string("export_dir", "export", "Export root; the model goes to <export_dir>/<model_name>/<version>.",
                      **kw)
  flags.DEFINE_string("model_name", default_model_name, "Model name (TF Serving's model directory).", **kw)
  flags.DEFINE_integer("version", None, "Version number. Default: one above the highest existing.", **kw)


def define_max_accuracy_drop_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  from tf_distill.export.parity import MAX_ACCURACY_DROP  # pylint: disable=import-outside-toplevel
  flags.DEFINE_float("max_accuracy_drop", MAX_ACCURACY_DROP, "Points of test accuracy a quantised TFLite file may "
                     "lose against the Keras student; a file that loses more is not shipped.", lower_bound=0.0,
                     flag_values=flag_values)


def data_config_from_flags(FLAGS, names_output_columns: bool = False) -> DataConfig:  # pylint: disable=invalid-name
  """The DataConfig of the data flags; `names_output_columns` for a program whose --text_b_column names a column
  it writes (augment), not one it reads."""
  check_data_flags(FLAGS.task_name, [name for name in task_data_flags() if FLAGS[name].present])
  reads_pairs = FLAGS.task_name == "csv" or ("unlabeled_data" in FLAGS and FLAGS.unlabeled_data)
  if FLAGS.text_b_column and not (reads_pairs or names_output_columns):
    raise ValueError(f"--text_b_column names the second text's column of --task_name=csv files and of .csv/.tsv "
                     f"--unlabeled_data; --task_name={FLAGS.task_name} without --unlabeled_data reads no column: "
                     "drop it, or add the --unlabeled_data file that has it")
  return DataConfig(
      task_name=FLAGS.task_name, data_dir=FLAGS.data_dir, vocab_file=FLAGS.vocab_file,
      do_lower_case=FLAGS.do_lower_case, max_seq_length=FLAGS.max_seq_length, text_column=FLAGS.text_column,
      text_b_column=FLAGS.text_b_column, label_column=FLAGS.label_column,
      labels=tuple(FLAGS.labels) if FLAGS.labels else None,
      tfds_data_dir=os.path.expanduser(FLAGS.tfds_data_dir) if FLAGS.tfds_data_dir else None,
      doc_stride=FLAGS.doc_stride, max_query_length=FLAGS.max_query_length,
      max_answer_length=FLAGS.max_answer_length, n_best_size=FLAGS.n_best_size,
      null_threshold=FLAGS.null_threshold, drop_unanswerable=FLAGS.drop_unanswerable).validate()


def train_config_from_flags(FLAGS) -> TrainConfig:  # pylint: disable=invalid-name
  return TrainConfig(
      output_dir=FLAGS.output_dir, train_batch_size=FLAGS.train_batch_size, eval_batch_size=FLAGS.eval_batch_size,
      learning_rate=FLAGS.learning_rate, num_train_epochs=FLAGS.num_train_epochs,
      warmup_proportion=FLAGS.warmup_proportion, weight_decay=FLAGS.weight_decay, seed=FLAGS.seed,
      max_train_examples=FLAGS.max_train_examples,
      freeze_word_embeddings=FLAGS.freeze_word_embeddings, embedding_optimizer=FLAGS.embedding_optimizer,
      save_every_steps=FLAGS.save_every_steps,
      distribution_strategy=FLAGS.distribution_strategy, mixed_precision=FLAGS.mixed_precision).validate()


def number_list(values, flag_name, convert=int, example="layer numbers such as 2,5"):
  """A list flag ("2,5") -> tuple(convert(v) for each v); a value that does not convert is refused naming the flag."""
  try:
    return tuple(convert(v) for v in values)
  except ValueError as e:
    raise ValueError(f"--{flag_name} takes comma-separated {example}; got {','.join(values)}") from e


def _refuse_old_init_layers(values) -> None:
  """--student_init_layers counted teacher layers from 0, unlike --layer_map; its values would now silently name
  other layers, so it is refused with the translation."""
  if not values:
    return
  try:
    translated = ",".join(str(int(v) + 1) for v in values)
  except ValueError:
    translated = "N,..."
  raise ValueError(f"--student_init_layers={','.join(values)} counted teacher layers from 0; it is replaced by "
                   f"--student_init_from_layers, numbered from 1 like --layer_map: use "
                   f"--student_init_from_layers={translated}")


def student_config_from_flags(FLAGS) -> StudentConfig:  # pylint: disable=invalid-name
  _refuse_old_init_layers(FLAGS.student_init_layers)
  init = FLAGS.student_init_from_layers
  bert = BertStudentConfig(
      num_hidden_layers=FLAGS.student_num_layers, hidden_size=FLAGS.student_hidden_size,
      num_attention_heads=FLAGS.student_num_heads, intermediate_size=FLAGS.student_intermediate_size,
      init_from_layers=number_list(init, "student_init_from_layers") if init else None,
      init_checkpoint=FLAGS.student_init_checkpoint or None)
  bilstm = BiLstmStudentConfig(embedding_size=FLAGS.bilstm_embedding_size, lstm_units=FLAGS.bilstm_lstm_units,
                               hidden_units=FLAGS.bilstm_hidden_units)
  return StudentConfig(type=FLAGS.student_type, bert=bert, bilstm=bilstm,
                       init_run=FLAGS.student_init_run).validate()


def distill_config_from_flags(FLAGS) -> DistillConfig:  # pylint: disable=invalid-name
  weights = FLAGS.teacher_weights
  if weights:
    weights = number_list(weights, "teacher_weights", float, "numbers such as 0.5,0.25,0.25")
  return DistillConfig(teacher_model=FLAGS.teacher_model or "",
                       teacher_weights=weights or None,
                       intermediate_teacher=FLAGS.intermediate_teacher, temperature=FLAGS.temperature,
                       alpha=FLAGS.alpha, kd_loss=FLAGS.kd_loss, probability_shift=FLAGS.probability_shift,
                       layer_map=FLAGS.layer_map,
                       intermediate_matches=FLAGS.intermediate_matches, stages=FLAGS.stages,
                       temperature_schedule=FLAGS.temperature_schedule, alpha_schedule=FLAGS.alpha_schedule,
                       teacher_cache=FLAGS.teacher_cache, teacher_cache_dir=FLAGS.teacher_cache_dir,
                       unlabeled_data=FLAGS.unlabeled_data, unlabeled_ratio=FLAGS.unlabeled_ratio,
                       augmentation=FLAGS.augmentation or "", augmentation_mode=FLAGS.augmentation_mode,
                       embeddings_file=FLAGS.embeddings_file, masked_lm_dir=FLAGS.masked_lm_dir,
                       pos_tagger=FLAGS.pos_tagger,
                       foreign=ForeignTeacherConfig(
                           signature=FLAGS.teacher_signature, input_map=FLAGS.teacher_input_map,
                           output=FLAGS.teacher_output, output_kind=FLAGS.teacher_output_kind,
                           bert_config_file=FLAGS.teacher_bert_config_file)).validate()


def strategy_from_flags(FLAGS):  # pylint: disable=invalid-name
  """The tf.distribute strategy of --distribution_strategy; call first in main, before any TensorFlow op runs."""
  if FLAGS.cpu_replicas:
    configure_cpu_replicas(FLAGS.cpu_replicas)
  return make_strategy(FLAGS.distribution_strategy)


_DISK_FULL = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT))


def disk_full_line(error: BaseException) -> Optional[str]:
  """The one-line message for `error` when it says the disk (or the user's quota) is full, else None.

  Python's file writes raise OSError(ENOSPC); TensorFlow's (checkpoints, SavedModels, TFRecords) raise an OpError,
  ResourceExhaustedError for ENOSPC, whose message ends in the same strerror text; h5py puts it in its message.
  """
  if not isinstance(error, (OSError, tf.errors.OpError)):
    return None
  text = str(error.message if isinstance(error, tf.errors.OpError) else error)
  if getattr(error, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and not any(m in text for m in _DISK_FULL):
    return None
  named = re.search(r"(\S+); (?:%s)" % "|".join(_DISK_FULL), text)  # TensorFlow's "<path>; No space left on device"
  where = getattr(error, "filename", None) or (named.group(1) if named else None)
  return (f"error: the disk is full{f' writing {where}' if where else ''}; free space on it (or point the output "
          "flags at another disk) and run the same command again: a training run resumes from its last checkpoint")


def run_main(main_fn):
  """Runs an absl main, turning configuration, data and disk-full errors into one clear line on stderr and exit
  status 1."""
  def wrapped(argv):
    console.configure()  # quiet unless --verbosity asks for TensorFlow's and absl's INFO lines
    try:
      return main_fn(argv)
    except (KeyError, IndexError):
      raise  # programming errors keep their traceback
    except (ValueError, LookupError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
      raise SystemExit(f"error: {e}") from None
    except (OSError, tf.errors.OpError) as e:
      line = disk_full_line(e)
      if line is None:
        raise
      raise SystemExit(line) from None
  return wrapped

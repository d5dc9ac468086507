"""One command for a teacher-assistant chain: distils the teacher into an assistant, exports the assistant as a
teacher, distils the assistant into the student, and prints both stages' dev and test accuracies.

    python -m tf_distill.cli.chain --teacher_model=export/teacher --output_dir=runs/chain \
        --assistant_num_layers=3 --assistant_init_from_layers=1,3,5 --student_num_layers=1 --student_init_from_layers=1

Every distill flag applies to both stages. The student flags (--student_*) describe the final student, whose
--student_init_from_layers count the assistant's layers; --assistant_num_layers and --assistant_init_from_layers
(teacher layers) the assistant, a BERT with the teacher's width. --teacher_cache_dir is the first stage's cache. Writes
<output_dir>/assistant/, <output_dir>/export/assistant/<version>/ and <output_dir>/student/; export the student with
export_student --output_dir=<output_dir>/student. The library API is `tf_distill.chain.TeacherAssistantChain`.
"""

from absl import app, flags

from tf_distill.cli import common
from tf_distill.chain import TeacherAssistantChain
from tf_distill.configs import BertStudentConfig

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()
  common.define_train_flags("runs/chain", default_learning_rate=1e-4, default_epochs=3)
  common.define_student_flags()
  define_assistant_flags()


def define_assistant_flags() -> None:
  flags.DEFINE_integer("assistant_num_layers", None, "Transformer layers of the assistant, between the teacher's "
                       "and the student's (required).")
  flags.DEFINE_list("assistant_init_from_layers", None, "Teacher layer initialising each assistant layer (1..N, as in "
                    "--layer_map), e.g. 1,3,5. Default: random init.")


def assistant_config_from_flags(FLAGS) -> BertStudentConfig:  # pylint: disable=invalid-name,redefined-outer-name
  if FLAGS.assistant_num_layers is None:
    raise ValueError("a chain needs --assistant_num_layers, the assistant's layer count, e.g. 3 between a 6-layer "
                     "teacher and a 1-layer student")
  init = FLAGS.assistant_init_from_layers
  config = BertStudentConfig(num_hidden_layers=FLAGS.assistant_num_layers,
                             init_from_layers=common.number_list(init, "assistant_init_from_layers") if init else None)
  if config.init_from_layers is not None and len(config.init_from_layers) != config.num_hidden_layers:
    raise ValueError(f"--assistant_init_from_layers={','.join(init)} names {len(init)} teacher layers but the "
                     f"assistant has {config.num_hidden_layers} layers; give one teacher layer per assistant layer")
  return config.validate()


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  chain = TeacherAssistantChain(common.data_config_from_flags(FLAGS), common.train_config_from_flags(FLAGS),
                                common.distill_config_from_flags(FLAGS), assistant_config_from_flags(FLAGS),
                                common.student_config_from_flags(FLAGS), strategy)
  print("\n".join(chain.run(FLAGS.do_train, FLAGS.do_eval).lines()))


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

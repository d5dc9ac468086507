"""Distils a teacher SavedModel into a smaller BERT or a BiLSTM student, querying the teacher online (or from a cache).

    python -m tf_distill.cli.distill --teacher_model=export/teacher --output_dir=runs/student \
        --student_num_layers=2 --student_init_from_layers=2,5 --temperature=2 --alpha=0.5

Intermediate losses: --layer_map=uniform --intermediate_matches=hidden_mse,attention_mse_scores; recipes are the
presets in flags/ (distilbert6, pkd_skip, tinybert4, minilm, bilstm). With --alpha=0 and no matches the same student is
trained on hard labels only (the no-distillation baseline). Writes the same files as train_teacher; export the student
with export_student. Rerunning the same command after a crash resumes from <output_dir>/resume. The library API
under it is `tf_distill.run.DistillRun`.
"""

from absl import app, flags

from tf_distill.cli import common
from tf_distill.run import DistillRun

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()
  common.define_train_flags("runs/student", default_learning_rate=1e-4, default_epochs=3)
  common.define_student_flags()


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  distill_run = DistillRun(common.data_config_from_flags(FLAGS), common.train_config_from_flags(FLAGS),
                   common.distill_config_from_flags(FLAGS), common.student_config_from_flags(FLAGS), strategy)
  distill_run.train_and_evaluate(FLAGS.do_train, FLAGS.do_eval)


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

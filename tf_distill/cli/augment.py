"""Writes an augmented copy of a task's split, so that users can see what the student will see.

    tf_distill augment --task_name=csv --data_dir=my_task --augmentation=tang:n=20 \
        --teacher_model=export/teacher --output_file=/tmp/train_aug.tsv
    tf_distill augment --augmentation=tinybert:p=0.4,k=15 --embeddings_file=glove.6B.300d.txt \
        --masked_lm_dir=bert-base-uncased --output_file=/tmp/train_aug.csv

The file (.tsv or .csv, by its extension) has a header and one row per example: `index` (the example's number in
the split), `variant` (0 = the original), the text column(s) and the label. The first line printed says which rule
and resources were used (which POS tagger, or which embedding space). Variants depend only on --seed, --epoch and
the example's index (tf_distill/augment/dataset.py).
"""

import csv
import os

from absl import app, flags

from tf_distill.augment import AugmentResources, build_augmenter, iter_augmented, parse_spec
from tf_distill.cli import common
from tf_distill.data.processors import SPLITS, processor_for

FLAGS = flags.FLAGS


def define_flags() -> None:
  common.define_data_flags()  # the task; its tokenisation flags do not matter here
  flags.DEFINE_enum("split", "train", list(SPLITS), "Which split to augment.")
  flags.DEFINE_string("output_file", None, "The augmented file to write: .tsv or .csv.")
  flags.DEFINE_integer("seed", 42, "Augmentation seed.", lower_bound=0)
  flags.DEFINE_integer("epoch", 0, "Epoch whose variants to write (0: a fixed augmented set).", lower_bound=0)
  flags.DEFINE_integer("max_examples", None, "Augment only the first N examples.", lower_bound=1)
  flags.DEFINE_bool("include_original", True, "Write each original example (variant 0) before its variants.")
  flags.DEFINE_string("teacher_model", None, "Teacher SavedModel whose input word embeddings give the neighbours.")
  common.define_augmentation_flags()


def _read_examples():
  config = common.data_config_from_flags(FLAGS, names_output_columns=True)
  examples = processor_for(config).get_examples(FLAGS.split, config.data_dir)
  return examples[:FLAGS.max_examples] if FLAGS.max_examples else examples


def main(argv) -> None:
  if len(argv) > 1:
    raise ValueError(f"augment takes flags only, got {argv[1:]}")
  if not FLAGS.augmentation:
    raise ValueError("pass --augmentation, e.g. tang:n=20 or tinybert:p=0.4,k=15")
  if not FLAGS.output_file or not FLAGS.output_file.endswith((".tsv", ".csv")):
    raise ValueError(f"--output_file must name a .tsv or .csv file to write, got {FLAGS.output_file!r}")
  spec = parse_spec(FLAGS.augmentation)
  examples = _read_examples()
  resources = AugmentResources(teacher_model=FLAGS.teacher_model, embeddings_file=FLAGS.embeddings_file,
                               masked_lm_dir=FLAGS.masked_lm_dir, pos_tagger=FLAGS.pos_tagger)
  corpus = [text for e in examples for text in (e.text_a, e.text_b) if text is not None]
  augmenter = build_augmenter(spec, resources, corpus)
  print(f"augmentation: {augmenter.description}", flush=True)
  pairs = any(e.text_b is not None for e in examples)
  header = ["index", "variant", FLAGS.text_column] + ([FLAGS.text_b_column] if pairs else []) + [FLAGS.label_column]
  tsv = FLAGS.output_file.endswith(".tsv")
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output_file)), exist_ok=True)
  tmp = FLAGS.output_file + ".tmp"
  rows = 0
  with open(tmp, "w", encoding="utf-8", newline="") as f:
    # TSV as CsvProcessor reads it: no quoting at all, so quotes and backslashes stay as they are.
    writer = (csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n") if tsv
              else csv.writer(f, lineterminator="\n"))
    writer.writerow(header)
    for a in iter_augmented(augmenter, examples, FLAGS.seed, FLAGS.epoch, FLAGS.include_original):
      texts = [a.text_a] + ([a.text_b] if pairs else [])
      if tsv:
        texts = [" ".join(t.split()) for t in texts]  # tabs and newlines cannot stand in a TSV field
      writer.writerow([a.index, a.variant] + texts + ["" if a.label is None else a.label])
      rows += 1
  os.replace(tmp, FLAGS.output_file)
  variants = rows - (len(examples) if FLAGS.include_original else 0)
  print(f"wrote {FLAGS.output_file}: {len(examples)} examples of {FLAGS.split}, {variants} variants "
        f"({variants / max(1, len(examples)):.1f} per example)")


def run() -> None:
  """Console entry point."""
  define_flags()
  app.run(common.run_main(main))


if __name__ == "__main__":
  run()

"""How fast augmented examples are generated: Tang et al.'s and TinyBERT's rules on real Rotten Tomatoes text, with
the real all-MiniLM-L6-v2 word embeddings (30522 x 384) as the neighbour space.

    PYTHONPATH=. python3 bench/augment_speed.py --num_examples=1000 --specs=tang:n=20,tinybert:n=20

The neighbour space is --teacher_model's input word embeddings, or, without it, the pretrained model's: with
`--freeze_word_embeddings` (flags/common.flags) a fine-tuned teacher keeps exactly those. Each spec augments the
examples twice, as epoch 0 (cold: every distinct word's neighbours are computed) and epoch 1 (the neighbour cache
is warm, as in every later epoch of online augmentation). Prints examples and variants per second for each.
"""

import time

from absl import app, flags

import tf_distill  # noqa: F401  pylint: disable=unused-import

from tf_distill import pretrained
from tf_distill.augment import AugmentResources, augment_examples, build_augmenter, parse_spec
from tf_distill.augment import neighbours as neighbours_lib
from tf_distill.data.processors import get_processor

flags.DEFINE_integer("num_examples", 1000, "Training examples to augment.")
flags.DEFINE_list("specs", ["tang:n=20", "tinybert:n=20"], "Augmentation specs to time.")
flags.DEFINE_string("teacher_model", None, "Teacher export for the neighbour space (default: the pretrained one's).")
flags.DEFINE_integer("seed", 0, "Augmentation seed.")
FLAGS = flags.FLAGS


def main(argv) -> None:
  del argv
  examples = get_processor("rotten_tomatoes").get_train_examples(None)[:FLAGS.num_examples]
  print(f"{len(examples)} Rotten Tomatoes training examples, "
        f"{sum(len(e.text_a.split()) for e in examples) / len(examples):.1f} words on average")
  print("| spec | epoch | examples/s | variants/s | variants per example |")
  print("|---|---|---|---|---|")
  for text in FLAGS.specs:
    spec = parse_spec(text)
    resources = AugmentResources(teacher_model=FLAGS.teacher_model, pos_tagger="none")
    space = None if FLAGS.teacher_model else neighbours_lib.from_pretrained_dir(pretrained.default_pretrained_dir(),
                                                                                 k=spec.k)
    augmenter = build_augmenter(spec, resources, [e.text_a for e in examples], space=space)
    for epoch in (0, 1):
      start = time.perf_counter()
      rows = augment_examples(augmenter, examples, FLAGS.seed, epoch, include_original=False)
      seconds = time.perf_counter() - start
      print(f"| {text} | {epoch} | {len(examples) / seconds:.0f} | {len(rows) / seconds:.0f} | "
            f"{len(rows) / len(examples):.1f} |", flush=True)
  print(f"\n{augmenter.description}")


if __name__ == "__main__":
  app.run(main)

"""Data augmentation for transfer sets: Tang et al.'s and TinyBERT's rules, chosen by a spec string.

    from tf_distill.augment import AugmentResources, augment_examples, build_augmenter, parse_spec
    augmenter = build_augmenter(parse_spec("tang:n=20"), AugmentResources(teacher_model="export/teacher"), texts)
    augmented = augment_examples(augmenter, examples, seed=42, epoch=0)

Modules: `spec` (the flag grammar), `words` (splitting, stop words), `neighbours` (embedding spaces), `pos` (taggers,
POS-guided replacement), `tang`, `tinybert`, `masked_lm`, `base` (variants and sentence pairs), `dataset`
(determinism per seed, epoch and example), `build` (resources -> augmenter).
"""

from tf_distill.augment.build import AugmentResources, build_augmenter
from tf_distill.augment.dataset import AugmentedExample, augment_examples, example_rng, iter_augmented
from tf_distill.augment.spec import canonical, parse_spec

__all__ = ["AugmentResources", "AugmentedExample", "augment_examples", "build_augmenter", "canonical",
           "example_rng", "iter_augmented", "parse_spec"]

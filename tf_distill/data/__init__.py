"""Data for distillation: task processors, offline TFDS builders, WordPiece tokenization and tf.data pipelines.

Import the modules themselves (`from tf_distill.data import processors`); this package re-exports nothing.
"""

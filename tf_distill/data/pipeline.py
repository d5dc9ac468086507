"""tf.data input pipelines over the numpy features made by `WordPieceTokenizer.encode`."""

from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_distill.data.processors import SPLITS, DataError, DataProcessor
from tf_distill.data.tokenization import FEATURE_KEYS, WordPieceTokenizer

Features = Dict[str, np.ndarray]


def make_dataset(features: Features, batch_size: int, training: bool, seed: int = 0,
                 drop_remainder: bool = False, length_buckets: Sequence[int] = (),
                 reshuffle_each_iteration: bool = True) -> tf.data.Dataset:
  """Yields `({"input_ids", "input_mask", "segment_ids"}: int32 [batch, seq_len], label_ids: int32 [batch])`.

  Feature columns besides those and `label_ids` (such as cached `teacher_logits` [n, labels]) ride along in the
  inputs dict, so they stay aligned with their examples through shuffling and bucketing.
  When `training`, examples are shuffled over the whole set (buffer = number of examples) with `seed`, in a
  new order each epoch unless `reshuffle_each_iteration` is False (then every pass has the one order that `seed`
  gives, which is what makes a resumed epoch repeatable); otherwise they keep their order. With `length_buckets`
  (ascending token counts such as (16, 32, 48)), shuffled examples are batched with others of similar real length,
  so that a train step that trims padding (`tf_distill.distiller.trim_padding`) computes on fewer padded
  positions; every batch still has the full [batch, max_seq_length] shape.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  missing = [key for key in FEATURE_KEYS + ("label_ids",) if key not in features]
  if missing:
    raise ValueError(f"features lack {missing}; build them with WordPieceTokenizer.encode")
  num_examples = len(features["label_ids"])
  lengths = {key: len(value) for key, value in features.items() if key != "label_ids"}
  if any(length != num_examples for length in lengths.values()):
    raise ValueError(f"features disagree on the number of examples: {lengths}, label_ids {num_examples}")
  if num_examples == 0:
    raise ValueError("features hold no examples; check the data split")
  inputs = {key: value for key, value in features.items() if key != "label_ids"}
  dataset = tf.data.Dataset.from_tensor_slices((inputs, features["label_ids"]))
  if training:
    dataset = dataset.shuffle(num_examples, seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
  if length_buckets:
    if list(length_buckets) != sorted(set(length_buckets)) or length_buckets[0] < 1:
      raise ValueError(f"length_buckets must be ascending positive token counts, got {list(length_buckets)}")
    dataset = dataset.bucket_by_sequence_length(
        lambda inputs, _: tf.reduce_sum(inputs["input_mask"]), bucket_boundaries=list(length_buckets),
        bucket_batch_sizes=[batch_size] * (len(length_buckets) + 1), drop_remainder=drop_remainder)
  else:
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  return dataset.prefetch(tf.data.AUTOTUNE)


def load_task_features(processor: DataProcessor, tokenizer: WordPieceTokenizer, data_dir: str,
                       max_seq_length: int, splits: Sequence[str] = SPLITS) -> Tuple[Dict[str, Features], List[str]]:
  """Reads and encodes `splits` of a task; returns ({split: features}, label_list).

  The train split is read first when asked for, so processors that infer their labels from it can do so.
  """
  features = {}
  ordered = sorted(splits, key=lambda split: split != "train")
  for split in ordered:
    examples = processor.get_examples(split, data_dir)
    if not examples:
      raise DataError(f"the {split} split of {data_dir!r} is empty; it needs at least one example")
    features[split] = tokenizer.encode(examples, max_seq_length, processor.get_labels())
  return {split: features[split] for split in splits}, processor.get_labels()

"""Checks that tell a user, before they read the table, why distillation has nothing to give on their run.

Two failures look like "distillation does not help" but are set-up problems:
- the teacher is no better than the student trained alone (a teacher fine-tuned too briefly, or the wrong task), so
  there is nothing to transfer; `teacher_warning` compares their dev accuracies;
- most tokens of the data are `[UNK]` under the teacher's vocab (a pretrained model that does not cover the text's
  language or script), so neither model sees the text; `unk_warning` counts them.
"""

from typing import Optional, Sequence

import numpy as np

UNK_WARNING_FRACTION = 0.5  # warn when more than this share of the text's tokens are [UNK]
SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")


def unk_fraction(input_ids: np.ndarray, input_mask: np.ndarray, unk_id: int, special_ids: Sequence[int]) -> float:
  """Share of the text's tokens that are `unk_id`.

  Args:
    input_ids: int [num_examples, seq_len] token ids.
    input_mask: int [num_examples, seq_len], 1 on real tokens.
    unk_id: the vocab's [UNK] id.
    special_ids: ids not counted as text ([CLS], [SEP], ...).

  Returns:
    (#real non-special tokens equal to unk_id) / (#real non-special tokens), 0.0 when there are none.
  """
  text = (np.asarray(input_mask) > 0) & ~np.isin(input_ids, list(special_ids))
  count = int(text.sum())
  return float((np.asarray(input_ids)[text] == unk_id).sum()) / count if count else 0.0


def vocab_ids(vocab_file: str) -> dict:
  """Token -> id of a WordPiece vocab file (one token a line, id = line number)."""
  with open(vocab_file, encoding="utf-8") as f:
    return {line.rstrip("\n"): i for i, line in enumerate(f)}


def unk_warning(features: dict, vocab_file: str, split: str = "test") -> Optional[str]:
  """A warning line when most tokens of `features` (input_ids/input_mask) are [UNK] under `vocab_file`, else None."""
  ids = vocab_ids(vocab_file)
  if "[UNK]" not in ids:
    return None
  fraction = unk_fraction(features["input_ids"], features["input_mask"], ids["[UNK]"],
                          [ids[t] for t in SPECIAL_TOKENS if t in ids])
  if fraction <= UNK_WARNING_FRACTION:
    return None
  return (f"{100 * fraction:.0f}% of the {split} split's tokens are [UNK] with the teacher's vocab ({vocab_file}): "
          "the pretrained model does not cover this text's language or script; fine-tune a teacher whose vocab "
          "does (a multilingual or language-specific BERT) before distilling")


def teacher_warning(teacher_dev: float, student_dev: float, student_name: str) -> Optional[str]:
  """A warning line when the teacher's dev accuracy does not beat the no-distillation student's, else None."""
  if teacher_dev > student_dev:
    return None
  return (f"the teacher's dev accuracy {teacher_dev:.4f} does not beat {student_name}'s {student_dev:.4f} (trained "
          "without distillation): distillation has nothing to transfer; fine-tune the teacher longer (flags/"
          "teacher.flags: 3 epochs, best dev checkpoint) or from a stronger pretrained model")

"""Extractive question answering (SQuAD v1.1 / v2.0): a start and an end position per question, from the span head.

Task:
  squad  the SQuAD 2.0 articles shipped in `tf_distill/data/squad2` (train, dev and test-v2.0.json.gz; README there),
         or `--data_dir` with your own train, dev and test SQuAD JSON files (v1.1 or v2.0, plain or .gz; each split
         one file whose name starts with the split: train-v1.1.json, dev.json.gz, ...).
Questions are read by `tf_distill.data.squad.read_squad` and encoded by `encode_squad` into run_squad's windows
([CLS] question [SEP] context window [SEP], `--doc_stride`, `--max_query_length`); `--max_train_examples` counts
training questions (a long context gives several windows).

The logits layout. The model (BertConfig head "span") gives float32 logits [batch, 2, seq]: row 0 the start logits,
row 1 the end logits of every position, padding at `tf_distill.bert.MASKED_LOGIT` (-10000). The labels are
label_ids int32 [batch, 2], the gold (start, end) positions (0, [CLS], for an unanswerable question or an answer
outside the window, as run_squad). Read as "two positions per example, each a softmax over seq classes", this is the
layout the rank-generic code already handles (`tf_distill.losses.logits`, `tf_distill.distiller`):
  hard CE   = sum_{b,k} -log softmax(z[b, k, :])[y[b, k]] / (2 * batch)
            = mean_b (CE_start + CE_end) / 2                             (run_squad's total_loss)
  KD ("ce") = T^2 * mean_b (CE(softmax(t_start / T), softmax(s_start / T)) + CE(..end..)) / 2
            (DistilBERT's run_squad_w_distillation, there with KL: the same gradient)
with the mask of the logits terms all ones [batch, 2]. Softmax over the last axis is over sequence positions, and the
head's MASKED_LOGIT gives padding no probability at any temperature. The alternative [batch, seq, 2] would put the
softmax over {start, end}, the wrong axis; flattening start and end into one [batch, 2 * seq] softmax would make
them compete. What differs from a tagger's [batch, seq, tags] with labels [batch, seq] -- both have rank-3 logits and
rank-2 labels -- is which axis runs over the sequence, and the head says so: `tf_distill.bert.logits_layout("span")`
is axis 2 with padding logit MASKED_LOGIT (the tagger's axis 1, padding 0). The Distiller reads its student's layout
for the mask (`position_mask`: ones, not the input mask), the label cut (`trim_labels`: none) and for padding
predictions back to full length (`pad_to_length`); the teacher cache stores the span logits sequence-first
([len, 2]) and records the axis and padding in its manifest. Nothing tests a task's name.

The metric is the official SQuAD F1 (`tf_distill.squad_metrics.squad_evaluate`) of the text that
`tf_distill.data.squad.best_spans` decodes (`--n_best_size`, `--max_answer_length`). With unanswerable dev questions
(v2.0) the null threshold is the one that maximises dev F1 (`best_f1_threshold`): dev exact/f1 are at it and test
exact/f1 at the same threshold, with HasAns_* / NoAns_* splits and `null_threshold` in eval_results.json. The dev
F1 picks the best checkpoint (`val_f1`, `tf_distill.callbacks.DevScore`). Exports: serving_default gives the logits
[batch, 2, seq], probabilities (softmax over positions), start_logits and end_logits [batch, seq]; there is no text
signature yet, and student exports (serving_text with question/context, parity, TFLite) are not supported yet.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.callbacks import DevScore
from tf_distill.configs import DataConfig
from tf_distill.data.squad import SquadError, SquadFeatures, best_spans, encode_squad, gold_answers, read_squad
from tf_distill.data.tokenization import WordPieceTokenizer
from tf_distill.squad_metrics import squad_evaluate
from tf_distill.tasks.base import Features, TaskData, TaskType, Texts, check_task_labels

LABELS = ("start", "end")  # the two rows of the span logits
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "squad2")
NOT_EXPORTABLE = ("exporting span students is not supported yet (issue 34): the QA task type has no serving_text "
                  "(question, context -> answer), parity or TFLite check; export the teacher with export_teacher")
NO_TRANSFER_SET = ("--unlabeled_data and --augmentation are not supported for question answering yet (issue 34); "
                   "drop them")


def find_squad_file(data_dir: str, split: str) -> str:
  """The one file in `data_dir` whose name starts with `split` and ends in .json or .json.gz."""
  if not os.path.isdir(data_dir):
    raise SquadError(f"data_dir {data_dir!r} is not a directory; pass the directory that holds the train, dev and "
                     "test SQuAD JSON files")
  found = sorted(name for name in os.listdir(data_dir)
                 if name.startswith(split) and name.endswith((".json", ".json.gz")))
  if not found:
    raise SquadError(f"no {split} file ({split}*.json or {split}*.json.gz) in {data_dir}; it contains: "
                     f"{sorted(os.listdir(data_dir))}")
  if len(found) > 1:
    raise SquadError(f"{data_dir} has {len(found)} {split} files {found}; keep only one")
  return os.path.join(data_dir, found[0])


def best_f1_threshold(gold: Dict[str, List[str]], predictions: Dict[str, str], null_odds: Dict[str, float]) -> float:
  """The null threshold t at which `squad_evaluate(gold, predictions, null_odds, t)["f1"]` is its `best_f1`.

  That is the official `best_f1_thresh`, except when answering no question at all scores best: find_best_thresh
  then returns its starting value 0.0, which means "answer none" only for null-odds that are all > 0 (the official
  script's na_prob in [0, 1]); run_squad's null_odds = null score - best span score are often all negative, so here
  that case is min(null_odds) - 1, below every question's null-odds.
  """
  evaluated = squad_evaluate(gold, predictions, null_odds)
  threshold = evaluated["best_f1_thresh"]
  if squad_evaluate(gold, predictions, null_odds, threshold)["f1"] < evaluated["best_f1"] - 1e-9:
    finite = [odds for odds in null_odds.values() if np.isfinite(odds)]
    threshold = min(finite) - 1.0 if finite else 0.0
  return float(threshold)


@dataclasses.dataclass(frozen=True)
class SquadSplit:
  """What scoring a split reads besides its model inputs: its windows (questions, contexts, offsets) and the
  decoding settings."""
  features: SquadFeatures
  n_best_size: int
  max_answer_length: int

  def scores(self, logits: np.ndarray, null_threshold: Optional[float] = None) -> Dict:
    """`squad_evaluate` of the spans decoded from `logits` [windows, 2, seq]. For a split with unanswerable
    questions: at `null_threshold`, or (None) at the threshold maximising this split's F1 (`best_f1_threshold`),
    with the threshold used under "null_threshold"; a v1.1 split answers every question."""
    logits = np.asarray(logits)
    spans = best_spans(logits[:, 0], logits[:, 1], self.features, self.n_best_size, self.max_answer_length)
    gold = gold_answers(self.features.examples)
    predictions = {qid: span.text for qid, span in spans.items()}
    if not any(example.is_impossible for example in self.features.examples) and null_threshold is None:
      return squad_evaluate(gold, predictions)
    null_odds = {qid: span.null_odds for qid, span in spans.items()}
    if null_threshold is None:
      null_threshold = best_f1_threshold(gold, predictions, null_odds)
    result = squad_evaluate(gold, predictions, null_odds, null_threshold)
    result = {key: value for key, value in result.items() if not key.startswith("best_")}
    return {**result, "null_threshold": float(null_threshold)}


class QuestionAnswering(TaskType):
  """Extractive QA with a span head, as Google BERT's run_squad.py."""

  task_names = ("squad",)
  head = "span"
  metric = "f1"
  metric_title = "SQuAD F1"
  unit = "questions"
  data_flags = ("doc_stride", "max_query_length", "max_answer_length", "n_best_size")

  def read(self, config: DataConfig, split: str) -> List:
    return read_squad(find_squad_file(config.data_dir or SHIPPED_DIR, split))

  def load_data(self, config: DataConfig, splits: Sequence[str] = ("train", "dev", "test"),
                max_train_examples: Optional[int] = None) -> TaskData:
    """Each split's windows: features input_ids, input_mask, segment_ids int32 [n, L] and label_ids int32 [n, 2]
    (start, end); `TaskData.examples[split]` the split's `SquadSplit`. `max_train_examples` counts questions."""
    check_task_labels(config, LABELS)
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    features, examples = {}, {}
    for split in splits:
      questions = self.read(config, split)
      if split == "train" and max_train_examples:
        questions = questions[:max_train_examples]
      windows = encode_squad(tokenizer, questions, config.max_seq_length, config.doc_stride, config.max_query_length)
      inputs = windows.inputs
      features[split] = {key: inputs[key] for key in ("input_ids", "input_mask", "segment_ids")}
      features[split]["label_ids"] = np.stack([inputs["start_positions"], inputs["end_positions"]], axis=1)
      examples[split] = SquadSplit(windows, config.n_best_size, config.max_answer_length)
    return TaskData(features, list(LABELS), examples=examples)

  def evaluate(self, logits: Dict[str, np.ndarray], data: TaskData) -> Dict:
    """Dev scores at the dev-chosen null threshold, test scores at the same threshold (module docstring)."""
    results, threshold = {}, None
    for split in sorted(logits, key=lambda name: name != "dev"):  # dev first: it sets the threshold
      scores = data.examples[split].scores(logits[split], None if split == "dev" else threshold)
      threshold = scores.get("null_threshold", threshold) if split == "dev" else threshold
      results.update({f"{split}_{key}": value for key, value in scores.items()})
    return results

  def score(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Dict:
    raise ValueError("question_answering scores decoded answer text, which the features alone do not hold; call "
                     "evaluate(logits, data) with the TaskData of load_data")

  def dev_callbacks(self, data: TaskData, batch_size: int):
    dev = data.examples["dev"]
    return (DevScore(self.monitor, lambda logits: dev.scores(logits)[self.metric], data.features["dev"], batch_size),)

  def training_texts(self, config: DataConfig, max_train_examples: Optional[int] = None):
    raise ValueError(NO_TRANSFER_SET)

  def encode_unlabeled(self, tokenizer: WordPieceTokenizer, examples, max_seq_length: int):
    raise ValueError(NO_TRANSFER_SET)

  # ------------------------------------------------------------------------------- exports (tf_distill.export)

  def serving_outputs(self, logits) -> Dict:
    """start_logits and end_logits float32 [batch, seq]: the rows of the span logits [batch, 2, seq]."""
    return {"start_logits": logits[:, 0], "end_logits": logits[:, 1]}

  def text_signature(self, serve, encoder, metadata: Dict):
    """None: no serving_text yet (a teacher exports without one; student exports stop at `export_examples`)."""
    del serve, encoder, metadata
    return None

  def export_examples(self, config: DataConfig, split: str, num_examples: int,
                      seed: Optional[int] = None) -> Tuple[Texts, Features]:
    raise ValueError(NOT_EXPORTABLE)

  def quality(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Optional[float]:
    raise ValueError(NOT_EXPORTABLE)

  def scored(self, logits: np.ndarray, features: Features) -> np.ndarray:
    raise ValueError(NOT_EXPORTABLE)

  def text_parity(self, outputs: Dict[str, np.ndarray], features: Features, logits: np.ndarray):
    raise ValueError(NOT_EXPORTABLE)

  def signature_outputs(self, num_labels: int) -> Dict:
    """serving_default only: logits and probabilities [batch, 2, seq], start_logits and end_logits [batch, seq]."""
    outputs = {name: ("float32", [None, num_labels, None]) for name in ("logits", "probabilities")}
    outputs.update({name: ("float32", [None, None]) for name in ("start_logits", "end_logits")})
    return {"serving_default": outputs}

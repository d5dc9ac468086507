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
F1 picks the best checkpoint (`val_f1`, `tf_distill.callbacks.DevScore`); `--null_threshold` fixes the threshold
instead.

Exports. serving_default gives the logits [batch, 2, seq], probabilities (softmax over positions), start_logits and
end_logits [batch, seq]. serving_text takes question and context strings and returns the answer, its character
offsets in the context, its score and null_odds (`text_signature.question_answering_text_function`: one window per
question, every valid pair searched, the run's dev threshold from the export's metadata). export_student measures
the SavedModel and TFLite files on the test questions' windows (`export_features`: besides the model inputs, what
scoring reads -- windows to questions, piece offsets, the contexts and gold answers, the decoding settings -- so
that verify-export and report score a file without the data): parity compares the start and end logits at every
real position, and a quantised file that loses more than --max_accuracy_drop points of SQuAD F1 is not shipped.
"""

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.callbacks import DevScore
from tf_distill.configs import DataConfig
from tf_distill.data.processors import InputExample
from tf_distill.data.squad import (Answer, SquadError, SquadExample, SquadFeatures, best_spans, encode_squad,
                                   gold_answers, read_squad)
from tf_distill.data.tokenization import FEATURE_KEYS, WordPieceTokenizer
from tf_distill.squad_metrics import squad_evaluate
from tf_distill.export import text_signature
from tf_distill.tasks.base import Features, TaskData, TaskType, Texts, check_task_labels, sample

LABELS = ("start", "end")  # the two rows of the span logits
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "squad2")
NO_CONTEXT = ("question answering reads a question and its context per unlabeled example; pass a .csv or .tsv with "
              "both, e.g. --unlabeled_data=pairs.csv --text_column=question --text_b_column=context")


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
  """A null threshold t at which `squad_evaluate(gold, predictions, null_odds, t)["f1"]` is its `best_f1`.

  The official `best_f1_thresh` is the null-odds of one question, which a threshold equal to it still answers
  (answer "" where null_odds > t); every t up to the next higher null-odds scores the same, so this returns the
  midpoint of that interval (the official value + 1 when no question has higher null-odds). At the official value a
  recomputation of the same model's logits (another batch size, another CPU's kernels) moves that question's
  null-odds by ~1e-6 and can flip its answer; the midpoint keeps the dev score it was chosen for. When answering no
  question at all scores best, find_best_thresh returns its starting value 0.0, which means "answer none" only for
  null-odds that are all > 0 (the official script's na_prob in [0, 1]); run_squad's null_odds = null score - best
  span score are often all negative, so here that case is min(null_odds) - 1, below every question's null-odds.
  """
  evaluated = squad_evaluate(gold, predictions, null_odds)
  threshold = evaluated["best_f1_thresh"]
  finite = sorted(odds for odds in null_odds.values() if np.isfinite(odds))
  if squad_evaluate(gold, predictions, null_odds, threshold)["f1"] < evaluated["best_f1"] - 1e-9:
    return float(finite[0] - 1.0) if finite else 0.0
  higher = [odds for odds in finite if odds > threshold]
  return float((threshold + higher[0]) / 2.0 if higher else threshold + 1.0)


@dataclasses.dataclass(frozen=True)
class SquadSplit:
  """What scoring a split reads besides its model inputs: its windows (questions, contexts, offsets) and the
  decoding settings."""
  features: SquadFeatures
  n_best_size: int
  max_answer_length: int
  null_threshold: Optional[float] = None  # --null_threshold; None: chosen on dev

  def scores(self, logits: np.ndarray, null_threshold: Optional[float] = None) -> Dict:
    """`squad_evaluate` of the spans decoded from `logits` [windows, 2, seq]. For a split with unanswerable
    questions: at `null_threshold` (else the split's own), or (both None) at the threshold maximising this split's
    F1 (`best_f1_threshold`), with the threshold used under "null_threshold"; a v1.1 split answers every question."""
    logits = np.asarray(logits)
    null_threshold = self.null_threshold if null_threshold is None else null_threshold
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
  scored_unit = "positions"
  data_flags = ("doc_stride", "max_query_length", "max_answer_length", "n_best_size", "null_threshold",
                "drop_unanswerable")

  def read(self, config: DataConfig, split: str) -> List:
    """The split's questions in file order; with `drop_unanswerable` its answerable ones only (v1.1)."""
    path = find_squad_file(config.data_dir or SHIPPED_DIR, split)
    questions = read_squad(path)
    if not config.drop_unanswerable:
      return questions
    answerable = [question for question in questions if not question.is_impossible]
    if not answerable:
      raise SquadError(f"{path}: every question is unanswerable, so --drop_unanswerable leaves none; drop the flag "
                       "or pass a file with answerable questions")
    return answerable

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
      features[split] = window_features(windows)
      examples[split] = SquadSplit(windows, config.n_best_size, config.max_answer_length, config.null_threshold)
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

  def training_texts(self, config: DataConfig, max_train_examples: Optional[int] = None) -> List[InputExample]:
    """Each (first N) training question as text_a and its context as text_b: augmentation makes variants of both,
    and the teacher gives each variant pair its start and end distributions."""
    return [InputExample(guid=f"train-{i}", text_a=question.question, text_b=question.context)
            for i, question in enumerate(self.read(config, "train")[:max_train_examples or None])]

  def encode_unlabeled(self, tokenizer: WordPieceTokenizer, examples: Sequence[InputExample],
                       config: DataConfig) -> Tuple[Features, np.ndarray]:
    """(question, context) pairs -- text_a and text_b, e.g. `--unlabeled_data=pairs.csv --text_column=question
    --text_b_column=context` -- as run_squad's windows with label_ids -1 [rows, 2]: a transfer set the teacher
    labels; a long context gives several rows."""
    if any(example.text_b is None for example in examples):
      raise ValueError(NO_CONTEXT)
    questions = [SquadExample(example.guid, example.text_a, example.text_b, ()) for example in examples]
    windows = encode_squad(tokenizer, questions, config.max_seq_length, config.doc_stride, config.max_query_length)
    features = {**window_features(windows), "label_ids": np.full([len(windows), 2], -1, np.int32)}
    return features, windows.example_index

  # ------------------------------------------------------------------------------- exports (tf_distill.export)

  def serving_outputs(self, logits) -> Dict:
    """start_logits and end_logits float32 [batch, seq]: the rows of the span logits [batch, 2, seq]."""
    return {"start_logits": logits[:, 0], "end_logits": logits[:, 1]}

  def text_signature(self, serve, encoder, metadata: Dict):
    """question, context -> answer and its character offsets (`text_signature.question_answering_text_function`),
    with the run's max_query_length, max_answer_length and null threshold (export metadata; a teacher exported
    from another toolkit has none: the run_squad defaults, every question answered)."""
    return text_signature.question_answering_text_function(
        serve, encoder, int(metadata.get("max_query_length", DataConfig.max_query_length)),
        int(metadata.get("max_answer_length", DataConfig.max_answer_length)), metadata.get("null_threshold"))

  def export_examples(self, config: DataConfig, split: str, num_examples: int,
                      seed: Optional[int] = None) -> Tuple[Texts, Features]:
    """`num_examples` questions of `split` as {"question": [...], "context": [...]} and their windows' features
    (`export_features`)."""
    questions = sample(self.read(config, split), num_examples, seed)
    tokenizer = WordPieceTokenizer(config.vocab_file, do_lower_case=config.do_lower_case)
    windows = encode_squad(tokenizer, questions, config.max_seq_length, config.doc_stride, config.max_query_length)
    texts = {"question": [q.question for q in questions], "context": [q.context for q in questions]}
    return texts, export_features(SquadSplit(windows, config.n_best_size, config.max_answer_length,
                                             config.null_threshold))

  def quality(self, logits: np.ndarray, features: Features, labels: Sequence[str]) -> Optional[float]:
    """SQuAD F1 as a fraction, at the run's null threshold (else each model's best; `SquadSplit.scores`)."""
    return self.report_scores(logits, features, labels)[0]

  def report_scores(self, logits: np.ndarray, features: Features,
                    labels: Sequence[str]) -> Tuple[Optional[float], Dict[str, float]]:
    """F1 and exact match as fractions, from one decoding at the same threshold."""
    scores = split_of_features(features).scores(logits)
    return scores["f1"] / 100.0, {"exact match": scores["exact"] / 100.0}

  def scored(self, logits: np.ndarray, features: Features) -> np.ndarray:
    """The (start, end) logits [m, 2] at every real position of every window."""
    return np.moveaxis(np.asarray(logits), 1, 2)[np.asarray(features["input_mask"]) == 1]

  def text_inputs(self, metadata: Dict) -> Tuple[str, ...]:
    return ("question", "context")

  def sample_inputs(self, texts, texts_b, metadata: Dict, tokenizer: WordPieceTokenizer) -> Tuple[Texts, Features]:
    """Each of `texts` as a context asked the first words of the matching `texts_b` (no gold answer: short enough
    for the context to get a window at any max_seq_length >= 16), with its windows as the export's settings
    (metadata) cut them."""
    texts_b = [" ".join(text.split()[:4]) for text in texts_b]
    settings = {name: metadata[name] for name in self.data_flags if name in metadata}
    config = DataConfig(task_name="squad", max_seq_length=int(metadata["max_seq_length"]), **settings)
    questions = [SquadExample(f"sample-{i}", question, context, ())
                 for i, (context, question) in enumerate(zip(texts, texts_b))]
    windows = encode_squad(tokenizer, questions, config.max_seq_length, config.doc_stride, config.max_query_length)
    return ({"question": list(texts_b[:len(texts)]), "context": list(texts)},
            export_features(SquadSplit(windows, config.n_best_size, config.max_answer_length, config.null_threshold)))

  def with_export_settings(self, features: Features, metadata: Dict) -> Features:
    """The export's n_best_size, max_answer_length and null_threshold (its metadata's data flags) in place of the
    features' own (`export_features`)."""
    n_best_size, max_answer_length = (int(v) for v in features["decoding"])
    threshold = metadata.get("null_threshold", float(features["null_threshold"][0]))
    return {**features, "decoding": np.array([metadata.get("n_best_size", n_best_size),
                                              metadata.get("max_answer_length", max_answer_length)], np.int32),
            "null_threshold": np.array([np.nan if threshold is None else threshold], np.float32)}

  def labelled(self, features: Features) -> int:
    """The questions (each has its gold answers, or none for an unanswerable one)."""
    return len(features["question_contexts"])

  def text_parity(self, outputs: Dict[str, np.ndarray], features: Features, logits: np.ndarray):
    """The start and end logits at the real positions of the questions whose context fits one window, from
    `logits` (serving_default on their features) and from the signature's start_logits / end_logits (one window
    per question: the same sequence)."""
    example_index = np.asarray(features["example_index"])
    whole = np.bincount(example_index, minlength=len(features["question_contexts"]))[example_index] == 1
    rows, positions = np.nonzero((np.asarray(features["input_mask"]) == 1) & whole[:, None])
    questions = example_index[rows]
    reference = np.asarray(logits)[rows, :, positions]
    candidate = np.stack([np.asarray(outputs["start_logits"])[questions, positions],
                          np.asarray(outputs["end_logits"])[questions, positions]], axis=1)
    return reference, candidate

  def signature_outputs(self, num_labels: int) -> Dict:
    """serving_default: logits and probabilities [batch, 2, seq], start_logits and end_logits [batch, seq];
    serving_text: answer, answer_start, answer_end, score, null_odds [batch], start_logits, end_logits."""
    outputs = {name: ("float32", [None, num_labels, None]) for name in ("logits", "probabilities")}
    outputs.update({name: ("float32", [None, None]) for name in ("start_logits", "end_logits")})
    text = {"answer": ("string", [None]), "answer_start": ("int32", [None]), "answer_end": ("int32", [None]),
            "score": ("float32", [None]), "null_odds": ("float32", [None]),
            "start_logits": ("float32", [None, None]), "end_logits": ("float32", [None, None])}
    return {"serving_default": outputs, "serving_text": text}


def window_features(windows: SquadFeatures) -> Features:
  """The model inputs of `windows` and label_ids int32 [n, 2], the gold (start, end) positions."""
  inputs = windows.inputs
  return {**{key: inputs[key] for key in FEATURE_KEYS},
          "label_ids": np.stack([inputs["start_positions"], inputs["end_positions"]], axis=1)}


def export_features(split: SquadSplit) -> Features:
  """A split as the arrays an export measures and verify-export re-reads (`parity.write_examples`): the windows'
  input_ids, input_mask, segment_ids, label_ids [w, 2], example_index, token_offsets, token_is_max_context; per
  question its context (question_contexts), gold answers (question_answers, a JSON list) and unanswerability; and
  the decoding settings (n_best_size, max_answer_length; null_threshold, NaN for none)."""
  windows = split.features
  return {**window_features(windows), "example_index": windows.example_index, "token_offsets": windows.token_offsets,
          "token_is_max_context": windows.token_is_max_context,
          "question_contexts": np.array([q.context for q in windows.examples], dtype=str),
          "question_answers": np.array([json.dumps([a.text for a in q.answers]) for q in windows.examples], dtype=str),
          "question_impossible": np.array([q.is_impossible for q in windows.examples], np.int32),
          "decoding": np.array([split.n_best_size, split.max_answer_length], np.int32),
          "null_threshold": np.array([np.nan if split.null_threshold is None else split.null_threshold], np.float32)}


def split_of_features(features: Features) -> SquadSplit:
  """The `SquadSplit` that `export_features` wrote (questions rebuilt from their contexts and answers; ids are their
  numbers), to score logits on exported examples without the data."""
  questions = tuple(SquadExample(str(i), "", str(context), tuple(Answer(text, -1) for text in json.loads(answers)),
                                 bool(impossible))
                    for i, (context, answers, impossible) in enumerate(zip(
                        features["question_contexts"], features["question_answers"], features["question_impossible"])))
  inputs = {key: features[key] for key in FEATURE_KEYS}
  windows = SquadFeatures(inputs, np.asarray(features["example_index"]), np.asarray(features["token_offsets"]),
                          np.asarray(features["token_is_max_context"]), questions)
  threshold = float(np.asarray(features["null_threshold"])[0])
  n_best_size, max_answer_length = (int(v) for v in features["decoding"])
  return SquadSplit(windows, n_best_size, max_answer_length, None if np.isnan(threshold) else threshold)

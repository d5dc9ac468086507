"""SQuAD v1.1 / v2.0 extractive QA: the JSON reader, run_squad's windowed features and n-best span decoding.

The file, as the official train/dev files (UTF-8 JSON, plain or gzip-compressed, found by its magic bytes):
  {"version": "v2.0", "data": [{"title": ..., "paragraphs": [{"context": ..., "qas": [
      {"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": <character offset>}, ...],
       "is_impossible": false}]}]}]}
`is_impossible` (v2.0 only; absent means false) marks an unanswerable question, whose `answers` are empty (its
`plausible_answers` are ignored). Every answer must be the context's substring at `answer_start`:
`context[answer_start:answer_start + len(text)] == text`. Every problem raises `SquadError` with one line naming the
file, the place (data[i].paragraphs[j].qas[k] or the question id) and the fix.

Features (`encode_squad`), as Google BERT's `run_squad.py` builds them, for a max_seq_length L:
  [CLS] question [SEP] context window [SEP] [PAD] ...
The question is cut to its first `max_query_length` pieces (Q). The context's pieces (C) are cut into windows of
W = L - Q - 3 pieces whose starts advance by S = min(doc_stride, W): 0, S, 2S, ... until a window reaches the last
piece (`token_alignment.window_spans`). Pieces come from the teacher's `WordPieceTokenizer` over the whole context,
each with its character span in the original context (so "Tower." is "tower" [12, 17) and "." [17, 18)); this is
run_squad's whitespace words (`doc_tokens`, `char_to_word_offset`) refined to the piece, so that a decoded span is
the exact original substring, punctuation and accents included, without run_squad's `get_final_text` re-alignment.
Each context piece has a best window, the one where it has the most context:
  score(window) = min(p - start, start + length - 1 - p) + 0.01 * length,  the first on ties
(`token_alignment.max_context_span`, run_squad's `_check_is_max_context`). For n windows over all questions:
  input_ids:       int32 [n, L]  the sequence above, [PAD] = 0
  input_mask:      int32 [n, L]  1 up to the last [SEP], 0 on padding
  segment_ids:     int32 [n, L]  0 for [CLS] question [SEP], 1 for the window and its [SEP], 0 on padding
  start_positions: int32 [n]     the answer's first piece in the sequence (position >= Q + 2), or 0 ([CLS]) when the
  end_positions:   int32 [n]     question is unanswerable or the answer is not wholly inside the window
  example_index:   int32 [n]     the window's question, an index into `examples`
  token_offsets:   int32 [n, L, 2]  [start, end) character offsets in the context of each window piece; -1 elsewhere
  token_is_max_context: int32 [n, L]  1 where the piece is in its best window, 0 elsewhere
So each context piece has token_is_max_context = 1 in exactly one window. The answer's pieces are the first piece
ending after `answer_start` and the last piece starting before its end; training and eval use the first answer.

Decoding (`best_spans`): per window, the `n_best` highest start and end logits are paired; a pair (s, e) is a
candidate when both are context pieces, s is in its best window, s <= e and e - s + 1 <= max_answer_length; its
score is start_logits[s] + end_logits[e]. The best candidate over the question's windows gives the answer text,
`context[token_offsets[s][0]:token_offsets[e][1]]`, and its offsets. The null score (v2.0) is the minimum over the
question's windows of start_logits[0] + end_logits[0], and null_odds = null_score - best score is what
`squad_metrics.best_threshold` thresholds (run_squad's `score_diff`).
"""

import bisect
import dataclasses
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tf_distill.data.raw_files import read_bytes
from tf_distill.data.token_alignment import max_context_span, window_spans
from tf_distill.data.tokenization import FEATURE_KEYS, WordPieceTokenizer

SQUAD_FEATURE_KEYS = FEATURE_KEYS + ("start_positions", "end_positions")


class SquadError(ValueError):
  """A SQuAD file is malformed; the message names the file, the question and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Answer:
  """`text` is `context[start:end]`."""
  text: str
  start: int

  @property
  def end(self) -> int:
    return self.start + len(self.text)


@dataclasses.dataclass(frozen=True)
class SquadExample:
  """One question on one context; `answers` is empty exactly when `is_impossible`."""
  qas_id: str
  question: str
  context: str
  answers: Tuple[Answer, ...]
  is_impossible: bool = False
  title: str = ""


def read_squad(path: str) -> List[SquadExample]:
  """The questions of a SQuAD v1.1 or v2.0 JSON file (module docstring), in file order.

  Raises:
    SquadError: for a missing file, damaged gzip, invalid JSON, a missing or mistyped key, a repeated question id, an
      answerable question without answers, an unanswerable one with answers, an empty answer or one whose text is not
      the context at its answer_start, or a file without questions.
  """
  root = _load_json(path)
  articles = _field(path, "the file", root, "data", list)
  examples, seen = [], set()
  for i, article in enumerate(articles):
    where = f"data[{i}]"
    title = article.get("title", "") if isinstance(article, dict) else ""
    for j, paragraph in enumerate(_field(path, where, article, "paragraphs", list)):
      where_p = f"{where}.paragraphs[{j}]"
      context = _field(path, where_p, paragraph, "context", str)
      for k, qa in enumerate(_field(path, where_p, paragraph, "qas", list)):
        qas_id = str(_field(path, f"{where_p}.qas[{k}]", qa, "id", (str, int)))
        where_q = f"question {qas_id!r} ({where_p}.qas[{k}])"
        if qas_id in seen:
          raise SquadError(f"{path}: {where_q}: the id is used by an earlier question; give every question its own id")
        seen.add(qas_id)
        question = _field(path, where_q, qa, "question", str)
        is_impossible = _field(path, where_q, qa, "is_impossible", bool, default=False)
        raw_answers = _field(path, where_q, qa, "answers", list, default=[])
        if is_impossible and raw_answers:
          raise SquadError(f"{path}: {where_q}: is_impossible is true but it has {len(raw_answers)} answer(s); empty "
                           "its answers (v2.0 keeps them as plausible_answers) or set is_impossible to false")
        if not is_impossible and not raw_answers:
          raise SquadError(f"{path}: {where_q}: no answers; add one ({{\"text\", \"answer_start\"}}) or, in a v2.0 "
                           "file, set \"is_impossible\": true")
        answers = tuple(_answer(path, where_q, context, a, n) for n, a in enumerate(raw_answers))
        examples.append(SquadExample(qas_id, question, context, answers, is_impossible, title))
  if not examples:
    raise SquadError(f"{path}: no questions under data[].paragraphs[].qas[]; pass a SQuAD v1.1 or v2.0 file")
  return examples


def gold_answers(examples: Sequence[SquadExample]) -> Dict[str, List[str]]:
  """{question id: its answer texts} ([] for unanswerable), the `gold` of `squad_metrics.squad_evaluate`."""
  return {example.qas_id: [answer.text for answer in example.answers] for example in examples}


@dataclasses.dataclass(frozen=True)
class SquadFeatures:
  """The windows of `encode_squad` (module docstring): `inputs` holds `SQUAD_FEATURE_KEYS`, the model's inputs and
  labels; the rest maps windows back to `examples` and their contexts."""
  inputs: Dict[str, np.ndarray]
  example_index: np.ndarray
  token_offsets: np.ndarray
  token_is_max_context: np.ndarray
  examples: Tuple[SquadExample, ...]

  def __len__(self) -> int:
    return len(self.example_index)


def encode_squad(tokenizer: WordPieceTokenizer, examples: Sequence[SquadExample], max_seq_length: int = 384,
                 doc_stride: int = 128, max_query_length: int = 64) -> SquadFeatures:
  """run_squad's windowed features of `examples` (module docstring).

  Args:
    tokenizer: the teacher's tokenizer.
    examples: from `read_squad`.
    max_seq_length: L, the sequence length.
    doc_stride: S, pieces between window starts (capped at the window length).
    max_query_length: Q at most; longer questions keep their first pieces.
  """
  if max_query_length < 1:
    raise ValueError(f"max_query_length must be >= 1, got {max_query_length}")
  if doc_stride < 1:
    raise ValueError(f"doc_stride must be >= 1 so that windows advance, got {doc_stride}")
  encoder = tokenizer._tokenizer  # pylint: disable=protected-access  (piece offsets; tokenize() returns text only)
  questions = encoder.encode_batch([example.question for example in examples], add_special_tokens=False)
  contexts = encoder.encode_batch([example.context for example in examples], add_special_tokens=False)
  rows = []  # (example index, ids, segments, offsets, max context flags, start, end) per window.
  for index, (example, question, context) in enumerate(zip(examples, questions, contexts)):
    query = list(question.ids[:max_query_length])
    offsets = [tuple(span) for span in context.offsets]
    window = max_seq_length - len(query) - 3
    if window < 1:
      raise ValueError(f"question {example.qas_id!r}: max_seq_length {max_seq_length} leaves no context piece after "
                       f"[CLS], its {len(query)} question pieces and two [SEP]; pass max_seq_length >= "
                       f"{len(query) + 4} or a smaller max_query_length")
    spans = window_spans(len(offsets), window, min(doc_stride, window))
    best_window = [max_context_span(spans, position) for position in range(len(offsets))]
    answer_pieces = _answer_pieces(example, offsets) if example.answers and not example.is_impossible else None
    shift = len(query) + 2  # the sequence position of the window's first piece
    for span_index, (start, length) in enumerate(spans):
      ids = [tokenizer.cls_id] + query + [tokenizer.sep_id] + list(context.ids[start:start + length]) + [
          tokenizer.sep_id]
      segments = [0] * shift + [1] * (length + 1)
      token_offsets = [(-1, -1)] * shift + offsets[start:start + length] + [(-1, -1)]
      flags = [0] * shift + [int(best_window[p] == span_index) for p in range(start, start + length)] + [0]
      start_position = end_position = 0
      if answer_pieces is not None and start <= answer_pieces[0] and answer_pieces[1] < start + length:
        start_position, end_position = answer_pieces[0] - start + shift, answer_pieces[1] - start + shift
      rows.append((index, ids, segments, token_offsets, flags, start_position, end_position))
  n = len(rows)
  inputs = {key: np.zeros([n, max_seq_length], np.int32) for key in FEATURE_KEYS}
  inputs["start_positions"] = np.zeros([n], np.int32)
  inputs["end_positions"] = np.zeros([n], np.int32)
  example_index = np.zeros([n], np.int32)
  token_offsets = np.full([n, max_seq_length, 2], -1, np.int32)
  is_max_context = np.zeros([n, max_seq_length], np.int32)
  for i, (index, ids, segments, offsets, flags, start_position, end_position) in enumerate(rows):
    length = len(ids)
    inputs["input_ids"][i, :length] = ids
    inputs["input_mask"][i, :length] = 1
    inputs["segment_ids"][i, :length] = segments
    inputs["start_positions"][i], inputs["end_positions"][i] = start_position, end_position
    example_index[i] = index
    token_offsets[i, :length] = offsets
    is_max_context[i, :length] = flags
  return SquadFeatures(inputs, example_index, token_offsets, is_max_context, tuple(examples))


@dataclasses.dataclass(frozen=True)
class SpanPrediction:
  """A question's best span: `text` = context[start:end] ("" with start = end = 0 when no span is valid), its
  score start_logit + end_logit, the null score and null_odds = null_score - score (module docstring)."""
  text: str
  start: int
  end: int
  score: float
  null_score: float
  null_odds: float


def best_spans(start_logits: np.ndarray, end_logits: np.ndarray, features: SquadFeatures, n_best: int = 20,
               max_answer_length: int = 30) -> Dict[str, SpanPrediction]:
  """Each question's best span over its windows (module docstring).

  Args:
    start_logits: float [n, L], the model's start logits for the n windows of `features`, in order.
    end_logits: float [n, L], the end logits.
    features: from `encode_squad`.
    n_best: how many top start and top end positions per window are paired.
    max_answer_length: the longest span in pieces.

  Returns:
    {question id: SpanPrediction}, every question of `features.examples`.
  """
  start_logits, end_logits = np.asarray(start_logits, np.float64), np.asarray(end_logits, np.float64)
  expected = features.token_is_max_context.shape
  if start_logits.shape != expected or end_logits.shape != expected:
    raise ValueError(f"start_logits {start_logits.shape} and end_logits {end_logits.shape} must both be {expected} "
                     "[windows, max_seq_length]; pass the logits of exactly these features, in order")
  if n_best < 1 or max_answer_length < 1:
    raise ValueError(f"n_best and max_answer_length must be >= 1, got {n_best} and {max_answer_length}")
  best: Dict[int, Tuple[float, int, int, int]] = {}  # example -> (score, window, start, end)
  null: Dict[int, float] = {}
  for row in range(len(features)):
    index = int(features.example_index[row])
    null[index] = min(null.get(index, np.inf), start_logits[row, 0] + end_logits[row, 0])
    in_context = features.token_offsets[row, :, 0] >= 0
    starts = np.argsort(-start_logits[row], kind="stable")[:n_best]
    ends = np.argsort(-end_logits[row], kind="stable")[:n_best]
    for s in starts:
      if not in_context[s] or not features.token_is_max_context[row, s]:
        continue
      for e in ends:
        if not in_context[e] or e < s or e - s + 1 > max_answer_length:
          continue
        score = start_logits[row, s] + end_logits[row, e]
        if index not in best or score > best[index][0]:
          best[index] = (score, row, int(s), int(e))
  result = {}
  for index, example in enumerate(features.examples):
    null_score = float(null.get(index, 0.0))
    if index not in best:
      result[example.qas_id] = SpanPrediction("", 0, 0, -np.inf, null_score, np.inf)
      continue
    score, row, s, e = best[index]
    char_start, char_end = int(features.token_offsets[row, s, 0]), int(features.token_offsets[row, e, 1])
    result[example.qas_id] = SpanPrediction(example.context[char_start:char_end], char_start, char_end, float(score),
                                            null_score, null_score - float(score))
  return result


def span_predictions(spans: Dict[str, SpanPrediction], null_threshold: Optional[float] = None) -> Dict[str, str]:
  """{question id: answer text}; with `null_threshold` (v2.0), "" where null_odds > null_threshold."""
  return {qid: ("" if null_threshold is not None and span.null_odds > null_threshold else span.text)
          for qid, span in spans.items()}


def _answer_pieces(example: SquadExample, offsets: List[Tuple[int, int]]) -> Tuple[int, int]:
  """(first, last) context piece of the first answer: the first ending after its start, the last starting before
  its end."""
  answer = example.answers[0]
  first = bisect.bisect_right([end for _, end in offsets], answer.start)
  last = bisect.bisect_left([start for start, _ in offsets], answer.end) - 1
  if first >= len(offsets) or last < first:
    raise SquadError(f"question {example.qas_id!r}: answer {answer.text!r} at {answer.start} covers no word piece of "
                     "the context; fix the answer")
  return first, last


def _answer(path: str, where: str, context: str, raw: Any, n: int) -> Answer:
  text = _field(path, f"{where}: answers[{n}]", raw, "text", str)
  start = _field(path, f"{where}: answers[{n}]", raw, "answer_start", int)
  if not text.strip():
    raise SquadError(f"{path}: {where}: answers[{n}] has an empty text; write the answer's text or delete it")
  found = context[start:start + len(text)] if start >= 0 else ""
  if found != text:
    hint = context.find(text)
    fix = (f"set answer_start to {hint} (the first place the text occurs)" if hint >= 0
           else "the text does not occur in the context; correct the text")
    raise SquadError(f"{path}: {where}: answers[{n}] {text!r} does not match the context at answer_start {start} "
                     f"({found!r}); {fix}")
  return Answer(text, start)


def _field(path: str, where: str, obj: Any, key: str, kind, default: Any = None) -> Any:
  """obj[key] checked to be of `kind`; `default` when absent and a default is given, else SquadError."""
  if not isinstance(obj, dict):
    raise SquadError(f"{path}: {where} is a {type(obj).__name__}, not an object; see the SQuAD format (data[]."
                     "paragraphs[].qas[])")
  if key not in obj:
    if default is not None:
      return default
    raise SquadError(f"{path}: {where} has no {key!r} key; add it (keys: {sorted(obj)[:8]}); see the SQuAD format "
                     "(data[].paragraphs[].qas[])")
  value = obj[key]
  kinds = kind if isinstance(kind, tuple) else (kind,)
  if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
    names = " or ".join(k.__name__ for k in kinds)
    raise SquadError(f"{path}: {where}: {key!r} is {value!r}, not of type {names}; fix its value")
  return value


def _load_json(path: str) -> Any:
  content = read_bytes(path, SquadError, "a SQuAD v1.1 or v2.0 JSON file (plain or .gz)")
  try:
    return json.loads(content.decode("utf-8-sig"))
  except UnicodeDecodeError as e:
    raise SquadError(f"{path}: not UTF-8 (byte {content[e.start:e.start + 1]!r} at byte {e.start}); re-save the file "
                     "as UTF-8") from None
  except json.JSONDecodeError as e:
    raise SquadError(f"{path}, line {e.lineno} column {e.colno}: invalid JSON ({e.msg}); fix the file or "
                     "re-download it") from None

"""SQuAD exact match and F1 with the semantics of the official v1.1 / v2.0 evaluation scripts.

Answers are compared after `normalize_answer`, in this order: lower-case, delete every ASCII punctuation character
(`string.punctuation`), replace the words a / an / the by a space, collapse runs of whitespace to one space and trim:
  "The Eiffel  Tower." -> "eiffel tower".
Per question, against each gold answer g and taking the max over the gold answers:
  EM = 1 if normalize(prediction) == normalize(g) else 0
  F1 over the normalised whitespace tokens, with `common` the multiset intersection of the two token lists:
    precision = |common| / |prediction tokens|,  recall = |common| / |gold tokens|,
    F1 = 2 * precision * recall / (precision + recall)   (0 when |common| = 0)
  e.g. "in 1889 Paris" vs "1889": precision 1/3, recall 1, F1 = 2 * (1/3 * 1) / (1/3 + 1) = 0.5.
Gold answers that normalise to "" are dropped (v2.0's `get_raw_scores`); an unanswerable question (v2.0
`is_impossible`, no gold answer) has the single gold "", so the prediction "" scores EM = F1 = 1 and any other 0
(when either side has no tokens, F1 is 1 if both have none, else 0). For answerable v1.1 questions this is exactly
v1.1's `evaluate`.

Corpus scores are means over the questions, in percent: `exact`, `f1`, `total`, and for the answerable (`HasAns_*`)
and unanswerable (`NoAns_*`) questions when there are any of them.

No-answer threshold (v2.0). A reader gives each question a null-odds score, higher meaning "more likely
unanswerable" (run_squad's `score_null - best_non_null_score`). At threshold t the question is answered "" when
null_odds > t, and then scores 1 if it is unanswerable, 0 otherwise; else it keeps its prediction's score.
`best_threshold` is the official `find_best_thresh`: start from every question answered "" (score = number of
unanswerable questions, threshold 0.0), visit the questions by increasing null-odds, and at each add what answering
it changes (its raw score if answerable; -1 if unanswerable and its prediction is non-empty, else 0); the best
running total and the null-odds where it is first reached are returned, the score in percent of all questions.
"""

import collections
import re
import string
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
  """Lower-case, punctuation removed, articles a/an/the removed, whitespace collapsed (module docstring)."""
  text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def answer_tokens(text: str) -> List[str]:
  """The whitespace tokens of the normalised answer; [] for an empty one."""
  return normalize_answer(text).split() if text else []


def exact_match(prediction: str, gold: str) -> int:
  """1 if the normalised strings are equal, else 0."""
  return int(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
  """Token F1 of the normalised answers (module docstring); 1.0 when both are empty, 0.0 when only one is."""
  pred_tokens, gold_tokens = answer_tokens(prediction), answer_tokens(gold)
  if not pred_tokens or not gold_tokens:
    return float(pred_tokens == gold_tokens)
  common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
  if common == 0:
    return 0.0
  precision, recall = common / len(pred_tokens), common / len(gold_tokens)
  return 2 * precision * recall / (precision + recall)


def scorable_golds(gold_answers: Iterable[str]) -> List[str]:
  """The gold answers that do not normalise to ""; [""] when none does (an unanswerable question)."""
  golds = [answer for answer in gold_answers if normalize_answer(answer)]
  return golds or [""]


def question_scores(prediction: str, gold_answers: Iterable[str]) -> Tuple[int, float]:
  """(EM, F1) of one prediction: the max over the question's gold answers (`scorable_golds`)."""
  golds = scorable_golds(gold_answers)
  return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


def raw_scores(gold: Mapping[str, Sequence[str]],
               predictions: Mapping[str, str]) -> Tuple[Dict[str, int], Dict[str, float]]:
  """Per-question EM and F1 for every question of `gold` ({id: gold answer texts}, [] for unanswerable).

  Raises:
    ValueError: when a question has no prediction or a prediction is for an unknown question.
  """
  missing = [qid for qid in gold if qid not in predictions]
  unknown = [qid for qid in predictions if qid not in gold]
  if missing or unknown:
    raise ValueError(f"predictions are missing {len(missing)} question(s) {missing[:3]} and have {len(unknown)} "
                     f"unknown one(s) {unknown[:3]}; predict every question of the gold file (\"\" for no answer), "
                     "and only those")
  exact, f1 = {}, {}
  for qid, answers in gold.items():
    exact[qid], f1[qid] = question_scores(predictions[qid], answers)
  return exact, f1


def has_answer(gold: Mapping[str, Sequence[str]]) -> Dict[str, bool]:
  """{id: whether the question has a gold answer that does not normalise to ""}."""
  return {qid: scorable_golds(answers) != [""] for qid, answers in gold.items()}


def apply_threshold(scores: Mapping[str, float], null_odds: Mapping[str, float], answerable: Mapping[str, bool],
                    threshold: float) -> Dict[str, float]:
  """Scores after answering "" where null_odds > threshold: 1.0 for an unanswerable question, 0.0 otherwise."""
  return {qid: (float(not answerable[qid]) if null_odds[qid] > threshold else score) for qid, score in scores.items()}


def best_threshold(predictions: Mapping[str, str], scores: Mapping[str, float], null_odds: Mapping[str, float],
                   answerable: Mapping[str, bool]) -> Tuple[float, float]:
  """(best score in percent, its threshold): the official `find_best_thresh` (module docstring).

  Args:
    predictions: {id: predicted text} before any threshold.
    scores: {id: raw EM or F1 of that prediction}.
    null_odds: {id: null-odds score}; higher means answer "".
    answerable: {id: whether the question has a gold answer} (`has_answer`).
  """
  current = best = sum(1 for qid in scores if not answerable[qid])
  threshold = 0.0
  for qid in sorted(null_odds, key=lambda k: null_odds[k]):
    if qid not in scores:
      continue
    if answerable[qid]:
      current += scores[qid]
    else:
      current += -1 if predictions[qid] else 0
    if current > best:
      best, threshold = current, null_odds[qid]
  return 100.0 * best / len(scores), threshold


def _means(exact: Mapping[str, float], f1: Mapping[str, float], ids: Sequence[str]) -> Dict[str, float]:
  return {"exact": 100.0 * sum(exact[qid] for qid in ids) / len(ids),
          "f1": 100.0 * sum(f1[qid] for qid in ids) / len(ids), "total": len(ids)}


def squad_evaluate(gold: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                   null_odds: Optional[Mapping[str, float]] = None,
                   null_threshold: float = 1.0) -> Dict[str, float]:
  """Corpus scores, as the official v2.0 script prints them (module docstring).

  Args:
    gold: {question id: gold answer texts}; [] for an unanswerable question.
    predictions: {question id: predicted text}, "" for no answer; one per question of `gold`.
    null_odds: {question id: null-odds score}, or None (all 0.0, as the script without --na-prob-file). Given, the
      result also holds `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh` (`best_threshold`).
    null_threshold: answer "" where null_odds > null_threshold (the script's --na-prob-thresh, default 1.0).

  Returns:
    {"exact", "f1", "total"} in percent, plus "HasAns_exact", "HasAns_f1", "HasAns_total" when some question is
    answerable and "NoAns_*" when some is not.
  """
  if not gold:
    raise ValueError("gold has no questions; pass the gold answers of at least one question")
  exact, f1 = raw_scores(gold, predictions)
  answerable = has_answer(gold)
  odds = {qid: 0.0 for qid in gold} if null_odds is None else dict(null_odds)
  missing = [qid for qid in gold if qid not in odds]
  if missing:
    raise ValueError(f"null_odds has no score for {len(missing)} question(s) {missing[:3]}; pass one per question")
  exact_t = apply_threshold(exact, odds, answerable, null_threshold)
  f1_t = apply_threshold(f1, odds, answerable, null_threshold)
  result = _means(exact_t, f1_t, list(gold))
  for prefix, wanted in (("HasAns", True), ("NoAns", False)):
    ids = [qid for qid in gold if answerable[qid] == wanted]
    if ids:
      result.update({f"{prefix}_{key}": value for key, value in _means(exact_t, f1_t, ids).items()})
  if null_odds is not None:
    result["best_exact"], result["best_exact_thresh"] = best_threshold(predictions, exact, odds, answerable)
    result["best_f1"], result["best_f1_thresh"] = best_threshold(predictions, f1, odds, answerable)
  return result

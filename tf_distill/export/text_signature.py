"""In-graph WordPiece tokenisation for the `serving_text` signature, with tensorflow_text.

`TextEncoder` turns raw strings into the int32 features of `tf_distill.data.tokenization` inside the TensorFlow
graph, so a served model takes text directly:

  serving_text: text string [batch] (and text_b string [batch] for sentence-pair models)
                -> logits float32 [batch, labels], probabilities float32 [batch, labels]
  serving_text of a tagger (`tagging_text_function`): text string [batch]
                -> words string [batch, max_words], tags string [batch, max_words],
                   word_logits float32 [batch, max_words, tags]
  serving_text of a QA reader (`question_answering_text_function`): question, context string [batch]
                -> answer string [batch], answer_start, answer_end int32 [batch] (characters in the context),
                   score, null_odds float32 [batch], start_logits, end_logits float32 [batch, seq]

It gives the same ids as the Python `WordPieceTokenizer` (Hugging Face `tokenizers`' BertWordPieceTokenizer), which
the tests check on fixed sentences and hypothesis-generated text:
  1. Special tokens ([CLS], [SEP], [UNK], [PAD], [MASK] when in the vocab) typed in the raw text keep their ids,
     as `tokenizers` matches them before anything else.
  2. Normalise as `tokenizers`' BertNormalizer: drop NUL, U+FFFD and control/format/private-use characters (tab,
     newline and carriage return become spaces), map Unicode spaces to " ", and when `do_lower_case`: NFD, drop
     combining marks (accents), lower-case per character ("Σ" is always "σ"). This is done here with regex ops, not
     by `tf_text.BertTokenizer(lower_case=True)`, which case-folds with NFKC ("ß" -> "ss", "ﬁ" -> "fi") and turns
     control characters into spaces, changing ids.
  3. `tf_text.BertTokenizer(lower_case=False)` splits on whitespace, punctuation and CJK characters and maps words
     to WordPiece ids. A word of over 100 characters is one [UNK] (`tokenizers` counts characters, tensorflow_text
     bytes; the word is measured from BertTokenizer's offsets).
  4. Pack [CLS] a [SEP] (b [SEP]), truncated longest-first as `tokenization.truncate_pair`, padded to
     `max_seq_length`.
Known differences, in code points no real text uses: a few format characters added in Unicode 14 (U+0890, U+0891,
U+08E2, U+110CD, U+13430-U+1343F) are dropped here but kept by `tokenizers`; CJK Extension C/D code points
U+2B820-U+2B91F are split off as single characters here but not by `tokenizers`.

A tagger's text is cut into words at whitespace (Python's `str.split()`), and each word is tokenised on its own,
as `tf_distill.data.token_alignment` does (a word that gives no piece is one [UNK]). A QA context is cut the same
way, keeping each piece's byte offsets in the raw context (`encode_question_context`), so that the answer is a
substring of the context as sent.

The vocab is read through a `tf.lookup.TextFileInitializer`, so `tf.saved_model.save` copies it into the export's
`assets/` and the SavedModel is self-contained. Loading such a SavedModel needs the tensorflow_text ops:
`import tensorflow_text` first (`tf_distill.export.serving` does it).
"""

import os
import re
from typing import Dict, List, Optional

import tf_distill  # noqa: F401
import tensorflow as tf
import tensorflow_text as tf_text

FEATURE_KEYS = ("input_ids", "input_mask", "segment_ids")
MAX_CHARS_PER_WORD = 100  # tokenizers' WordPiece default (max_input_chars_per_word).
UNK, CLS, SEP = "[UNK]", "[CLS]", "[SEP]"
# Characters `tokenizers`' clean_text drops: NUL, U+FFFD and categories Cc (except tab, newline, carriage return),
# Cf, Co and Cs.
_DROPPED_CHARACTERS = r"[\x{0}-\x{8}\x{B}\x{C}\x{E}-\x{1F}\x{7F}-\x{9F}\p{Cf}\p{Co}\p{Cs}\x{FFFD}]"
# Unicode White_Space characters that survive the step above (\x85, \v and \f are Cc and are dropped).
_SPACES = r"[\t\n\r\p{Z}]"
# What Python's str.split() splits on: str.isspace() characters.
_WORD_SEPARATORS = r"[\t-\r\x{1C}-\x{1F}\x{85}\p{Z}]+"
# Special tokens that tokenizers matches in the raw text (case-sensitive, anywhere) when they are in the vocab.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Stands in for a special token while the text is tokenised: one private-use character is always one WordPiece
# token (normalize() has already dropped those that were in the text).
_PLACEHOLDER = "\uE000"


def vocab_lines(vocab_file: str) -> List[str]:
  """The lines of `vocab_file` as `WordPieceTokenizer` sees them: token i is line i, stripped.

  A line that is empty, or a token that appears again further down (the Python tokenizer keeps the last id), is
  replaced by a placeholder that no text can produce, so that line numbers stay ids and every key is unique.
  """
  with open(vocab_file, "rb") as f:
    lines = [line.strip() for line in f.read().decode("utf-8").split("\n")]
  last = {token: index for index, token in enumerate(lines) if token}
  for token in (UNK, CLS, SEP):
    if token not in last:
      raise ValueError(f"vocab_file {vocab_file!r} has no {token} token; pass a BERT vocab.txt")
  while lines and not lines[-1]:
    lines.pop()
  return [token if token and last[token] == index else f"[tf_distill unused {index}]"
          for index, token in enumerate(lines)]


def write_asset_vocab(vocab_file: str, path: str) -> str:
  """Writes `vocab_lines(vocab_file)`, one per line, to `path` (byte-identical for a clean BERT vocab)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write("\n".join(vocab_lines(vocab_file)) + "\n")
  return path


class TextEncoder(tf.Module):
  """Raw strings -> BERT int32 features in the graph, with the ids of `tokenization.WordPieceTokenizer`.

  Args:
    vocab_file: a vocab written by `write_asset_vocab` (one unique token per line; the line number is the id).
    do_lower_case: as the model's `WordPieceTokenizer`: lower-case and strip accents.
    max_seq_length: length of the packed features, [CLS] and [SEP] included.
  """

  def __init__(self, vocab_file: str, do_lower_case: bool, max_seq_length: int):
    super().__init__()
    if max_seq_length < 2:
      raise ValueError(f"max_seq_length must be >= 2 to fit [CLS] and [SEP], got {max_seq_length}")
    vocab = vocab_lines(vocab_file)
    special_tokens = [token for token in SPECIAL_TOKENS if token in vocab]
    self.do_lower_case = do_lower_case
    self.max_seq_length = max_seq_length
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                      tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)
    # lower_case=False: `normalize` has done the lower-casing. 4 bytes per UTF-8 character: the character limit
    # is applied in `_wordpiece_ids`.
    self._bert = tf_text.BertTokenizer(self.table, suffix_indicator="##",
                                       max_bytes_per_word=4 * MAX_CHARS_PER_WORD, token_out_type=tf.int64,
                                       unknown_token=UNK, lower_case=False)
    self._special_tokens = tf.constant(special_tokens)
    self._special_pattern = "|".join(re.escape(token) for token in special_tokens)
    self._unk_id = tf.constant(vocab.index(UNK), tf.int64)

  def normalize(self, texts: tf.Tensor) -> tf.Tensor:
    """string [batch] -> string [batch], as `tokenizers`' BertNormalizer."""
    texts = tf.strings.regex_replace(texts, _DROPPED_CHARACTERS, "")
    texts = tf.strings.regex_replace(texts, _SPACES, " ")
    if self.do_lower_case:
      texts = tf_text.normalize_utf8(texts, "NFD")
      texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
      # ICU lower-cases a final capital sigma to "ς"; tokenizers maps each character on its own, "Σ" -> "σ".
      texts = tf.strings.lower(tf.strings.regex_replace(texts, "Σ", "σ"), encoding="utf-8")
    return texts

  def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
    """string [batch] -> WordPiece ids int64 [batch, (tokens)], without added [CLS] and [SEP]."""
    # tokenizers first cuts the raw text at special tokens: "a[SEP]b" is a, the [SEP] id, b. regex_split would
    # stop at a NUL; U+FFFD is dropped by normalize() as NUL is.
    texts = tf.strings.regex_replace(texts, r"\x00", "\uFFFD")
    pieces = tf_text.regex_split(texts, self._special_pattern, self._special_pattern)  # string [batch, (pieces)]
    is_special = tf.reduce_any(tf.equal(pieces.flat_values[:, None], self._special_tokens[None, :]), axis=1)
    ids = self._wordpiece_ids(tf.where(is_special, _PLACEHOLDER, self.normalize(pieces.flat_values)))
    piece_of_id = ids.value_rowids()
    ids = ids.with_flat_values(tf.where(tf.gather(is_special, piece_of_id),
                                        tf.gather(self.table.lookup(pieces.flat_values), piece_of_id),
                                        ids.flat_values))
    return pieces.with_flat_values(ids).merge_dims(1, 2)

  def _wordpiece_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
    """Normalised string [n] -> ids int64 [n, (tokens)]; a word of over 100 characters is one [UNK]."""
    ids, starts, ends = self._bert.tokenize_with_offsets(texts)  # [n, (words), (pieces)], byte offsets
    words = ids.values  # [words, (pieces)]
    begin = tf.gather(starts.flat_values, words.row_starts())
    end = tf.gather(ends.flat_values, words.row_limits() - 1)
    word_texts = tf.strings.substr(tf.repeat(texts, ids.row_lengths()), begin, end - begin)
    too_long = tf.strings.length(word_texts, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD  # bool [words]
    word_of_piece = words.value_rowids()
    first_piece = tf.range(tf.size(words.flat_values, out_type=tf.int64)) == tf.gather(words.row_starts(),
                                                                                       word_of_piece)
    long_piece = tf.gather(too_long, word_of_piece)
    merged = ids.merge_dims(1, 2)
    return tf.ragged.boolean_mask(merged.with_flat_values(tf.where(long_piece, self._unk_id, merged.flat_values)),
                                  merged.with_flat_values(first_piece | ~long_piece))

  def encode(self, texts: tf.Tensor, texts_b: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
    """Features int32 [batch, max_seq_length]: [CLS] a [SEP] (b [SEP]), then zeros."""
    ids_a = self.tokenize(texts)
    cls_id, sep_id = self.table.lookup(tf.constant(CLS)), self.table.lookup(tf.constant(SEP))
    if texts_b is None:
      segments = [ids_a[:, :self.max_seq_length - 2]]
    else:
      if self.max_seq_length < 3:
        raise ValueError(f"max_seq_length must be >= 3 to fit [CLS] and [SEP] twice, got {self.max_seq_length}")
      ids_b = self.tokenize(texts_b)
      len_a, len_b = truncated_pair_lengths(ids_a.row_lengths(), ids_b.row_lengths(), self.max_seq_length - 3)
      segments = [tf.ragged.boolean_mask(ids_a, tf.ragged.range(ids_a.row_lengths()) < len_a[:, None]),
                  tf.ragged.boolean_mask(ids_b, tf.ragged.range(ids_b.row_lengths()) < len_b[:, None])]
    ids, segment_ids = tf_text.combine_segments(segments, start_of_sequence_id=cls_id, end_of_segment_id=sep_id)
    input_ids, input_mask = tf_text.pad_model_inputs(ids, self.max_seq_length)
    segment_ids, _ = tf_text.pad_model_inputs(segment_ids, self.max_seq_length)
    return {"input_ids": tf.cast(input_ids, tf.int32), "input_mask": tf.cast(input_mask, tf.int32),
            "segment_ids": tf.cast(segment_ids, tf.int32)}


  def encode_words(self, texts: tf.Tensor):
    """A tagger's input: features int32 [batch, max_seq_length] of [CLS] the words' pieces [SEP] (pieces beyond
    max_seq_length - 2 cut), the words string [batch, (words)] and each word's first-piece position
    int64 [batch, (words)] (>= max_seq_length - 1: the word was cut)."""
    words = tf.strings.split(tf.strings.regex_replace(texts, _WORD_SEPARATORS, " "))  # at runs of " "
    pieces = self.tokenize(words.flat_values)  # [all words, (pieces)]
    counts = pieces.row_lengths()
    unk = tf.fill([tf.shape(counts)[0], 1], self._unk_id)
    pieces = tf.concat([pieces, unk], axis=1)  # an [UNK] after each word's pieces, kept where there are none
    pieces = tf.ragged.boolean_mask(pieces, tf.ragged.range(pieces.row_lengths()) < tf.maximum(counts, 1)[:, None])
    counts = pieces.row_lengths()
    before = tf.cumsum(counts, exclusive=True)  # pieces before each word, over the whole batch
    first = before - tf.gather(_row_first(before, words), words.value_rowids()) + 1  # within the text; +1: [CLS]
    ids = words.with_flat_values(pieces).merge_dims(1, 2)[:, :self.max_seq_length - 2]
    cls_id, sep_id = self.table.lookup(tf.constant(CLS)), self.table.lookup(tf.constant(SEP))
    ids, _ = tf_text.combine_segments([ids], start_of_sequence_id=cls_id, end_of_segment_id=sep_id)
    input_ids, input_mask = tf_text.pad_model_inputs(ids, self.max_seq_length)
    features = {"input_ids": tf.cast(input_ids, tf.int32), "input_mask": tf.cast(input_mask, tf.int32),
                "segment_ids": tf.zeros_like(tf.cast(input_ids, tf.int32))}
    return features, words, words.with_flat_values(first)


  def encode_question_context(self, questions: tf.Tensor, contexts: tf.Tensor, max_query_length: int):
    """Extractive QA's input, one window: features int32 [batch, max_seq_length] of [CLS] question [SEP] context
    [SEP] (the question cut to `max_query_length` pieces, the context to the pieces that fit), and each position's
    [start, end) byte offsets in its raw context, int32 [batch, max_seq_length] twice, -1 outside the context.

    The context is cut into words at whitespace in the raw text, each word tokenised on its own (BERT splits at
    whitespace first, so the pieces are those of the whole context). A piece's offsets are its own when
    normalising left its word's bytes as they were (ASCII, and lower-casing that keeps byte lengths); otherwise
    (accents stripped, control characters dropped, a special token or an over-long word) every piece of the word
    spans the whole word, so an answer never starts or ends inside a word whose bytes normalising changed.
    """
    query = self.tokenize(questions)[:, :max_query_length]  # [batch, (q)]
    words, word_begin, word_end = tf_text.regex_split_with_offsets(contexts, _WORD_SEPARATORS)  # [batch, (words)]
    pieces = self.tokenize(words.flat_values)  # [all words, (pieces)]
    normalized = self.normalize(words.flat_values)
    _, piece_begin, piece_end = self._bert.tokenize_with_offsets(normalized)  # within the normalised word
    piece_begin, piece_end = piece_begin.merge_dims(1, 2), piece_end.merge_dims(1, 2)
    exact = ((tf.strings.length(normalized) == tf.strings.length(words.flat_values))
             & (piece_begin.row_lengths() == pieces.row_lengths()))  # bool [all words]
    first_byte = tf.gather(word_begin.flat_values, pieces.value_rowids())  # per piece, its word's start in the text
    last_byte = tf.gather(word_end.flat_values, pieces.value_rowids())
    exact_piece = tf.gather(exact, pieces.value_rowids())
    # Where the word is not exact, piece_begin may have another number of pieces: read it only where it is.
    own_begin = tf.where(exact_piece, _flat_or_zeros(piece_begin, exact, pieces), 0)
    own_end = tf.where(exact_piece, _flat_or_zeros(piece_end, exact, pieces), 0)
    begin = tf.where(exact_piece, first_byte + own_begin, first_byte)
    end = tf.where(exact_piece, first_byte + own_end, last_byte)
    context = words.with_flat_values(pieces).merge_dims(1, 2)  # [batch, (pieces)]
    begin = context.with_flat_values(begin)
    end = context.with_flat_values(end)
    budget = self.max_seq_length - 3 - query.row_lengths()  # context pieces that fit
    keep = tf.ragged.range(context.row_lengths()) < budget[:, None]
    context, begin, end = (tf.ragged.boolean_mask(x, keep) for x in (context, begin, end))
    cls_id, sep_id = self.table.lookup(tf.constant(CLS)), self.table.lookup(tf.constant(SEP))
    ids, segment_ids = tf_text.combine_segments([query, context], start_of_sequence_id=cls_id,
                                                end_of_segment_id=sep_id)
    input_ids, input_mask = tf_text.pad_model_inputs(ids, self.max_seq_length)
    segment_ids, _ = tf_text.pad_model_inputs(segment_ids, self.max_seq_length)
    heading = query.row_lengths() + 2  # [CLS] question [SEP]: no offsets
    before = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(heading)], tf.constant(-1, tf.int64)), heading)

    def positions(offsets):
      return tf.cast(tf.concat([before, offsets], axis=1).to_tensor(-1, shape=[None, self.max_seq_length]),
                     tf.int32)

    features = {"input_ids": tf.cast(input_ids, tf.int32), "input_mask": tf.cast(input_mask, tf.int32),
                "segment_ids": tf.cast(segment_ids, tf.int32)}
    return features, positions(begin), positions(end)


def _flat_or_zeros(offsets: tf.RaggedTensor, exact: tf.Tensor, pieces: tf.RaggedTensor) -> tf.Tensor:
  """offsets' values laid out as `pieces`' ([words, (pieces)]): a word's own offsets where `exact` (the two have
  the same number of pieces, in the same order), zeros for the other words' pieces."""
  kept = tf.ragged.boolean_mask(offsets, exact).flat_values  # the exact words' pieces, in order
  exact_pieces = tf.where(tf.gather(exact, pieces.value_rowids()))  # int64 [exact pieces, 1]
  return tf.scatter_nd(exact_pieces, kept, tf.shape(pieces.flat_values, out_type=tf.int64))


def _row_first(values: tf.Tensor, rows: tf.RaggedTensor) -> tf.Tensor:
  """values[row start] for each row of `rows` ([batch]); 0 for an empty row."""
  starts = rows.row_starts()
  padded = tf.concat([values, tf.zeros([1], values.dtype)], 0)
  return tf.gather(padded, tf.minimum(starts, tf.shape(values, out_type=starts.dtype)[0]))


def truncated_pair_lengths(len_a: tf.Tensor, len_b: tf.Tensor, budget: int):
  """Lengths that `tokenization.truncate_pair` leaves: pop from the longer list, from b on a tie, until
  len_a + len_b <= budget. In closed form, each keeps its length or its share of the budget, whichever the other
  leaves room for; a gets the odd token: a' = min(a, max(budget - b, budget - budget // 2)),
  b' = min(b, max(budget - a, budget // 2))."""
  budget = tf.cast(budget, len_a.dtype)
  return (tf.minimum(len_a, tf.maximum(budget - len_b, budget - budget // 2)),
          tf.minimum(len_b, tf.maximum(budget - len_a, budget // 2)))


def serving_text_function(serve, encoder: TextEncoder, pairs: bool):
  """The `serving_text` concrete function: `encoder` features fed to `serve`, the serving_default tf.function.

  Inputs are named `text` (and `text_b` when `pairs`), string [batch]; the outputs are those of `serve`.
  """
  text_spec = tf.TensorSpec([None], tf.string, name="text")
  if pairs:
    @tf.function(input_signature=[text_spec, tf.TensorSpec([None], tf.string, name="text_b")], autograph=False)
    def serve_text_pair(text, text_b):
      return serve(encoder.encode(text, text_b))
    return serve_text_pair.get_concrete_function()

  @tf.function(input_signature=[text_spec], autograph=False)
  def serve_text(text):
    return serve(encoder.encode(text))
  return serve_text.get_concrete_function()


def tagging_text_function(serve, encoder: TextEncoder, labels):
  """The `serving_text` concrete function of a tagger: text string [batch] -> per text its words, their tags and the
  logits at each word's first piece (`encode_words`; `serve` gives logits [batch, seq, tags]), padded to the longest
  text's word count with "", "" and 0. A word whose first piece is beyond the features (max_seq_length - 2
  pieces) gets tag "" and logits 0: serve long texts in pieces."""
  names = tf.constant(list(labels))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")], autograph=False)
  def serve_text(text):
    features, words, first = encoder.encode_words(text)
    logits = serve(features)["logits"]  # [batch, seq, tags]
    present = tf.ones_like(first, tf.bool).to_tensor(False)  # [batch, max_words]
    tagged = present & (first.to_tensor(0) <= encoder.max_seq_length - 2)
    positions = tf.where(tagged, first.to_tensor(0), 0)
    word_logits = tf.gather(logits, tf.cast(positions, tf.int32), batch_dims=1)
    word_logits = tf.where(tagged[..., None], word_logits, 0.0)
    tags = tf.where(tagged, tf.gather(names, tf.argmax(word_logits, axis=-1)), "")
    return {"words": words.to_tensor(""), "tags": tags, "word_logits": word_logits}
  return serve_text.get_concrete_function()


def best_answer(start_logits: tf.Tensor, end_logits: tf.Tensor, begin: tf.Tensor, end: tf.Tensor,
                max_answer_length: int) -> Dict[str, tf.Tensor]:
  """The best span of each row, in the graph: the pair (s, e) of context positions (begin >= 0) with s <= e,
  e - s + 1 <= max_answer_length and the highest start_logits[s] + end_logits[e] over all such pairs (the n-best
  search of `tf_distill.data.squad.best_spans` with every position paired). Returns int32 [batch] start and end
  positions, float32 [batch] score (-inf: no valid pair) and null_odds = start_logits[0] + end_logits[0] - score."""
  length = tf.shape(start_logits)[1]
  in_context = begin >= 0  # [batch, seq]
  position = tf.range(length)
  gap = position[None, :] - position[:, None]  # [s, e] -> e - s
  valid = (in_context[:, :, None] & in_context[:, None, :] & (gap >= 0)[None] & (gap < max_answer_length)[None])
  scores = tf.where(valid, start_logits[:, :, None] + end_logits[:, None, :], -float("inf"))
  flat = tf.reshape(scores, [tf.shape(scores)[0], -1])
  best = tf.cast(tf.argmax(flat, axis=1), tf.int32)
  score = tf.reduce_max(flat, axis=1)
  null_score = start_logits[:, 0] + end_logits[:, 0]
  return {"start": best // length, "end": best % length, "score": score, "null_odds": null_score - score}


def question_answering_text_function(serve, encoder: TextEncoder, max_query_length: int, max_answer_length: int,
                                     null_threshold: Optional[float]):
  """The `serving_text` concrete function of a QA reader: question and context string [batch] -> per question its
  answer (string; "" for none), answer_start and answer_end (int32 character offsets in the context, -1 for no
  answer), score and null_odds (float32, as `best_answer`), and start_logits and end_logits (float32 [batch, seq]).

  One window per question (`encode_question_context`): a context longer than max_seq_length minus the question
  is cut, and its answer is searched in the pieces that fit (for longer contexts, send run_squad's windows,
  `tf_distill.data.squad.encode_squad`, to serving_default and decode with `best_spans`, as export_student does).
  A question gets no answer when no span is valid or, with `null_threshold` (v2.0, from the run's dev set), when
  its null_odds exceed it."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                tf.TensorSpec([None], tf.string, name="context")], autograph=False)
  def serve_text(question, context):
    features, begin, end = encoder.encode_question_context(question, context, max_query_length)
    logits = serve(features)["logits"]  # [batch, 2, seq]
    span = best_answer(logits[:, 0], logits[:, 1], begin, end, max_answer_length)
    answered = tf.math.is_finite(span["score"])
    if null_threshold is not None:
      answered &= span["null_odds"] <= null_threshold
    first_byte = tf.gather(begin, span["start"], batch_dims=1)
    last_byte = tf.gather(end, span["end"], batch_dims=1)
    first_byte, last_byte = tf.where(answered, first_byte, 0), tf.where(answered, last_byte, 0)
    answer = tf.strings.substr(context, first_byte, last_byte - first_byte)
    before = tf.strings.substr(context, tf.zeros_like(first_byte), first_byte)
    answer_start = tf.strings.length(before, unit="UTF8_CHAR")
    answer_end = answer_start + tf.strings.length(answer, unit="UTF8_CHAR")
    return {"answer": answer, "answer_start": tf.where(answered, answer_start, -1),
            "answer_end": tf.where(answered, answer_end, -1), "score": span["score"],
            "null_odds": span["null_odds"], "start_logits": logits[:, 0], "end_logits": logits[:, 1]}
  return serve_text.get_concrete_function()

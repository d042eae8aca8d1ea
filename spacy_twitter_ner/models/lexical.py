"""Lexical features of a token, computed from its text alone.

This is where raw-text docs (made by the Twitter tokenizer) and pre-tokenised docs (CoNLL corpora,
``Doc(vocab, words=...)``) meet, so the ``<USR>``/``<URL>`` normalisation lives here: the model
sees the same features whichever way a Doc was made. Features are cached per ORTH id, so each
distinct string is analysed once per process.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc

from ..tokenizer import URL, USR, twitter_norm

# Distinct strings whose features a per-string memo remembers (this one, the gazetteer keys, the
# static-vector rows); past this the memo starts again. Tweets are Zipfian: 20k strings hold a
# batch's working set and nearly every repeat, while memory stays bounded (~2 MB per memo) over
# millions of tweets that keep bringing new strings.
MAX_CACHED_ROWS = 20_000
PAD = "<PAD>"
UNK = "<UNK>"
PAD_ID = 0
UNK_ID = 1

# Casing/shape classes: what a char CNN learns slowly from few examples, given outright.
SHAPES = (
    "<pad>", "lower", "upper", "title", "mixed", "digits", "alnum-digit", "mention", "hashtag",
    "url", "punct", "space", "other",
)
SHAPE_ID = {name: i for i, name in enumerate(SHAPES)}


def word_key(text: str, lower: bool) -> str:
    """The string a word embedding is looked up by."""
    norm = twitter_norm(text)
    if norm in (USR, URL):
        return norm
    return norm.lower() if lower else norm


def shape_class(text: str) -> int:
    norm = twitter_norm(text)
    if norm == USR:
        return SHAPE_ID["mention"]
    if norm == URL:
        return SHAPE_ID["url"]
    if text.isspace():
        return SHAPE_ID["space"]
    if len(text) > 1 and text[0] == "#":
        return SHAPE_ID["hashtag"]
    if text.isdigit():
        return SHAPE_ID["digits"]
    if text.isalpha():
        if text.islower():
            return SHAPE_ID["lower"]
        if text.isupper():
            return SHAPE_ID["upper"] if len(text) > 1 else SHAPE_ID["title"]
        if text[0].isupper() and text[1:].islower():
            return SHAPE_ID["title"]
        return SHAPE_ID["mixed"]
    if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
        return SHAPE_ID["alnum-digit"]
    if all(not c.isalnum() for c in text) and text.isascii():
        return SHAPE_ID["punct"]
    return SHAPE_ID["other"]


def char_ids(text: str, max_chars: int, n_chars: int) -> numpy.ndarray:
    """Characters hashed into ``n_chars - 1`` buckets (0 is padding); a token longer than the
    window keeps its first and last characters, where affixes live."""
    if len(text) > max_chars:
        head = max_chars // 2
        text = text[:head] + text[len(text) - (max_chars - head):]
    out = numpy.zeros((max_chars,), dtype="int64")
    for i, c in enumerate(text):
        out[i] = 1 + ord(c) % (n_chars - 1)
    return out


def build_vocab(words: Iterable[str], min_freq: int, max_size: Optional[int]) -> List[str]:
    """The seed's vocabulary: ``<PAD>``, ``<UNK>`` then words by frequency (ties by first
    appearance, so the result is deterministic)."""
    counts: Dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    ranked = sorted(
        (w for w, n in counts.items() if n >= min_freq and w not in (PAD, UNK)),
        key=lambda w: -counts[w],
    )
    if max_size is not None:
        ranked = ranked[: max(0, max_size - 2)]
    return [PAD, UNK] + ranked


class LexicalTable:
    """Per-ORTH cache of (word id, shape id, char ids) for one vocabulary. The char ids are kept
    as the bytes of a small-int array (a sixth of a numpy array's footprint per string)."""

    def __init__(self, words: Sequence[str], lower: bool, max_chars: int, n_chars: int) -> None:
        self.index = {w: i for i, w in enumerate(words)}
        self.lower = lower
        self.max_chars = max_chars
        self.n_chars = n_chars
        self._char_dtype = numpy.dtype("int16" if n_chars <= numpy.iinfo("int16").max else "int32")
        self._rows: Dict[int, Tuple[int, int, bytes]] = {}

    def row(self, orth: int, text: str) -> Tuple[int, int, bytes]:
        """(word id, shape id, char ids as bytes of ``self._char_dtype``) of one string."""
        found = self._rows.get(orth)
        if found is None:
            found = (
                self.index.get(word_key(text, self.lower), UNK_ID),
                shape_class(text),
                char_ids(text, self.max_chars, self.n_chars).astype(self._char_dtype).tobytes(),
            )
            if len(self._rows) >= MAX_CACHED_ROWS:
                self._rows = {}  # annotating millions of tweets meets ever new strings
            self._rows[orth] = found
        return found

    def featurize(
        self, docs: Sequence[Doc]
    ) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Flat (all tokens of all docs) word ids, char ids, shape ids, and doc lengths."""
        words, uniq_chars, char_index, shapes, lengths = self.featurize_batch(docs)
        return words, uniq_chars[char_index], shapes, lengths

    def featurize_batch(
        self, docs: Sequence[Doc]
    ) -> Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """Flat word ids and shape ids, the char ids of each DISTINCT token of the batch with
        each token's row in them (the char CNN runs once per distinct string: about half the
        tokens of a batch of tweets), and doc lengths."""
        lengths = numpy.array([len(doc) for doc in docs], dtype="int64")
        n = int(lengths.sum())
        if n == 0:
            empty = numpy.zeros((0,), dtype="int64")
            return empty, numpy.zeros((0, 1), dtype="int64"), empty, empty, lengths
        orths = numpy.concatenate([doc.to_array(ORTH) for doc in docs if len(doc)])
        uniq, inverse = numpy.unique(orths, return_inverse=True)
        strings = docs[0].vocab.strings
        rows = [self.row(int(o), strings[int(o)]) for o in uniq]
        words = numpy.array([r[0] for r in rows], dtype="int64")[inverse]
        shapes = numpy.array([r[1] for r in rows], dtype="int64")[inverse]
        chars = numpy.frombuffer(b"".join([r[2] for r in rows]), dtype=self._char_dtype)
        chars = chars.reshape(len(rows), self.max_chars).astype("int64")
        # trim the char window to the longest token of this batch
        used = int((chars != 0).sum(axis=1).max())
        return words, chars[:, : max(used, 1)], inverse.astype("int64"), shapes, lengths

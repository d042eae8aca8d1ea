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

# Distinct strings a per-string memo (StringMemo: the lexical rows, the gazetteer keys, the
# static-vector and Brown-cluster rows) holds in each of its two generations. Tweets are Zipfian:
# 20k strings hold a batch's working set and nearly every repeat, while memory stays bounded
# (~2-4 MB per memo) over millions of tweets that keep bringing new strings.
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
SHAPE_SLOTS = 16  # > len(SHAPES): a word id and a shape id packed in one int


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
    return char_id_rows([text], max_chars, n_chars)[0]


def char_id_rows(texts: Sequence[str], max_chars: int, n_chars: int) -> numpy.ndarray:
    """``char_ids`` of many strings at once, (len(texts), max_chars): one encode of the joined
    strings and array arithmetic, not a Python loop over characters, so the strings of a batch
    need no per-string memo of their characters."""
    head = max_chars // 2
    clipped = [t if len(t) <= max_chars else t[:head] + t[len(t) - (max_chars - head):] for t in texts]
    lengths = numpy.fromiter((len(t) for t in clipped), dtype="int64", count=len(clipped))
    out = numpy.zeros((len(clipped), max_chars), dtype="int64")
    if not lengths.sum():
        return out
    # one UTF-32 unit per code point, as len() and ord() count them (lone surrogates included)
    codes = numpy.frombuffer("".join(clipped).encode("utf-32-le", "surrogatepass"), dtype="<u4")
    rows = numpy.repeat(numpy.arange(len(clipped)), lengths)
    cols = numpy.arange(len(codes)) - numpy.repeat(numpy.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = 1 + codes.astype("int64") % (n_chars - 1)
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


_MISSING = object()


class StringMemo:
    """A bounded memo of per-string results (keyed by ORTH id), in two generations: new entries
    go to the young one; when it is full it becomes the old one (the previous old one is
    dropped) and a hit there moves back to the young one. So memory stays at most 2 x ``limit``
    entries over an endless stream, yet the frequent strings (``the``, ``@user``, ``!``) survive
    the turnover, where a memo that empties itself would compute them all again. Safe to share
    between threads: a race can only lose an entry, which is computed again."""

    __slots__ = ("limit", "_young", "_old")

    def __init__(self, limit: Optional[int] = None) -> None:
        self.limit = int(MAX_CACHED_ROWS if limit is None else limit)
        self._young: Dict[int, object] = {}
        self._old: Dict[int, object] = {}

    def get(self, key: int, default: object = None) -> object:
        found = self._young.get(key, _MISSING)
        if found is _MISSING:
            found = self._old.get(key, _MISSING)
            if found is _MISSING:
                return default
            self[key] = found
        return found

    def __setitem__(self, key: int, value: object) -> None:
        young = self._young
        if len(young) >= self.limit:
            self._old, self._young = young, {}
            young = self._young
        young[key] = value

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def values(self) -> List[object]:
        return [*self._young.values(), *self._old.values()]

    def clear(self) -> None:
        self._young, self._old = {}, {}


class LexicalTable:
    """Per-ORTH memo of (word id, shape id) for one vocabulary, packed in one int per string
    (``word_id * SHAPE_SLOTS + shape``); characters are hashed per batch (``char_id_rows``)."""

    def __init__(self, words: Sequence[str], lower: bool, max_chars: int, n_chars: int) -> None:
        self.index = {w: i for i, w in enumerate(words)}
        self.lower = lower
        self.max_chars = max_chars
        self.n_chars = n_chars
        self._rows = StringMemo()  # annotating millions of tweets meets ever new strings

    def row(self, orth: int, text: str) -> int:
        """``word_id * SHAPE_SLOTS + shape_id`` of one string."""
        found = self._rows.get(orth)
        if found is None:
            found = self._rows[orth] = self.index.get(word_key(text, self.lower), UNK_ID) * SHAPE_SLOTS + shape_class(text)
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
        uniq_orths = uniq.tolist()
        texts = [strings[o] for o in uniq_orths]
        packed = numpy.fromiter((self.row(o, t) for o, t in zip(uniq_orths, texts)), dtype="int64", count=len(texts))
        words = (packed // SHAPE_SLOTS)[inverse]
        shapes = (packed % SHAPE_SLOTS)[inverse]
        chars = char_id_rows(texts, self.max_chars, self.n_chars)
        # trim the char window to the longest token of this batch
        used = int((chars != 0).sum(axis=1).max())
        return words, chars[:, : max(used, 1)], inverse.astype("int64"), shapes, lengths

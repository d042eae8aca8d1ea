"""``spacy_twitter_ner.StaticVectors.v1``: spaCy's static vectors (``doc.vocab.vectors``, loaded
with ``[initialize] vectors = ...`` and saved with the pipeline's vocab) as frozen rows for
``TokenFeatures.v1``, looked up by the normalised word (``<USR>``/``<URL>``, optionally
lower-cased); zeros for unknown words."""
import threading
from itertools import chain
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
from spacy.attrs import ORTH
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, get_array_module
from thinc.types import Floats2d

from ...tokenizer import URL, USR
from ..lexical import StringMemo, word_key
from . import WORD_ROWS

STATIC_VECTORS = "twitter_static_vectors"


def _no_backprop(dY: Any) -> List:
    return []


@registry.architectures("spacy_twitter_ner.StaticVectors.v1")
def build_static_vectors(nO: int, lower: bool = True, subwords: bool = False,
                         subword_dropout: float = 0.0) -> Model[List[Doc], Floats2d]:
    """spaCy's static vectors of each token (``doc.vocab.vectors``), looked up by
    ``word_key(token.text, lower)`` (so ``<USR>``/``<URL>`` for mentions and URLs); zeros for
    words without a vector. ``nO`` must be the vectors' width. ``subwords``: a word without a
    vector gets the mean of the rows of its greedy longest-match pieces (WordPiece's rule: the
    first piece as is, the others as ``##piece``), which the table holds when
    ``scripts/distill_vectors.py --subword-pieces`` made it; zeros only when no piece is found.
    ``subword_dropout`` (training only, with ``subwords``): each distinct word of a batch that has
    a vector gets, with this probability, the mean of its pieces instead (the word itself not
    counted as its first piece), so the model learns from the rows it meets for the rare words
    no table holds (the numpy seed spaCy fixes draws them)."""
    if not 0.0 <= subword_dropout < 1.0:
        raise ValueError(f"StaticVectors.v1: subword_dropout must be in [0, 1), got {subword_dropout}")
    if subword_dropout and not subwords:
        raise ValueError("StaticVectors.v1: subword_dropout needs subwords = true (the pieces' rows)")
    return Model(
        STATIC_VECTORS,
        _static_forward,
        attrs={"lower": bool(lower), "subwords": bool(subwords), "subword_dropout": float(subword_dropout),
               "rows": _RowCache(), WORD_ROWS: True},
        dims={"nO": nO},
    )


class _RowCache:
    """ORTH id -> row of the vectors table (-1: no vector), and the piece rows of the words
    without one, for one vectors table (``StringMemo``s: bounded). Not a dict, so thinc never
    tries to serialize it with the model."""

    def __init__(self) -> None:
        self.key: Optional[Tuple] = None
        self.rows = StringMemo()
        self.pieces = StringMemo()  # ORTH id -> piece rows (subword fallback)
        self.split = StringMemo()  # ORTH id -> piece rows, not the word itself (subword_dropout)
        self._lock = threading.Lock()

    def for_vectors(self, vectors: Any) -> StringMemo:
        key = (id(vectors), vectors.shape, len(vectors.key2row))
        if key != self.key:
            with self._lock:
                if key != self.key:  # another table (or a new key in it): start again
                    self.rows, self.pieces, self.split = StringMemo(), StringMemo(), StringMemo()
                    self.key = key
        return self.rows

    def pieces_of(self, orth: int, strings: Any, lower: bool, find: Callable[..., int], whole: bool) -> Tuple[int, ...]:
        """The cached piece rows of the string ``orth`` (``whole=False``: its split without the
        word itself, for ``subword_dropout``; ``<USR>``/``<URL>`` have none)."""
        cached = self.pieces if whole else self.split
        found = cached.get(orth)
        if found is None:
            key = word_key(strings[orth], lower)
            if not whole and key in (USR, URL):
                found = ()
            else:
                found = tuple(piece_rows(key, find, whole=whole))
            cached[orth] = found
        return found

    def __deepcopy__(self, memo: Dict) -> "_RowCache":
        return _RowCache()

    def __getstate__(self) -> Dict:  # pickling (a lock cannot be): rows are looked up again
        return {}

    def __setstate__(self, state: Dict) -> None:
        self.__init__()


def _static_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    nO = model.get_dim("nO")
    lengths = [len(doc) for doc in docs]
    if sum(lengths) == 0:
        return model.ops.alloc2f(0, nO), _no_backprop
    vocab = docs[0].vocab
    vectors = vocab.vectors
    _check_vectors(vectors, nO)
    cache: _RowCache = model.attrs["rows"]
    table = cache.for_vectors(vectors)
    lower = model.attrs["lower"]
    orths = numpy.concatenate([doc.to_array(ORTH) for doc in docs if len(doc)]).astype("uint64")
    uniq, inverse = numpy.unique(orths, return_inverse=True)
    strings = vocab.strings
    find = row_finder(vectors)
    rows = numpy.empty((len(uniq),), dtype="int64")
    for i, orth in enumerate(uniq.tolist()):
        row = table.get(orth)
        if row is None:
            row = table[orth] = find(key=word_key(strings[orth], lower))
        rows[i] = row
    data = vectors.data
    xp = get_array_module(data)
    # one row per distinct string (zeros where the table has none), then one per token
    U = xp.take(data, xp.asarray(numpy.where(rows >= 0, rows, 0)), axis=0)
    missing = numpy.flatnonzero(rows < 0)
    if len(missing):
        U[xp.asarray(missing)] = 0
        if model.attrs.get("subwords"):
            pieces = [cache.pieces_of(int(uniq[i]), strings, lower, find, whole=True) for i in missing.tolist()]
            _set_piece_means(U, data, missing, pieces)
    p = model.attrs.get("subword_dropout", 0.0)
    if is_train and p > 0:
        known = numpy.flatnonzero(rows >= 0)
        chosen = known[numpy.random.random(len(known)) < p]
        pieces = [cache.pieces_of(int(uniq[i]), strings, lower, find, whole=False) for i in chosen.tolist()]
        _set_piece_means(U, data, chosen, pieces)
    Y = U[xp.asarray(inverse.reshape(-1))]
    return model.ops.asarray2f(Y, dtype="float32"), _no_backprop


def _set_piece_means(U: Any, data: Any, index: numpy.ndarray, pieces: List[Tuple[int, ...]]) -> None:
    """``U[index[j]] = data[pieces[j]].mean(axis=0)`` for every j with pieces: one gather and one
    sum per piece count rather than per word (the same float32 sums as ``mean``, bit for bit)."""
    by_count: Dict[int, List[int]] = {}
    for j, found in enumerate(pieces):
        if found:
            by_count.setdefault(len(found), []).append(j)
    xp = get_array_module(data)
    for k, js in by_count.items():
        flat = numpy.fromiter(chain.from_iterable(pieces[j] for j in js), dtype="int64", count=k * len(js))
        gathered = data[xp.asarray(flat)].reshape(len(js), k, data.shape[1])
        U[xp.asarray(index[js])] = gathered.sum(axis=1) / data.dtype.type(k)


def row_finder(vectors: Any) -> Callable[..., int]:
    """``vectors.find(key=...)`` for one string key of a default-mode table, without its
    per-call checks: the sub-word fallback asks it for every candidate piece of a new word."""
    key2row = vectors.key2row

    def find(*, key: str) -> int:
        return key2row.get(get_string_id(key), -1)

    return find


def vector_row(vectors: Any, text: str, lower: bool) -> int:
    """The row of ``text`` in ``vectors`` under this layer's key (``word_key``: ``<USR>``/``<URL>``,
    optionally lower-cased); -1 when the table has none. Scripts that ask "has this word a
    vector?" use it, so they agree with the model."""
    return row_finder(vectors)(key=word_key(text, lower))


def piece_rows(word: str, find: Callable[..., int], max_chars: int = 64, whole: bool = True) -> List[int]:
    """Rows of ``word``'s greedy longest-match pieces in the table (WordPiece's rule: the first
    piece as is, the later ones as ``##piece``); a character no piece starts with is skipped.
    ``whole=False``: the word itself is no piece (its split, as if the table lacked it)."""
    word = word[:max_chars]
    rows: List[int] = []
    start = 0
    while start < len(word):
        end, row = len(word) - (start == 0 and not whole), -1
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            row = int(find(key=piece))
            if row >= 0:
                break
            end -= 1
        if row < 0:
            start += 1
            continue
        rows.append(row)
        start = end
    return rows


def _check_vectors(vectors: Any, nO: int) -> None:
    if getattr(vectors, "mode", "default") != "default":
        raise ValueError(
            f"StaticVectors.v1: the vocab's vectors are in {vectors.mode!r} mode; only default "
            "(table) vectors are supported"
        )
    if vectors.size == 0 or len(vectors.key2row) == 0:
        raise ValueError(
            f"StaticVectors.v1: the pipeline's vocab has no vectors, but the model expects vectors "
            f"of width nO = {nO}. Load them with `[initialize] vectors = PATH` in the training "
            "config (e.g. the output of scripts/distill_vectors.py)"
        )
    width = int(vectors.shape[1])
    if width != nO:
        raise ValueError(
            f"StaticVectors.v1: the vocab's vectors have width {width} but the model expects "
            f"nO = {nO}; set nO = {width} (or load the vectors the model was built for)"
        )

"""``spacy_twitter_ner.LexemeClusters.v1``: Brown cluster prefixes and a frequency band of each
token, from the ``en_lexeme_cluster`` and ``en_lexeme_prob`` tables of the ``spacy-lookups-data``
package (the lexeme data of spaCy v2's English models: 1,000,001 words each, Brown clusters of
1,000 classes and smoothed log-probabilities), as frozen rows for ``TokenFeatures.v1``.

Per token (looked up by its exact text, then its lower-case form, then for a hashtag the word
without ``#``):

* for each prefix length ``k`` in ``prefixes``: a one-hot over the cluster bit-string prefixes of
  length ``k``, ``min(2**k, max_prefixes)`` columns. Short prefixes get a column each (16 of
  length 4, 54 of the 64 possible of length 6); where a length has more distinct prefixes than
  ``max_prefixes`` (length 10 has 401, the full paths 1,000), the ``max_prefixes - 1`` carrying
  the most probability mass get a column and the rest share the last one. The column index is
  built from the table (in ``initialize``, or on first use) and saved with the model (a few
  thousand integers), so a trained model keeps its columns;
* a one-hot over ``prob_buckets`` equal-width bands of the log-probability (between the table's
  smallest and largest value, saved with the model).

Words without a cluster (cluster 0 in the table: 81% of its entries, e.g. ``lol``) get zeros
in the prefix blocks but still a probability band; words not in the table, mentions and URLs
get all zeros. The width ``nO`` follows from the settings alone.

The tables themselves (two ~7 MB gzipped JSON files, one million entries) are never stored in
the model: they are read from the installed package once per process, on first use (about 3 s),
into sorted hash arrays (~14 MB), shared by every model and thread.
"""
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import LOWER, ORTH
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ...normalize import URL, USR, twitter_norm
from ..lexical import StringMemo
from . import BINARY_ROWS, WORD_ROWS

__all__ = ["LOOKUPS_PACKAGE", "build_lexeme_clusters", "load_lexeme_table", "LexemeTable"]

LEXEME_CLUSTERS = "twitter_lexeme_clusters"
LOOKUPS_PACKAGE = "spacy-lookups-data"
TABLES = ("lexeme_cluster", "lexeme_prob")
MAX_PREFIX_LEN = 32


def _no_backprop(dY: Any) -> List:
    return []


@registry.architectures("spacy_twitter_ner.LexemeClusters.v1")
def build_lexeme_clusters(
    prefixes: Sequence[int] = (4, 6, 10, 20),
    prob_buckets: int = 10,
    lower_fallback: bool = True,
    max_prefixes: int = 512,
    hashtag_fallback: bool = True,
    lang: str = "en",
) -> Model[List[Doc], Floats2d]:
    """Brown cluster prefix one-hots (one block per length in ``prefixes``, each
    ``min(2**k, max_prefixes)`` wide) and a log-probability band one-hot (``prob_buckets``
    wide) per token, from spacy-lookups-data's ``{lang}_lexeme_cluster``/``_prob`` tables."""
    prefixes = [int(k) for k in prefixes]
    for k in prefixes:
        if not 1 <= k <= MAX_PREFIX_LEN:
            raise ValueError(
                f"LexemeClusters.v1: prefix length {k} is out of range 1..{MAX_PREFIX_LEN} "
                "(the table's cluster paths have at most 18 bits)"
            )
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"LexemeClusters.v1: repeated prefix lengths in {prefixes}")
    if prob_buckets < 0 or max_prefixes < 2:
        raise ValueError(
            f"LexemeClusters.v1: prob_buckets must be >= 0 (got {prob_buckets}) and max_prefixes "
            f">= 2 (got {max_prefixes})"
        )
    widths = [min(2 ** k, int(max_prefixes)) for k in prefixes]
    nO = sum(widths) + int(prob_buckets)
    if nO == 0:
        raise ValueError("LexemeClusters.v1: no prefixes and no prob_buckets: the layer would be empty")
    lookup = _ClusterLookup()
    return Model(
        LEXEME_CLUSTERS,
        lambda model, docs, is_train: (lookup.rows(model, docs), _no_backprop),
        init=lambda model, X=None, Y=None: lookup.build_index(model),
        dims={"nO": nO},
        attrs={
            "lang": str(lang),
            "prefixes": prefixes,
            "widths": widths,
            "prob_buckets": int(prob_buckets),
            "lower_fallback": bool(lower_fallback),
            "hashtag_fallback": bool(hashtag_fallback),
            # built from the table (initialize or first use), saved with the model:
            "index": [],  # per prefix length, the prefix values that have their own column
            "other": [],  # per prefix length, whether the last column takes the other prefixes
            "prob_range": [],  # [lowest, highest] log-probability of the table
            BINARY_ROWS: True,  # one-hots
            WORD_ROWS: True,  # looked up by the token's string
        },
    )


# ---------------------------------------------------------------------------------------------
# the table, once per process


class LexemeTable:
    """The cluster and log-probability of every word of the tables, by string hash (spaCy's
    ORTH/LOWER ids): ``keys`` sorted, ``cluster_id`` an index into ``clusters`` (the distinct
    cluster values, 0 = no cluster), ``prob`` the log-probability."""

    def __init__(self, words: Dict[str, int], probs: Dict[str, float], oov_prob: float) -> None:
        keys = numpy.fromiter((get_string_id(w) for w in words), dtype="uint64", count=len(words))
        values = numpy.fromiter(words.values(), dtype="int64", count=len(words))
        prob = numpy.fromiter((probs.get(w, oov_prob) for w in words), dtype="float32", count=len(words))
        order = numpy.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.clusters, inverse = numpy.unique(values[order], return_inverse=True)
        self.cluster_id = inverse.reshape(-1).astype("int32")
        self.prob = prob[order]
        self.prob_min = float(prob.min()) if len(prob) else oov_prob
        self.prob_max = float(prob.max()) if len(prob) else oov_prob

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, hashes: numpy.ndarray) -> numpy.ndarray:
        """Row of each hash in the table, -1 where absent."""
        if not len(self.keys):
            return numpy.full(len(hashes), -1, dtype="int64")
        pos = numpy.searchsorted(self.keys, hashes)
        pos = numpy.minimum(pos, len(self.keys) - 1)
        return numpy.where(self.keys[pos] == hashes, pos, -1).astype("int64")


_TABLES: Dict[str, LexemeTable] = {}
_TABLES_LOCK = threading.Lock()


def load_lexeme_table(lang: str = "en") -> LexemeTable:
    """The ``{lang}_lexeme_cluster``/``_prob`` tables of the installed spacy-lookups-data,
    read once per process (later calls share them)."""
    with _TABLES_LOCK:
        table = _TABLES.get(lang)
        if table is None:
            table = _TABLES[lang] = _read_tables(lang)
        return table


def _read_tables(lang: str) -> LexemeTable:
    from spacy.util import load_language_data

    try:
        import spacy_lookups_data  # noqa: F401
    except ImportError:
        raise ValueError(
            f"LexemeClusters.v1 reads the Brown clusters and word probabilities of the "
            f"{LOOKUPS_PACKAGE!r} package, which is not installed: `pip install {LOOKUPS_PACKAGE}` "
            "(a 98 MB wheel; works offline afterwards)"
        ) from None
    paths = registry.lookups.get(lang) if lang in registry.lookups else {}
    missing = [t for t in TABLES if t not in paths]
    if missing:
        raise ValueError(
            f"LexemeClusters.v1: the installed {LOOKUPS_PACKAGE} has no {', '.join(missing)} "
            f"table(s) for language {lang!r} (English has them: lang = \"en\")"
        )
    clusters = load_language_data(paths["lexeme_cluster"])
    probs = load_language_data(paths["lexeme_prob"])
    oov_prob = min(probs.values()) if probs else -20.0
    if "lexeme_settings" in paths:
        oov_prob = float(load_language_data(paths["lexeme_settings"]).get("oov_prob", oov_prob))
    return LexemeTable(clusters, probs, oov_prob)


# ---------------------------------------------------------------------------------------------
# the model's columns and rows


def column_index(table: LexemeTable, k: int, width: int) -> Tuple[List[int], bool]:
    """The prefixes of length ``k`` that get a column, most probability mass first (ties by
    value), and whether there were more than fit (then the last column takes the others)."""
    mass = numpy.bincount(table.cluster_id, weights=numpy.exp(table.prob.astype("float64")),
                          minlength=len(table.clusters))
    prefix = table.clusters & ((1 << k) - 1)
    totals: Dict[int, float] = {}
    for value, full, m in zip(prefix.tolist(), table.clusters.tolist(), mass.tolist()):
        if full == 0:  # no cluster
            continue
        totals[value] = totals.get(value, 0.0) + m
    ranked = sorted(totals, key=lambda v: (-totals[v], v))
    if len(ranked) <= width:
        return ranked, False
    return ranked[: width - 1], True


class _ClusterLookup:
    """Per model: the shared table and, for the model's saved column index, the column of each
    distinct cluster in each prefix block (rebuilt when the index changes, e.g. on loading).
    Thread-safe; not in attrs, so never serialised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Optional[Tuple] = None
        self._columns: Optional[List[numpy.ndarray]] = None
        self._rows = StringMemo()  # ORTH id -> table row (-1: none); the table never changes

    def __deepcopy__(self, memo: Dict) -> "_ClusterLookup":
        return _ClusterLookup()

    def __getstate__(self) -> Dict:
        return {}

    def __setstate__(self, state: Dict) -> None:
        self.__init__()

    def build_index(self, model: Model) -> None:
        """(Re)build the column index from the table: ``initialize``."""
        table = load_lexeme_table(model.attrs["lang"])
        with self._lock:
            self._set_index(model, table)

    def _set_index(self, model: Model, table: LexemeTable) -> None:
        index, other = [], []
        for k, width in zip(model.attrs["prefixes"], model.attrs["widths"]):
            values, capped = column_index(table, k, width)
            index.append(values)
            other.append(capped)
        model.attrs["index"] = index
        model.attrs["other"] = other
        model.attrs["prob_range"] = [table.prob_min, table.prob_max]

    def columns(self, model: Model, table: LexemeTable) -> List[numpy.ndarray]:
        with self._lock:
            if not model.attrs["prob_range"] or len(model.attrs["index"]) != len(model.attrs["prefixes"]):
                self._set_index(model, table)  # used without initialize: build it now
            index, other = model.attrs["index"], model.attrs["other"]
            key = (id(table), id(index), id(other))
            if self._key != key or self._columns is None:
                self._columns = [
                    _cluster_columns(table.clusters, k, width, values, capped)
                    for k, width, values, capped in zip(model.attrs["prefixes"], model.attrs["widths"], index, other)
                ]
                self._key = key
            return self._columns

    def rows(self, model: Model, docs: List[Doc]) -> numpy.ndarray:
        nO = model.get_dim("nO")
        docs = [doc for doc in docs if len(doc)]
        if not docs:
            return model.ops.alloc2f(0, nO)
        table = load_lexeme_table(model.attrs["lang"])
        columns = self.columns(model, table)
        attrs = numpy.concatenate([doc.to_array([ORTH, LOWER]) for doc in docs]).astype("uint64")
        uniq, first, inverse = numpy.unique(attrs[:, 0], return_index=True, return_inverse=True)
        memo = self._rows
        row = numpy.fromiter((memo.get(orth, -2) for orth in uniq.tolist()), dtype="int64", count=len(uniq))
        new = numpy.flatnonzero(row == -2)
        if len(new):
            row[new] = self._table_rows(model, table, docs[0].vocab.strings, uniq[new], attrs[first[new], 1])
            for orth, found in zip(uniq[new].tolist(), row[new].tolist()):
                memo[orth] = found
        token_row = row[inverse.reshape(-1)]
        found = numpy.flatnonzero(token_row >= 0)
        Y = numpy.zeros((len(token_row), nO), dtype="float32")
        if len(found):
            cids = table.cluster_id[token_row[found]]
            offset = 0
            for width, cols in zip(model.attrs["widths"], columns):
                col = cols[cids]
                has = col >= 0
                Y[found[has], offset + col[has]] = 1.0
                offset += width
            n_buckets = model.attrs["prob_buckets"]
            if n_buckets:
                lo, hi = model.attrs["prob_range"]
                p = table.prob[token_row[found]].astype("float64")
                band = numpy.floor((p - lo) / max(hi - lo, 1e-6) * n_buckets).astype("int64")
                Y[found, offset + numpy.clip(band, 0, n_buckets - 1)] = 1.0
        return model.ops.asarray2f(Y)

    @staticmethod
    def _table_rows(model: Model, table: LexemeTable, strings: Any, orths: numpy.ndarray, lowers: numpy.ndarray) -> numpy.ndarray:
        """The table row of each string (its ORTH and LOWER ids): by its text, then lower-cased,
        then for a hashtag the word without ``#``; -1 for none, and for mentions and URLs."""
        row = table.find(orths)
        if model.attrs["lower_fallback"]:
            miss = row < 0
            if miss.any():
                row[miss] = table.find(lowers[miss])
        texts = {}
        if model.attrs["hashtag_fallback"]:
            for i in numpy.flatnonzero(row < 0).tolist():
                text = texts[i] = strings[int(orths[i])]
                if len(text) > 1 and text[0] == "#":
                    row[i] = _ClusterLookup._find_text(table, text[1:], model.attrs["lower_fallback"])
        for i in numpy.flatnonzero(row >= 0).tolist():  # mentions and URLs: zeros
            text = texts.get(i) or strings[int(orths[i])]
            if twitter_norm(text) in (USR, URL):
                row[i] = -1
        return row

    @staticmethod
    def _find_text(table: LexemeTable, text: str, lower: bool) -> int:
        keys = [text, text.lower()] if lower and text.lower() != text else [text]
        for key in keys:
            hit = int(table.find(numpy.asarray([get_string_id(key)], dtype="uint64"))[0])
            if hit >= 0:
                return hit
        return -1


def _cluster_columns(clusters: numpy.ndarray, k: int, width: int, values: Sequence[int], capped: bool) -> numpy.ndarray:
    """The column (or -1) of each distinct full cluster value in the block of length ``k``."""
    where = {int(v): i for i, v in enumerate(values)}
    fallback = width - 1 if capped else -1
    prefix = (clusters & ((1 << k) - 1)).tolist()
    out = numpy.asarray([where.get(p, fallback) for p in prefix], dtype="int64")
    out[clusters == 0] = -1
    return out

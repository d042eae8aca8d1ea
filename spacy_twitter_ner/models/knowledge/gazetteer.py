"""Gazetteer features: for each name list, whether a token begins or continues a phrase found in
that list (every phrase of up to ``max_len`` tokens is looked up). Every top WNUT16 system used lists like these; they add
knowledge that 2,400 labelled tweets cannot hold.

The lists are read once, in ``initialize``, and travel inside the model (its attrs), so a trained
pipeline does not need the list folder. ``TokenFeatures.v1`` builds this layer from its
``gazetteer_*`` settings.
"""
import functools
import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d

from ..lexical import StringMemo, word_key
from . import BINARY_ROWS


def load_lists(folder: Path, names: Sequence[str]) -> Dict[str, List[str]]:
    """Lower-cased, de-duplicated entries of each named list file (one entry per line)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"gazetteer: the list folder {folder} does not exist")
    out: Dict[str, List[str]] = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise ValueError(f"gazetteer: no list file {path} (configured in gazetteer_lists)")
        seen = dict.fromkeys(
            " ".join(line.split()).lower()
            for line in path.read_text(encoding="utf8", errors="replace").splitlines()
        )
        seen.pop("", None)
        out[name] = list(seen)
    return out


def _match_key(text: str) -> str:
    key = word_key(text, lower=True)
    return key[1:] if len(key) > 1 and key[0] == "#" else key


class GazetteerMatcher:
    """Lookup of token n-grams in the lists: an n-gram dict plus a prefix set,
    so a token costs a dict lookup or two unless a long phrase is really under way."""

    def __init__(self, lists: Dict[str, List[str]], max_len: int) -> None:
        self.names = list(lists)
        self.max_len = max_len
        self.phrases: Dict[str, List[int]] = {}
        self.prefixes = set()
        self._keys = StringMemo()  # ORTH id -> match key
        for i, name in enumerate(self.names):
            for entry in lists[name]:
                words = entry.split(" ")
                if len(words) > max_len:
                    continue
                self.phrases.setdefault(entry, []).append(i)
                for n in range(1, len(words)):
                    self.prefixes.add(" ".join(words[:n]))

    @property
    def width(self) -> int:
        return 2 * len(self.names)

    def doc_flags(self, doc: Doc) -> numpy.ndarray:
        """``flags`` for a Doc."""
        return self.batch_flags([doc])

    def batch_flags(self, docs: Sequence[Doc]) -> numpy.ndarray:
        """``flags`` of every token of ``docs``, one doc after the other (no phrase crosses a
        doc's end). Each distinct string's match key is computed once (and memoised)."""
        docs = [doc for doc in docs if len(doc)]
        if not docs:
            return numpy.zeros((0, self.width), dtype="float32")
        strings = docs[0].vocab.strings
        orths = numpy.concatenate([doc.to_array(ORTH) for doc in docs])
        uniq, inverse = numpy.unique(orths, return_inverse=True)
        memo = self._keys
        keys: List[str] = []
        for orth in uniq.tolist():
            key = memo.get(orth)
            if key is None:
                key = memo[orth] = _match_key(strings[orth])
            keys.append(key)
        lengths = numpy.fromiter((len(doc) for doc in docs), dtype="int64", count=len(docs))
        return self._flags(keys, inverse.reshape(-1), numpy.repeat(numpy.cumsum(lengths), lengths))

    def flags(self, words: Iterable[str]) -> numpy.ndarray:
        """(tokens, 2 * lists): column 2i is 'begins a phrase of list i', 2i+1 'continues one'."""
        keys = [_match_key(w) for w in words]
        return self._flags(keys, numpy.arange(len(keys)), numpy.full(len(keys), len(keys), dtype="int64"))

    def _flags(self, keys: List[str], inverse: numpy.ndarray, ends: numpy.ndarray) -> numpy.ndarray:
        """The flags of tokens whose match keys are ``keys[inverse]``; ``ends[t]``: where token
        t's doc ends. One-token phrases are flagged per distinct key and gathered; only tokens
        that begin a longer phrase's prefix are walked forward."""
        phrases, prefixes = self.phrases, self.prefixes
        rows: List[int] = []
        cols: List[int] = []
        for i, key in enumerate(keys):
            for lst in phrases.get(key, ()):
                rows.append(i)
                cols.append(2 * lst)
        single = numpy.zeros((len(keys), self.width), dtype="float32")
        single[rows, cols] = 1.0
        out = single[inverse]
        is_prefix = numpy.fromiter((key in prefixes for key in keys), dtype=bool, count=len(keys))
        walk = numpy.flatnonzero(is_prefix[inverse])
        if not len(walk):
            return out
        token_keys = [keys[i] for i in inverse.tolist()]
        rows, cols = [], []
        for start, stop in zip(walk.tolist(), numpy.minimum(ends[walk], walk + self.max_len).tolist()):
            phrase = token_keys[start]
            for end in range(start + 2, stop + 1):
                phrase = phrase + " " + token_keys[end - 1]
                for lst in phrases.get(phrase, ()):
                    rows.append(start)
                    cols.append(2 * lst)
                    rows.extend(range(start + 1, end))
                    cols.extend([2 * lst + 1] * (end - start - 1))
                if phrase not in prefixes:
                    break
        out[rows, cols] = 1.0
        return out


GAZETTEER = "twitter_gazetteer"


def build_gazetteer_features(folder: Optional[str], names: Sequence[str], max_len: int) -> Model[List[Doc], Floats2d]:
    """Begin/continue flags of each list's phrases for every token (width ``2 * len(names)``)."""
    matchers = _MatcherCache(max_len)
    return Model(
        GAZETTEER,
        functools.partial(_gazetteer_forward, matchers),
        init=_init_gazetteer,
        dims={"nO": 2 * len(names)},
        attrs={"dir": folder, "lists": list(names), "entries": {}, BINARY_ROWS: True},
    )


def _gazetteer_forward(matchers: "_MatcherCache", model: Model, docs: List[Doc], is_train: bool):
    return matchers.get(model).batch_flags(docs), _no_backprop


def _no_backprop(dY) -> List:
    return []


def _init_gazetteer(model: Model, X=None, Y=None) -> None:
    if not model.attrs["dir"]:
        raise ValueError("TokenFeatures: gazetteer_lists are set but gazetteer_dir is not")
    model.attrs["entries"] = load_lists(Path(model.attrs["dir"]), model.attrs["lists"])


class _MatcherCache:
    """The matcher for the layer's current entries, built once and shared by threads."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self._key: Optional[Tuple[int, Tuple[str, ...]]] = None
        self._matcher: Optional["GazetteerMatcher"] = None
        self._lock = threading.Lock()

    def get(self, model: Model) -> "GazetteerMatcher":
        entries, names = model.attrs["entries"], model.attrs["lists"]
        with self._lock:
            if self._matcher is None or self._key != (id(entries), tuple(names)):
                if set(entries) != set(names):
                    raise ValueError(
                        "TokenFeatures: the gazetteer lists have not been loaded: initialize the "
                        f"pipeline (lists {names} from {model.attrs['dir']})"
                    )
                self._matcher = GazetteerMatcher({n: entries[n] for n in names}, self.max_len)
                self._key = (id(entries), tuple(names))
            return self._matcher

    def __deepcopy__(self, memo: dict) -> "_MatcherCache":
        return _MatcherCache(self.max_len)

    def __getstate__(self) -> dict:  # pickling (a lock cannot be): the matcher is rebuilt on use
        return {"max_len": self.max_len}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_len"])

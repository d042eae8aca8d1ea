"""Gazetteer features: for each name list, whether a token begins or continues a phrase found in
that list (every phrase of up to ``max_len`` tokens is looked up). Every top WNUT16 system used lists like these; they add
knowledge that 2,400 labelled tweets cannot hold.

The lists are read once, in ``initialize``, and travel inside the model (its attrs), so a trained
pipeline does not need the list folder.
"""
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc

from .features import word_key


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
        self._keys: Dict[int, str] = {}
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
        """``flags`` for a Doc, with each distinct string's match key computed once."""
        strings = doc.vocab.strings
        keys = []
        for orth in doc.to_array(ORTH).tolist():
            key = self._keys.get(orth)
            if key is None:
                key = self._keys[orth] = _match_key(strings[orth])
            keys.append(key)
        return self._flags(keys)

    def flags(self, words: Iterable[str]) -> numpy.ndarray:
        """(tokens, 2 * lists): column 2i is 'begins a phrase of list i', 2i+1 'continues one'."""
        return self._flags([_match_key(w) for w in words])

    def _flags(self, keys: List[str]) -> numpy.ndarray:
        out = numpy.zeros((len(keys), self.width), dtype="float32")
        for start in range(len(keys)):
            phrase = keys[start]
            for end in range(start + 1, min(len(keys), start + self.max_len) + 1):
                if end > start + 1:
                    phrase = phrase + " " + keys[end - 1]
                for lst in self.phrases.get(phrase, ()):
                    out[start, 2 * lst] = 1.0
                    out[start + 1 : end, 2 * lst + 1] = 1.0
                if phrase not in self.prefixes:
                    break
        return out

"""A regex-based tokenizer for tweets.

spaCy's rule-based tokenizer splits ``@user``, ``#tag``, ``$CASHTAG``, emoticons and
emoji sequences in ways that hurt NER on tweets (scripts/tokenizer_disagreements.py lists
where the two differ on real tweets, and why ours is kept). This tokenizer runs a single
compiled master regex over the text (``re.findall``), so it stays fast enough to
compare against spaCy's Cython tokenizer, and keeps those units whole.

Guarantees: ``doc.text == text`` and exact ``token.idx`` offsets, never an empty
token, and linear-time matching (every alternative either consumes what it scans
or fails after a bounded look), so hostile input cannot trigger catastrophic
backtracking.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import registry
from spacy.vocab import Vocab

from .normalize import BARE_URL_HOST_PATTERN, DOMAIN_LABELS_PATTERN, URL, USR, twitter_norm

__all__ = ["USR", "URL", "twitter_norm", "TwitterTokenizer", "create_twitter_tokenizer"]

TOKENIZER_NAME = "spacy_twitter_ner.TwitterTokenizer.v1"
SERIALIZATION_VERSION = 1
# Written inside ``path`` when ``to_disk`` is handed an existing directory; spaCy's own
# ``Language.to_disk`` hands a file path (``<model>/tokenizer``) instead.
CONFIG_FILENAME = "tokenizer.json"

# First characters of the tokens twitter_norm can change without a dot in them (mentions and the
# scheme/www/t.co URL prefixes): lets the norm pass skip most tokens. Scheme-less URLs
# ("bit.ly/x") always hold a dot, which the norm pass checks for as well.
_NORM_FIRST_CHARS = frozenset("@hHwWtT")
_DOT = "."

# Lone UTF-16 surrogates cannot be UTF-8 encoded, so spaCy's StringStore rejects them.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_REPLACEMENT_CHAR = "\ufffd"


# ---------------------------------------------------------------------------
# Character classes
# ---------------------------------------------------------------------------

# Combining marks (Mn/Mc/Me) are not ``\w`` in Python's ``re``: without them Devanagari,
# Thai, Arabic diacritics ... would be cut inside words. All such marks lie below
# _MARK_SCAN_END except the variation-selector supplement, added explicitly.
_MARK_SCAN_START = 0x0300
_MARK_SCAN_END = 0x20000
_MARK_CATEGORIES = frozenset({"Mn", "Mc", "Me"})
_VARIATION_SELECTOR_SUPPLEMENT = (0xE0100, 0xE01EF)
_ZERO_WIDTH_JOINERS = (0x200C, 0x200D)  # ZWNJ / ZWJ occur inside Indic and Persian words


def _ranges_to_class(ranges: Iterable[tuple[int, int]]) -> str:
    """Render code point ranges as the body of a regex character class."""
    parts = []
    for start, end in ranges:
        parts.append(re.escape(chr(start)) if start == end else f"{re.escape(chr(start))}-{re.escape(chr(end))}")
    return "".join(parts)


def _combining_mark_ranges() -> List[tuple[int, int]]:
    """Contiguous ranges of combining-mark code points (computed once, at import)."""
    ranges: List[tuple[int, int]] = []
    for cp in range(_MARK_SCAN_START, _MARK_SCAN_END):
        if unicodedata.category(chr(cp)) in _MARK_CATEGORIES:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    ranges.append(_VARIATION_SELECTOR_SUPPLEMENT)
    ranges.append(_ZERO_WIDTH_JOINERS)
    return ranges


_MARKS = _ranges_to_class(_combining_mark_ranges())

# Emoji that can start an emoji sequence: the pictographic planes plus the BMP symbols
# that have emoji presentation (with or without U+FE0F).
_EMOJI_BASE_RANGES = [
    (0x1F000, 0x1FAFF),  # mahjong .. symbols & pictographs ext-A (incl. flags, skin tones)
    (0x2600, 0x27BF),  # misc symbols, dingbats
    (0x2190, 0x21FF),  # arrows (↔ ↩ ...)
    (0x2300, 0x23FF),  # misc technical (⌚ ⏰ ...)
    (0x2B00, 0x2BFF),  # ⬛ ⭐ ⭕ ...
    (0x2900, 0x297F),  # ⤴ ⤵
    (0x25A0, 0x25FF),  # geometric shapes (▶ ◀ ◻ ...)
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x24C2, 0x24C2),
]
_EMOJI_BASE = _ranges_to_class(_EMOJI_BASE_RANGES)
_EMOJI_MODIFIERS = "\ufe0e\ufe0f\U0001F3FB-\U0001F3FF\u20e3"  # variation selectors, skin tones, keycap
_EMOJI_TAGS = "\U000E0020-\U000E007F"  # subdivision flags (🏴 + tag letters + cancel tag)
_REGIONAL_INDICATOR = "[\U0001F1E6-\U0001F1FF]"
_ZWJ = "\u200d"

# Characters that end or may not appear in a URL token. Trailing sentence punctuation is
# split off the end of a URL; emoji glued to a URL become their own tokens.
_URL_TRAILING_PUNCT = ".,!?:;)\\]}\"'’”…>"
_URL_CHAR = f"[^\\s{_EMOJI_BASE}{_EMOJI_MODIFIERS}]"
_URL_LAST_CHAR = f"[^\\s{_EMOJI_BASE}{_EMOJI_MODIFIERS}{re.escape(_URL_TRAILING_PUNCT)}]"

# Repeated punctuation kept as one token ("...", "!!!", "???", "--"). A backreference would
# capture a group and make ``findall`` return groups, so each run is spelled out.
_REPEATABLE_PUNCT = ".!?-*~=+/\\|<>^,;:'\"`$%&—–…"
_CURRENCY = "$€£¥"

# ---------------------------------------------------------------------------
# Token patterns, in priority order
# ---------------------------------------------------------------------------

# A scheme cut short: tweets cut at 140 characters end in "https:/…".
_CUT_URL = r"(?i:https?:/)(?=…|\s|$)"
_URL_PAT = (
    r"(?i:https?://|www\.(?=\w)|t\.co/)"
    rf"(?:{_URL_CHAR}*{_URL_LAST_CHAR})?"  # greedy, backs off only over trailing punctuation
    rf"|{_CUT_URL}"
)

# A run of word characters (incl. combining marks). 'h'/'w' are only taken when they do not
# start a URL, so a URL glued to a word ("Questionhttp://bit.ly/x", "#tagshttps://t.co/y")
# is still split off whole. Matching runs (not single chars) keeps the hot loop in C.
_NOT_URL_START = rf"(?!(?i:https?://|www\.\w)|{_CUT_URL})"
_WORD_RUN = rf"(?:[^\WhHwW]++|[{_MARKS}]++|{_NOT_URL_START}[hHwW])"

_MENTION_PAT = rf"@{_WORD_RUN}++"
_HASHTAG_PAT = rf"#{_WORD_RUN}++"
_ENTITY_PAT = r"&(?:[a-zA-Z]{2,8}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});"
_KEYCAP_PAT = "[0-9#*]\ufe0f?\u20e3"

_EMOTICON_PATS = [
    # western, optional nose and repeated mouth: :-) :)) ;) =( :'( :-/ :| :* :3
    r"[:;=][-^'’]?(?:\)++|\(++|\]++|\[++|\|++|\*++|\}++|\{++|/(?!/)|\\|3(?!\d))",
    # letter mouths must not continue into a word: ":D" but not ":Don"
    r"[:;=][-^'’]?(?:D++|[pPoOsSxXb])(?!\w)",
    r"(?:x|X)D++(?!\w)",  # xD XDD
    r"</?3++(?!\d)",  # <3 </3 <333 (but "<30" stays "<", "30")
    r"\((?:-)?[:;]",  # reversed (: (-;
    r"\^[_.\-]?\^|-_++-|>_<|;_;",  # ^_^ ^^ -_- >_<
    r"(?:[oO0]_[oO0]|[tT]_[tT])(?!\w)",  # o_O T_T
]
_EMOTICON_PAT = "|".join(_EMOTICON_PATS)

_EMOJI_ELEMENT = rf"[{_EMOJI_BASE}][{_EMOJI_MODIFIERS}]*+[{_EMOJI_TAGS}]*+"
_EMOJI_PAT = rf"{_REGIONAL_INDICATOR}{{2}}|{_EMOJI_ELEMENT}(?:{_ZWJ}{_EMOJI_ELEMENT})*"

# The clitic "'s" is its own token, as in spaCy and the WNUT train files ("Prompto 's", "it 's"),
# so that a name's entity span is the name alone. Other contractions ("can't", "I'm", "you're")
# stay whole: that is how the corpora mostly write them.
_CLITIC_S_PAT = rf"['’][sS](?![\w{_MARKS}])"

# Words: may start with digits ("4ever", "2nd") but need a non-digit; a hyphen before digits
# does not end them ("AK-47", "Pac-12", "CVE-2017-0144": whole in spaCy and the corpora);
# internal apostrophes keep contractions whole ("can't", "I'm", "rock'n'roll"), except a
# final "'s" (see above).
_WORD_PAT = (
    rf"\d*+(?:[^\W\dhHwW]|{_NOT_URL_START}[hHwW]){_WORD_RUN}*+"
    rf"(?:-\d{_WORD_RUN}*+)*+"
    rf"(?:['’](?![sS](?![\w{_MARKS}])){_WORD_RUN}++)*+"
)
# "w/" (with) and "w/o" (without) are words of their own, as in spaCy and the corpora.
_WITH_PAT = r"[wW]/(?:[oO](?!\w))?"
# The common case first: a word not glued by ".", "@", "+" or "-" to more word characters is a
# plain word; only the rest pay for the e-mail / URL / abbreviation patterns below.
_PLAIN_WORD_PAT = rf"{_WORD_PAT}(?![.@+-][^\W_])"

# E-mail addresses, before mentions can take their "@domain" part ("foo@bar.com").
_EMAIL_PAT = (
    r"[\w+-]{1,64}+(?:\.[\w+-]{1,64}+){0,8}+@"
    rf"{DOMAIN_LABELS_PATTERN}(?:[a-z]{{2,24}}+|[A-Z]{{2,24}}+)(?![\w-])"
)
# URLs without scheme ("bit.ly/x", "example.co.uk"): the host rule is shared with twitter_norm;
# a path is taken like a scheme URL's, a lone "?" or "#" is sentence punctuation.
_URL_PATH = rf"(?:{_URL_CHAR}*{_URL_LAST_CHAR})"
_BARE_URL_PAT = rf"{BARE_URL_HOST_PATTERN}(?:/{_URL_PATH}?|[?#]{_URL_PATH})?"
# Dotted abbreviations stay whole, as in spaCy: "U.S.A.", "U.K.", "e.g.", "p.m" (single letters
# only, so "word.Next" and "J.Crew" are still split at the dot).
_ABBREV_PAT = r"[^\W\d_](?:\.[^\W\d_]){1,9}+\.?(?!\w)"
# All three need a "." or "@" after the first run of word characters: one bounded look skips them.
# Every part of them is bounded too, so a failed attempt never costs more than a bounded look.
_DOTTED_PAT = rf"(?=[\w+-]{{1,64}}+[.@])(?:{_EMAIL_PAT}|{_BARE_URL_PAT}|{_ABBREV_PAT})"

# Cashtags ("$AAPL", "$BRK.A"), Twitter's rule: 1-6 letters, an optional ".x"/"_xx" class suffix.
_CASHTAG_PAT = r"\$[A-Za-z]{1,6}+(?:[._][A-Za-z]{1,2}+)?(?!\w)"
# Numbers keep their separators: "6:30", "3.5", "1,000", and dates, scores and fractions
# ("9/11", "24/7", "1/2": whole in spaCy and the corpora).
_NUMBER_PAT = rf"[{re.escape(_CURRENCY)}]?\d++(?:[.,:/]\d++)*+%?"
_PUNCT_PAT = "|".join(f"{re.escape(c)}++" for c in _REPEATABLE_PUNCT)
_WHITESPACE_PAT = r"\s++"
_FALLBACK_PAT = rf"(?s:.)[{_MARKS}]*+"  # any other char, with its combining marks

# Whitespace, the most frequent piece, goes first: no other pattern can start with it.
_TOKEN_PATTERNS = [
    _WHITESPACE_PAT,
    _URL_PAT,
    _MENTION_PAT,
    _HASHTAG_PAT,
    _ENTITY_PAT,
    _KEYCAP_PAT,
    _EMOTICON_PAT,
    _EMOJI_PAT,
    _WITH_PAT,
    _PLAIN_WORD_PAT,
    _DOTTED_PAT,
    _WORD_PAT,
    _CASHTAG_PAT,
    _NUMBER_PAT,
    _CLITIC_S_PAT,
    _PUNCT_PAT,
    _FALLBACK_PAT,
]
TOKEN_RE = re.compile("|".join(f"(?:{p})" for p in _TOKEN_PATTERNS))
_findall = TOKEN_RE.findall

_SPACE = " "


class _TextPreservingDoc(Doc):
    """A Doc whose ``text`` is the caller's original string.

    Only used for input with lone surrogates: those are tokenised as U+FFFD (same length,
    so offsets stay exact) because the StringStore cannot encode them, while ``doc.text``
    still returns exactly what was passed in.
    """

    _original_text: str

    @property
    def text(self) -> str:  # type: ignore[override]
        return self._original_text

    @property
    def text_with_ws(self) -> str:  # type: ignore[override]
        return self._original_text

    def __str__(self) -> str:
        return self._original_text

    def __repr__(self) -> str:
        return self._original_text

    def to_dict(self, *, exclude: Iterable[str] = tuple()) -> dict:
        """Serialize the tokenised (U+FFFD) text: msgpack cannot encode lone surrogates."""
        data = super().to_dict(exclude=exclude)
        if "text" in data:
            data["text"] = _SURROGATE_RE.sub(_REPLACEMENT_CHAR, self._original_text)
        return data


class TwitterTokenizer:
    """Tokenizer for tweets: keeps mentions, URLs (with or without scheme), e-mail addresses,
    hashtags, cashtags, dotted abbreviations, emoticons and emoji whole, and splits the clitic
    ``'s`` off a name as the WNUT corpora do.

    Whitespace follows spaCy's convention: a single ' ' after a token becomes its
    ``whitespace_``; any other whitespace is a token of its own.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        original = text
        has_surrogate = _SURROGATE_RE.search(text) is not None
        if has_surrogate:
            text = _SURROGATE_RE.sub(_REPLACEMENT_CHAR, text)
        words, spaces = self._split(text)
        doc_cls = _TextPreservingDoc if has_surrogate else Doc
        doc = doc_cls(self.vocab, words=words, spaces=spaces)
        if has_surrogate:
            doc._original_text = original
        for i, word in enumerate(words):
            if word[0] in _NORM_FIRST_CHARS or _DOT in word:
                norm = twitter_norm(word)
                if norm is not word:
                    doc[i].norm_ = norm
        return doc

    @staticmethod
    def _split(text: str) -> tuple[List[str], List[bool]]:
        """Words and trailing-space flags of ``text`` (spaCy's whitespace convention)."""
        words: List[str] = []
        spaces: List[bool] = []
        append_word = words.append
        append_space = spaces.append
        for piece in _findall(text):
            if piece == _SPACE:
                if words:
                    spaces[-1] = True
                else:
                    append_word(piece)
                    append_space(False)
            elif piece[0].isspace():
                # A whitespace run (maximal, so the previous token is never whitespace).
                if words and piece[0] == _SPACE:
                    spaces[-1] = True
                    piece = piece[1:]
                append_word(piece)
                append_space(False)
            else:
                append_word(piece)
                append_space(False)
        return words, spaces

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        """Tokenise a stream of texts (``batch_size`` is accepted for API compatibility)."""
        for text in texts:
            yield self(text)

    # -- serialization: the tokenizer is stateless, but spaCy's Language (de)serializes it --

    def _config(self) -> dict:
        return {"name": TOKENIZER_NAME, "version": SERIALIZATION_VERSION}

    def _check_config(self, cfg: dict) -> None:
        if not isinstance(cfg, dict) or cfg.get("name") != TOKENIZER_NAME:
            raise ValueError(f"Not a serialized {TOKENIZER_NAME}: {cfg!r}")
        if cfg.get("version", 0) > SERIALIZATION_VERSION:
            raise ValueError(
                f"Serialized {TOKENIZER_NAME} has version {cfg['version']}, "
                f"this code reads up to {SERIALIZATION_VERSION}"
            )

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """Serialize the (empty) settings; exists so ``nlp.to_bytes()`` works."""
        return srsly.json_dumps(self._config()).encode("utf8")

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "TwitterTokenizer":
        """Check that ``bytes_data`` came from this tokenizer; there is no state to load."""
        self._check_config(srsly.json_loads(bytes_data.decode("utf8")))
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        """Write the settings as JSON.

        ``Language.to_disk`` passes a file path (``<model>/tokenizer``); if ``path`` is an
        existing directory the file goes inside it as ``tokenizer.json``.
        """
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path, self._config())

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "TwitterTokenizer":
        """Read back what :meth:`to_disk` wrote (a file, or a directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILENAME
        self._check_config(srsly.read_json(path))
        return self

    def __reduce__(self):
        return (self.__class__, (self.vocab,))


@registry.tokenizers(TOKENIZER_NAME)
def create_twitter_tokenizer() -> Callable[[Language], TwitterTokenizer]:
    """Registered factory: ``[nlp.tokenizer] @tokenizers = "spacy_twitter_ner.TwitterTokenizer.v1"``."""

    def make_tokenizer(nlp: Language) -> TwitterTokenizer:
        return TwitterTokenizer(nlp.vocab)

    return make_tokenizer

"""The one token normalisation shared by raw text and pre-tokenised corpora.

A model sees tweets from two sources: raw text split by :class:`~.tokenizer.TwitterTokenizer`
and CoNLL files whose tokens were split by someone else. Mentions and URLs are open-ended
vocabularies, so both are collapsed to a placeholder (``<USR>``, ``<URL>``). If the tokenizer and
the feature code each had their own idea of what a URL is, a model trained on CoNLL tokens
would see different norms at prediction time; this module is that single idea. It depends on
nothing but ``re`` so that every other module can import it.
"""
from __future__ import annotations

import re

__all__ = [
    "USR",
    "URL",
    "URL_PREFIXES",
    "DOMAIN_LABELS_PATTERN",
    "BARE_URL_HOST_PATTERN",
    "is_bare_url",
    "twitter_norm",
]

USR = "<USR>"
URL = "<URL>"

# Prefixes (compared lower-cased) that make a token a URL on their own. One slash is enough:
# tweets cut at 140 characters end in "https:/…".
URL_PREFIXES = ("http:/", "https:/", "www.", "t.co/")
_URL_PREFIX_MAX_LEN = max(len(p) for p in URL_PREFIXES)
_MENTION_SIGIL = "@"

# One DNS label and its dot, at most 63 characters (the DNS limit). The bound keeps every
# failed attempt a bounded look, so the tokenizer's master regex stays linear-time. A label
# may not end in "www": "www." starts a URL of its own (the tokenizer splits "abc", "www.x.com"
# and "a", ".", "www.x.com" off there, and ``www.`` hosts are caught by the prefix rule anyway).
_LABEL = r"[^\W_][\w-]{0,62}+(?<![wW]{3})"
DOMAIN_LABELS_PATTERN = rf"(?:{_LABEL}\.){{1,8}}"

# Top-level domains accepted for a scheme-less URL *without* a path. Tweets often lack the space
# after a full stop ("today.this", "equality.and"), so any letters after a dot would glue
# sentences together: only TLDs that are not also common English (or chat) words are listed.
_BARE_TLDS = (
    "com", "net", "org", "edu", "gov", "mil", "info", "biz", "io", "co", "ly", "tv", "fm",
    "ca", "uk", "au", "de", "fr", "jp", "nl", "ru", "es", "ie", "nz", "za", "eu", "cc", "xyz",
)
# A scheme-less host: either a listed TLD (any case, "GOOGLE.COM"), or any lower-case TLD
# directly followed by a path ("youtu.be/x"); lower-case only, as in spaCy's URL_MATCH, so that
# "word.Next/..." is not a host. The path itself is left to the caller.
BARE_URL_HOST_PATTERN = (
    rf"{DOMAIN_LABELS_PATTERN}"
    rf"(?:(?i:{'|'.join(_BARE_TLDS)})(?![\w-])|[a-z]{{2,24}}+(?=/))"
)
_BARE_URL_RE = re.compile(rf"{BARE_URL_HOST_PATTERN}(?:[/?#]\S*)?")


def is_bare_url(text: str) -> bool:
    """Whether ``text`` is a whole URL without scheme or ``www.`` (``bit.ly/x``, ``example.co.uk``)."""
    return "." in text and _BARE_URL_RE.fullmatch(text) is not None


def twitter_norm(text: str) -> str:
    """Collapse the open-ended vocabularies of a tweet: mentions -> ``USR``, URLs -> ``URL``.

    Shared by the tokenizer (``token.norm_``) and the model's features so that both agree,
    whether the strings come from :class:`~.tokenizer.TwitterTokenizer` or from pre-tokenised
    corpora. Anything else is returned unchanged (the very same object).
    """
    if len(text) > 1 and text[0] == _MENTION_SIGIL:
        return USR
    if text[:_URL_PREFIX_MAX_LEN].lower().startswith(URL_PREFIXES) or is_bare_url(text):
        return URL
    return text

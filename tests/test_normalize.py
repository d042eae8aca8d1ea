"""Tests for spacy_twitter_ner.normalize: the norms shared by raw text and CoNLL tokens."""
import subprocess
import sys

import pytest

from spacy_twitter_ner import normalize
from spacy_twitter_ner.normalize import URL, USR, is_bare_url, twitter_norm


def test_placeholders():
    assert (USR, URL) == ("<USR>", "<URL>")


@pytest.mark.parametrize(
    "text,expected",
    [
        # mentions
        ("@a_b", USR),
        ("@nyknicks", USR),
        ("@", "@"),
        # URLs with a scheme, www. or t.co/
        ("http://t.co/xyz", URL),
        ("https://www.example.com/a?b=c&d=e", URL),
        ("HTTP://X.COM", URL),
        ("www.example.com", URL),
        ("WWW.Example.com", URL),
        ("t.co/abc", URL),
        # URLs without a scheme
        ("bit.ly/abc", URL),
        ("youtu.be/abc", URL),
        ("example.co.uk", URL),
        ("example.com", URL),
        ("GOOGLE.COM", URL),
        ("Agar.io", URL),
        ("my-site.org/path?q=1#x", URL),
        ("news.bbc.co.uk/sport", URL),
        # not URLs
        ("youtu.be", "youtu.be"),  # an unlisted TLD needs a path
        ("today.this", "today.this"),  # a missing space after a full stop
        ("word.Next/x", "word.Next/x"),  # an unlisted TLD must be lower-case
        ("U.S.A.", "U.S.A."),
        ("e.g.", "e.g."),
        ("3.5", "3.5"),
        ("foo@bar.com", "foo@bar.com"),  # an e-mail address is neither a mention nor a URL
        ("comedy.community", "comedy.community"),  # "com" must be the whole label
        (".com", ".com"),
        ("...", "..."),
        ("http", "http"),
        ("https:", "https:"),
        ("#NBA", "#NBA"),
        ("hello", "hello"),
        ("", ""),
    ],
)
def test_twitter_norm(text, expected):
    assert twitter_norm(text) == expected


@pytest.mark.parametrize("text", ["hello", "U.S.A.", "today.this", "#tag", "", "@"])
def test_unchanged_text_is_the_same_object(text):
    # The tokenizer only writes token.norm_ when twitter_norm returns a different object.
    assert twitter_norm(text) is text


@pytest.mark.parametrize(
    "text,expected",
    [("bit.ly/x", True), ("example.com", True), ("a.b", False), ("example.com x", False)],
)
def test_is_bare_url(text, expected):
    assert is_bare_url(text) is expected


def test_tokenizer_reexports_the_same_objects():
    from spacy_twitter_ner import tokenizer

    assert tokenizer.twitter_norm is normalize.twitter_norm
    assert (tokenizer.USR, tokenizer.URL) == (normalize.USR, normalize.URL)
    assert {"USR", "URL", "twitter_norm"} <= set(tokenizer.__all__)


def test_normalize_needs_no_spacy():
    code = "import sys, spacy_twitter_ner.normalize; sys.exit('spacy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

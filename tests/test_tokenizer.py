"""Tests for spacy_twitter_ner.tokenizer: rules, offsets, robustness, real tweets, serialization."""
import re
from pathlib import Path
from typing import List

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc

from spacy_twitter_ner.tokenizer import (
    URL,
    USR,
    TwitterTokenizer,
    create_twitter_tokenizer,
    twitter_norm,
)

from conftest import load_script

TWEETS_PATH = Path(__file__).parents[1] / ".." / "shared" / "data" / "raw_tweets" / "tweets.txt"
N_REAL_TWEETS = 2000
TOKENIZER_CONFIG = {"nlp": {"tokenizer": {"@tokenizers": "spacy_twitter_ner.TwitterTokenizer.v1"}}}

# Independent, deliberately simple detectors for the real-tweet checks.
SIMPLE_URL_RE = re.compile(r"(?i:https?://|www\.\w)\S*")
SIMPLE_TAG_RE = re.compile(r"[@#](?:(?!(?i:https?://))\w)+")


@pytest.fixture(scope="module")
def tok_nlp():
    return spacy.blank("en", config=TOKENIZER_CONFIG)


@pytest.fixture(scope="module")
def tok_tokenizer(tok_nlp):
    return tok_nlp.tokenizer


def texts(doc: Doc) -> List[str]:
    return [t.text for t in doc]


def assert_consistent(doc: Doc, text: str) -> None:
    """doc.text round-trips, no empty token, and offsets point at each token's text."""
    assert doc.text == text
    assert all(len(t.text) > 0 for t in doc)
    assert "".join(t.text_with_ws for t in doc) == re.sub("[\ud800-\udfff]", "\ufffd", text)
    for t in doc:
        assert text[t.idx : t.idx + len(t.text)] == t.text or "\ufffd" in t.text


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

SEED_1 = "RT @nyknicks: Carmelo Anthony at Madison Square Garden http://t.co/xyz #NBA 👍🏽"
SEED_2 = "lol :-) <3 check https://www.example.com/a?b=c&d=e now &amp; then 👨‍👩‍👧 @a_b"


@pytest.mark.parametrize(
    "text,expected",
    [
        (SEED_1, ["@nyknicks", "http://t.co/xyz", "#NBA", "👍🏽"]),
        (SEED_2, [":-)", "<3", "https://www.example.com/a?b=c&d=e", "&amp;", "👨‍👩‍👧", "@a_b"]),
    ],
)
def test_seed_examples(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    for token in expected:
        assert token in texts(doc)
    for t in doc:
        if t.text.startswith("@") and len(t.text) > 1:
            assert t.norm_ == USR
        if t.text.startswith("http"):
            assert t.norm_ == URL


def test_seed_mention_colon_split(tok_tokenizer):
    assert texts(tok_tokenizer(SEED_1))[:3] == ["RT", "@nyknicks", ":"]


@pytest.mark.parametrize(
    "text,expected",
    [
        # mentions
        ("@nyknicks", ["@nyknicks"]),
        ("hi @a_b!", ["hi", "@a_b", "!"]),
        ("@@bob", ["@", "@bob"]),
        ("a @ b", ["a", "@", "b"]),
        # URLs, trailing punctuation split off
        ("see http://t.co/xyz.", ["see", "http://t.co/xyz", "."]),
        ("(https://t.co/abc)", ["(", "https://t.co/abc", ")"]),
        ("go www.example.com/x, now", ["go", "www.example.com/x", ",", "now"]),
        ("HTTPS://EXAMPLE.COM/A!", ["HTTPS://EXAMPLE.COM/A", "!"]),
        ("t.co/abc?", ["t.co/abc", "?"]),
        ("https://goo…", ["https://goo", "…"]),
        ("Questionhttp://bit.ly/2j", ["Question", "http://bit.ly/2j"]),
        ("url: https://x.com/a:", ["url", ":", "https://x.com/a", ":"]),
        # hashtags
        ("#NBA #live", ["#NBA", "#live"]),
        ("#tag!", ["#tag", "!"]),
        ("##tag", ["#", "#tag"]),
        # emoji
        ("lol😂😂", ["lol", "😂", "😂"]),
        ("👍🏽👍", ["👍🏽", "👍"]),
        ("I ❤️ NY", ["I", "❤️", "NY"]),
        ("🇺🇸🇬🇧", ["🇺🇸", "🇬🇧"]),
        ("fam👨‍👩‍👧!", ["fam", "👨‍👩‍👧", "!"]),
        ("1️⃣", ["1️⃣"]),
        # emoticons
        (":-) :) :( ;) :D :P", [":-)", ":)", ":(", ";)", ":D", ":P"]),
        ("sorry:/ (via @x):", ["sorry", ":/", "(", "via", "@x", ")", ":"]),
        ("http:/@a", ["http", ":/", "@a"]),  # one slash is a URL only where the tweet was cut
        ("<3 </3 xD ^_^ -_- :/", ["<3", "</3", "xD", "^_^", "-_-", ":/"]),
        ("great:)", ["great", ":)"]),
        ("xDrive", ["xDrive"]),
        (":Don", [":", "Don"]),
        ("<30", ["<", "30"]),
        # HTML entities
        ("&amp; &gt; &lt; &quot; &#39;", ["&amp;", "&gt;", "&lt;", "&quot;", "&#39;"]),
        ("you&amp;me", ["you", "&amp;", "me"]),
        ("--&gt;", ["--", "&gt;"]),
        # contractions stay whole, except the clitic 's (split as in the WNUT train files: "it 's")
        ("can't don't it's I'm", ["can't", "don't", "it", "'s", "I'm"]),
        ("rock’n’roll", ["rock’n’roll"]),
        # numbers
        ("6:30 3.5 1,000 $5 50%", ["6:30", "3.5", "1,000", "$5", "50%"]),
        ("4ever 2nd", ["4ever", "2nd"]),
        # punctuation
        ("Garden!!!", ["Garden", "!!!"]),
        ("wait...", ["wait", "..."]),
        ('"quoted" (paren) [br]', ['"', "quoted", '"', "(", "paren", ")", "[", "br", "]"]),
        ("what?!", ["what", "?", "!"]),
        # scripts
        ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),
        ("مرحبا بالعالم", ["مرحبا", "بالعالم"]),
        ("你好世界", ["你好世界"]),
    ],
)
def test_rules(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a b", [("a", " "), ("b", "")]),
        ("a  b", [("a", " "), (" ", ""), ("b", "")]),
        ("a\nb", [("a", ""), ("\n", ""), ("b", "")]),
        ("a \nb", [("a", " "), ("\n", ""), ("b", "")]),
        ("a\n b", [("a", ""), ("\n ", ""), ("b", "")]),
        ("  a", [("  ", ""), ("a", "")]),
        (" a", [(" ", ""), ("a", "")]),
        ("a  ", [("a", " "), (" ", "")]),
        ("a\t b", [("a", ""), ("\t ", ""), ("b", "")]),
        ("a\u00a0b", [("a", ""), ("\u00a0", ""), ("b", "")]),
    ],
)
def test_whitespace_like_spacy(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert [(t.text, t.whitespace_) for t in doc] == expected
    assert [(t.text, t.whitespace_) for t in spacy.blank("en")(text)] == expected


def test_norms(tok_tokenizer):
    doc = tok_tokenizer("@user WWW.x.com t.co/a https://x.y/z Hello http bit.ly/q example.co.uk")
    assert [t.norm_ for t in doc] == [USR, URL, URL, URL, "hello", "http", URL, URL]


# ---------------------------------------------------------------------------
# Cases from the tokenizer issue and from the disagreements with spaCy on real tweets
# (scripts/tokenizer_disagreements.py, metrics/tokenizer-disagreements.md)
# ---------------------------------------------------------------------------


def norms(doc: Doc) -> List[str]:
    return [t.norm_ for t in doc]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("foo@bar.com", ["foo@bar.com"]),
        ("mail john.smith+tw@mail.example.co.uk.", ["mail", "john.smith+tw@mail.example.co.uk", "."]),
        ("no-reply@twitch.tv", ["no-reply@twitch.tv"]),
        ("Lou@soidog.org.", ["Lou@soidog.org", "."]),
        # not e-mail addresses: the mention rule applies
        ("@bar", ["@bar"]),
        ("hi@bob", ["hi", "@bob"]),
        ("thanks@user.", ["thanks", "@user", "."]),
        ("foo@www.abc.com", ["foo", "@", "www.abc.com"]),
    ],
)
def test_email_is_one_token_not_a_mention(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected
    for t in doc:
        assert (t.norm_ == USR) == (t.text.startswith("@") and len(t.text) > 1), t.text


@pytest.mark.parametrize(
    "text,url",
    [
        ("bit.ly/abc", "bit.ly/abc"),
        ("example.co.uk", "example.co.uk"),
        ("t.co/xyz", "t.co/xyz"),
        ("youtu.be/abc", "youtu.be/abc"),
        ("see bit.ly/abc).", "bit.ly/abc"),
        ("at example.com.", "example.com"),
        ("play Agar.io now", "Agar.io"),
        ("GOOGLE.COM!", "GOOGLE.COM"),
        ("my-site.org/a?b=1&c=2#x", "my-site.org/a?b=1&c=2#x"),
        ("so https:/…", "https:/"),  # a tweet cut at 140 characters
        ("cut http:/", "http:/"),
    ],
)
def test_url_without_scheme(tok_tokenizer, text, url):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    (token,) = [t for t in doc if t.text == url]
    assert token.norm_ == URL


@pytest.mark.parametrize(
    "text,expected",
    [
        ("e.g. this", ["e.g.", "this"]),
        ("word.Next", ["word", ".", "Next"]),
        ("today.this was", ["today", ".", "this", "was"]),  # a missing space, not a host
        ("youtu.be now", ["youtu", ".", "be", "now"]),  # an unlisted TLD needs a path
        ("I.e", ["I.e"]),
        ("3.5 1.2.3", ["3.5", "1.2.3"]),
        ("J.Crew", ["J", ".", "Crew"]),
        ("comedy.community", ["comedy", ".", "community"]),
    ],
)
def test_not_urls(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected
    assert URL not in norms(doc)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("U.S.A. and U.K.", ["U.S.A.", "and", "U.K."]),
        ("in the U.S.", ["in", "the", "U.S."]),
        ("the U.S! wow", ["the", "U.S", "!", "wow"]),
        ("at 5 p.m. in D.C.", ["at", "5", "p.m.", "in", "D.C."]),
        ("R.I.P", ["R.I.P"]),
        ("U.S.Army", ["U", ".", "S", ".", "Army"]),  # not a whole abbreviation
        ("St. Louis vs. Mr. X", ["St", ".", "Louis", "vs", ".", "Mr", ".", "X"]),  # as the corpora
    ],
)
def test_dotted_abbreviations(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("$AAPL up", ["$AAPL", "up"]),
        ("$BRK.A $tsla.", ["$BRK.A", "$tsla", "."]),
        ("$AAPL's", ["$AAPL", "'s"]),
        ("$5 $5.99 $1,000", ["$5", "$5.99", "$1,000"]),
        ("$ABCDEFG", ["$", "ABCDEFG"]),  # more than 6 letters: not a cashtag
        ("$$$", ["$$$"]),
    ],
)
def test_cashtags(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("@user_1's", ["@user_1", "'s"]),
        ("Prompto's", ["Prompto", "'s"]),
        ("Doctor’s", ["Doctor", "’s"]),
        ("Kelli's mom", ["Kelli", "'s", "mom"]),
        ("#Trump's", ["#Trump", "'s"]),
        ("IT'S LA'S", ["IT", "'S", "LA", "'S"]),
        ("it's he's that’s", ["it", "'s", "he", "'s", "that", "’s"]),  # as the WNUT train files
        # other contractions stay whole, as in the corpora
        ("can't don't I'm you're I'll we've I'd", ["can't", "don't", "I'm", "you're", "I'll", "we've", "I'd"]),
        ("y'all rock'n'roll", ["y'all", "rock'n'roll"]),
        # an "'s" that is not a clitic
        ("'sup 'sorry'", ["'", "sup", "'", "sorry", "'"]),
        ("Ma'shka", ["Ma'shka"]),
        ("customers’ cars", ["customers", "’", "cars"]),
    ],
)
def test_possessive_and_contractions(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected
    if text.startswith("@"):
        assert doc[0].norm_ == USR


def test_possessive_entity_span_is_the_name_alone(tok_nlp):
    from spacy.training import offsets_to_biluo_tags

    text = "Prompto's Doctor’s @user_1's show"
    doc = tok_nlp.make_doc(text)
    ents = [(0, 7, "person"), (10, 16, "person"), (19, 26, "person")]
    assert "-" not in offsets_to_biluo_tags(doc, ents)  # every span is on token boundaries


@pytest.mark.parametrize(
    "text,expected",
    [
        ("w/ the", ["w/", "the"]),
        ("W/ you w/o it", ["W/", "you", "w/o", "it"]),
        ("w/lid", ["w/", "lid"]),
        ("kw/h", ["kw", "/", "h"]),
        ("24/7 9/11 1/2 12/25/2016", ["24/7", "9/11", "1/2", "12/25/2016"]),
        ("$5/month", ["$5", "/", "month"]),
        ("AK-47 Pac-12 I-35's AK-47s", ["AK-47", "Pac-12", "I-35", "'s", "AK-47s"]),
        ("CVE-2017-0144", ["CVE-2017-0144"]),
        ("well-known 2-3 -5", ["well", "-", "known", "2", "-", "3", "-", "5"]),
    ],
)
def test_disagreements_fixed(tok_tokenizer, text, expected):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    assert texts(doc) == expected


# ---------------------------------------------------------------------------
# twitter_norm (its own cases are in test_normalize.py)
# ---------------------------------------------------------------------------


def test_twitter_norm_same_for_tokenizer_and_pretokenised(tok_nlp, tok_tokenizer):
    doc = tok_tokenizer(SEED_1 + " " + SEED_2)
    words = [t.text for t in doc]
    pre = Doc(tok_nlp.vocab, words=words)
    assert [twitter_norm(t.text) for t in pre] == [twitter_norm(t.text) for t in doc]
    for t in doc:
        if twitter_norm(t.text) in (USR, URL):
            assert t.norm_ == twitter_norm(t.text)


# ---------------------------------------------------------------------------
# Real tweets
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tok_real_tweets() -> List[str]:
    if not TWEETS_PATH.exists():
        pytest.skip(f"raw tweets not found at {TWEETS_PATH}")
    with TWEETS_PATH.open(encoding="utf8") as f:
        return [line.rstrip("\n") for _, line in zip(range(N_REAL_TWEETS), f)]


def test_real_tweets(tok_tokenizer, tok_real_tweets):
    for line in tok_real_tweets:
        doc = tok_tokenizer(line)
        assert_consistent(doc, line)
        starts = {t.idx: t for t in doc}
        url_spans = []
        for m in SIMPLE_URL_RE.finditer(line):
            token = starts.get(m.start())
            assert token is not None, (line, m.group())
            # the URL token is the match minus trailing punctuation / glued emoji
            assert m.group().startswith(token.text), (line, m.group(), token.text)
            assert re.fullmatch(r"\W*", m.group()[len(token.text) :]), (line, m.group(), token.text)
            assert token.norm_ == URL
            url_spans.append((token.idx, token.idx + len(token)))
        for m in SIMPLE_TAG_RE.finditer(line):
            if any(a <= m.start() < b for a, b in url_spans):
                continue
            covering = [t for t in doc if t.idx <= m.start() and t.idx + len(t) >= m.end()]
            assert len(covering) == 1, (line, m.group())
            if m.group().startswith("@") and covering[0].text.startswith("@"):
                assert covering[0].norm_ == USR


# ---------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
mentions = st.text(_ALNUM + "_", min_size=1, max_size=12).map(lambda s: "@" + s)
hashtags = st.builds(
    lambda first, rest: "#" + first + rest,
    st.sampled_from("abcxyzABCXYZ"),
    st.text(_ALNUM + "_", max_size=10),
)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}{host}.com/{path}",
    st.sampled_from(["http://", "https://", "HTTP://", "www.", "https://www."]),
    st.text(_ALNUM, min_size=1, max_size=8),
    st.text(_ALNUM + "/?=&-_.", max_size=12).map(lambda p: p + "x"),
) | st.text(_ALNUM, min_size=1, max_size=8).map(lambda s: "t.co/" + s)
bare_urls = st.builds(
    lambda host, tld, path: f"{host}.{tld}{path}",
    st.text(_ALNUM, min_size=1, max_size=8),
    st.sampled_from(["com", "co.uk", "io", "ly", "ORG"]),
    st.sampled_from(["", "/"]) | st.text(_ALNUM + "/?=&-_.", max_size=12).map(lambda p: "/" + p + "x"),
)
specials = st.one_of(mentions, hashtags, urls, bare_urls)
other_fragments = st.one_of(
    st.sampled_from(
        ["😂", "👍🏽", "❤️", "👨‍👩‍👧", "🇺🇸", ":-)", ":)", "<3", "xD", "^_^", "-_-", ":/", "&amp;",
         "can't", "6:30", "$5", "50%", "...", "!!!", "?", ",", "(", ")", '"', "'", "@", "#", "&",
         "\u200f", "\u200e", "\x00", "नमस्ते", "你好", "مرحبا", "\u0301"]
    ),
    st.text(max_size=6),
    st.text(_ALNUM, min_size=1, max_size=6),
)
whitespace = st.sampled_from([" ", "  ", "\n", "\t", " \n ", "\u00a0"])


@st.composite
def tweet_like(draw):
    """A mix of fragments; specials are always followed by whitespace so they must stay whole.

    A bare ``t.co/`` link or host (``bit.ly/x``) is only a link at a word start ("at.co/x" is
    not), so it also gets whitespace before it.
    """
    parts, inserted = [], []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            special = draw(specials)
            if special[0] not in "@#" and not special.lower().startswith(("http", "www.")):
                parts.append(draw(whitespace))
            inserted.append((sum(map(len, parts)), special))
            parts.extend([special, draw(whitespace)])
        else:
            parts.append(draw(st.one_of(other_fragments, whitespace)))
    return "".join(parts), inserted


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(st.text())
def test_property_arbitrary_text(tok_tokenizer, text):
    assert_consistent(tok_tokenizer(text), text)


@PROPERTY_SETTINGS
@given(st.text(st.characters(blacklist_categories=()), max_size=20))
def test_property_text_with_surrogates(tok_tokenizer, text):
    assert_consistent(tok_tokenizer(text), text)


@PROPERTY_SETTINGS
@given(tweet_like())
def test_property_tweet_like(tok_tokenizer, sample):
    text, inserted = sample
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)
    starts = {t.idx: t.text for t in doc}
    for offset, special in inserted:
        assert starts.get(offset) == special, (text, special)
        assert twitter_norm(special) in (USR, URL) or special.startswith("#")


# ---------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------

LONG_URL = "https://example.com/" + "a" * 4980


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "   \n\t  ",
        "x" * 1_000_000,
        "word " * 10_000,
        "\x00 nul \x07 bell \x1b",
        "\u200f@user \u200eRTL\u200f",
        "مرحبا 你好世界 नमस्ते mixed",
        "\ud800 lone surrogate",
        "a\udfffb \ud83d\ude00 @x",
        LONG_URL,
        "1," * 50_000 + "a",
        "@" * 50_000,
        "http://" * 5_000,
        ":" * 50_000 + ")",
        "😂\u200d" * 10_000,
        "\ufe0f\U0001F3FD\u200d",
        # the bounded looks of the e-mail / host / abbreviation / cashtag rules
        "a." * 50_000,
        "a-" * 50_000,
        "a.b@" * 30_000,
        ("a-" * 40 + ".") * 1_500,
        ("a" * 63 + ".") * 1_500 + "@",
        "a.www." * 20_000,
        "$A" * 50_000,
        "a's" * 50_000,
        "x.com/" + "." * 100_000,
    ],
    ids=lambda s: repr(s[:20]),
)
def test_robust_inputs(tok_tokenizer, text):
    doc = tok_tokenizer(text)
    assert_consistent(doc, text)


def test_robust_sizes(tok_tokenizer):
    assert len(tok_tokenizer("")) == 0
    assert texts(tok_tokenizer("x" * 1_000_000)) == ["x" * 1_000_000]
    assert len(tok_tokenizer("word " * 10_000)) == 10_000
    assert texts(tok_tokenizer(LONG_URL)) == [LONG_URL]


def test_lone_surrogate_through_pipeline(tok_nlp):
    text = "\ud800 lone surrogate @user"
    doc = tok_nlp(text)
    assert doc.text == text
    assert str(doc) == text
    assert [t.text for t in doc] == ["\ufffd", "lone", "surrogate", "@user"]
    assert doc[3].norm_ == USR
    docs = list(tok_nlp.pipe([text, "plain"]))
    assert [d.text for d in docs] == [text, "plain"]
    assert type(tok_nlp("plain")) is Doc
    # serializing degrades the surrogate to U+FFFD instead of failing
    restored = Doc(tok_nlp.vocab).from_bytes(doc.to_bytes())
    assert restored.text == "\ufffd lone surrogate @user"


def test_pipe(tok_tokenizer):
    lines = [SEED_1, "", SEED_2]
    assert [d.text for d in tok_tokenizer.pipe(lines, batch_size=2)] == lines


# ---------------------------------------------------------------------------
# Registration and serialization
# ---------------------------------------------------------------------------


def test_registered_factory(tok_nlp):
    assert isinstance(tok_nlp.tokenizer, TwitterTokenizer)
    assert tok_nlp.config["nlp"]["tokenizer"]["@tokenizers"] == "spacy_twitter_ner.TwitterTokenizer.v1"
    made = create_twitter_tokenizer()(tok_nlp)
    assert isinstance(made, TwitterTokenizer) and made.vocab is tok_nlp.vocab
    resolved = spacy.registry.tokenizers.get("spacy_twitter_ner.TwitterTokenizer.v1")
    assert isinstance(resolved()(tok_nlp), TwitterTokenizer)


def test_tokenizer_bytes_round_trip(tok_tokenizer):
    data = tok_tokenizer.to_bytes()
    other = TwitterTokenizer(tok_tokenizer.vocab)
    assert other.from_bytes(data) is other
    assert other.to_bytes() == data
    with pytest.raises(ValueError):
        other.from_bytes(b'{"name": "something.else", "version": 1}')


def test_tokenizer_disk_round_trip(tok_tokenizer, tmp_path):
    file_path = tmp_path / "tokenizer"
    tok_tokenizer.to_disk(file_path)
    assert file_path.is_file()
    TwitterTokenizer(tok_tokenizer.vocab).from_disk(file_path)
    dir_path = tmp_path / "dir"
    dir_path.mkdir()
    tok_tokenizer.to_disk(dir_path)
    TwitterTokenizer(tok_tokenizer.vocab).from_disk(dir_path)


def test_nlp_bytes_round_trip(tok_nlp):
    data = tok_nlp.to_bytes()
    nlp2 = spacy.blank("en", config=TOKENIZER_CONFIG).from_bytes(data)
    assert isinstance(nlp2.tokenizer, TwitterTokenizer)
    assert texts(nlp2(SEED_1)) == texts(tok_nlp(SEED_1))


def test_nlp_disk_round_trip(tok_nlp, tmp_path):
    tok_nlp.to_disk(tmp_path / "model")
    assert "spacy_twitter_ner.TwitterTokenizer.v1" in (tmp_path / "model" / "config.cfg").read_text()
    nlp2 = spacy.load(tmp_path / "model")
    assert isinstance(nlp2.tokenizer, TwitterTokenizer)
    doc = nlp2(SEED_2)
    assert texts(doc) == texts(tok_nlp(SEED_2))
    assert doc[-1].norm_ == USR


# ---------------------------------------------------------------------------
# scripts/tokenizer_disagreements.py
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disagreements_script():
    return load_script("tokenizer_disagreements")


def test_disagreements_are_the_pieces_split_differently(disagreements_script, tok_nlp):
    td = disagreements_script
    text = "I'm at #NBA with @bob_ now!! ok"
    ours = td.spans(tok_nlp.tokenizer(text))
    theirs = td.spans(spacy.blank("en").tokenizer(text))
    assert list(td.disagreements(ours, theirs)) == [
        (("I'm",), ("I", "'m")),
        (("#NBA",), ("#", "NBA")),
        (("@bob_",), ("@bob", "_")),
        (("!!",), ("!", "!")),
    ]
    assert list(td.disagreements(ours, ours)) == []


def test_disagreement_shapes_and_decisions(disagreements_script):
    td = disagreements_script
    assert [td.shape(t) for t in ["#NBA", "don't", "$5.99", "❤️", "@a_1"]] == ["#a", "a'a", "$9.9", "E", "@a_9"]
    assert td.decision((("#Whatever",), ("#", "Whatever"))).startswith("keep ours")
    assert td.decision((("xyz",), ("x", "y", "z", "w"))) == "undecided"

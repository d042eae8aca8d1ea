"""Tests for the CoNLL reader/converter: every quirk of the WNUT files has a tiny fixture."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from spacy_twitter_ner.conll import (
    ConllFormatError,
    ConversionReport,
    EmptyTokenWarning,
    Tweet,
    convert_file,
    drop_tokens,
    main,
    read_conll,
    repair_bio,
    tweets_to_docs,
    write_conll,
)

FIXTURES = Path(__file__).parent / "fixtures" / "conll"
SHARED_DATA = Path(__file__).parents[1] / ".." / "shared" / "data"


@pytest.fixture
def vocab() -> Vocab:
    return Vocab()


def ents(doc: Doc):
    return [(e.text, e.label_) for e in doc.ents]


# --- read_conll ---------------------------------------------------------------------------


def test_space_separated_course_style():
    tweets = read_conll(FIXTURES / "space_sep.conll")
    assert len(tweets) == 2
    assert tweets[0].words == ["RT", "@TheValarium", ":", "New", "York", "\U0001F602"]
    assert tweets[0].tags == ["O", "O", "O", "B-geo-loc", "I-geo-loc", "O"]
    assert tweets[1] == Tweet(["Apple", "rocks"], ["B-company", "O"], 8)
    assert [t.line for t in tweets] == [1, 8]


def test_tab_separated(tmp_path):
    tweets = read_conll(str(FIXTURES / "tab_sep.conll"))  # str paths work too
    assert [t.words for t in tweets] == [
        ["@paulwalk", "Dubbz", "is", "here"],
        ["Paul", "Walker", "in", "Paris"],
    ]
    assert tweets[1].tags == ["B-person", "I-person", "O", "B-location"]
    assert [t.line for t in tweets] == [1, 6]


def test_lone_tab_separates_tweets():
    tweets = read_conll(FIXTURES / "lone_tab.conll")
    assert [t.words for t in tweets] == [["Dubbz", "is"], ["I", "love", "Paris"], ["ok"]]
    assert [t.line for t in tweets] == [1, 4, 8]


def test_no_final_blank_line():
    raw = (FIXTURES / "no_final_blank.conll").read_bytes()
    assert not raw.endswith(b"\n")  # the fixture really reproduces the quirk
    tweets = read_conll(FIXTURES / "no_final_blank.conll")
    assert [t.words for t in tweets] == [["one"], ["two", "London"]]
    assert tweets[-1].tags == ["O", "B-location"]


def test_consecutive_blank_lines_give_no_empty_tweets():
    tweets = read_conll(FIXTURES / "blank_runs.conll")
    assert [(t.words, t.line) for t in tweets] == [(["first"], 3), (["second"], 8)]


def test_html_entity_tokens_are_kept_verbatim():
    (tweet,) = read_conll(FIXTURES / "html_entities.conll")
    assert tweet.words == ["&", "gt", ";", "The", "Beatles", "&", "amp", ";", "me"]
    assert tweet.tags[4] == "B-group"


def test_crlf_bom_extra_columns_and_unicode_spaces(tmp_path):
    # A BOM, Windows line ends, a middle column (tag = last field) and tokens holding characters
    # that Python treats as white space / line breaks but the files use inside tokens.
    path = tmp_path / "odd.conll"
    path.write_bytes(
        "\ufeffNew\tNNP\tB-geo-loc\r\nYork\tNNP\tI-geo-loc\r\n\r\n"
        "a\u00a0b\tO\nc\u2028d\tO\n\u200bWhy O\n".encode("utf-8")
    )
    tweets = read_conll(path)
    assert tweets[0] == Tweet(["New", "York"], ["B-geo-loc", "I-geo-loc"], 1)
    assert tweets[1].words == ["a\u00a0b", "c\u2028d", "\u200bWhy"]
    assert tweets[1].line == 4


def test_single_field_line_is_an_error_with_line_number():
    with pytest.raises(ConllFormatError, match=r"malformed\.conll:7: expected 'TOKEN TAG', got 'six'"):
        read_conll(FIXTURES / "malformed.conll")


def test_bad_tag_is_an_error_with_line_number():
    with pytest.raises(ConllFormatError, match=r"bad_tag\.conll:4: bad tag 'B-'"):
        read_conll(FIXTURES / "bad_tag.conll")


@pytest.mark.parametrize("tag", ["B-", "I", "X-person", "b-person", "OO", "E-person"])
def test_invalid_tags(tmp_path, tag):
    path = tmp_path / "t.conll"
    path.write_text(f"fine\tO\nword\t{tag}\n", encoding="utf-8")
    with pytest.raises(ConllFormatError, match=r"t\.conll:2:"):
        read_conll(path)


def test_error_is_a_value_error():
    assert issubclass(ConllFormatError, ValueError)


def test_non_utf8_byte(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes(b"ok\tO\n\ncaf\xe9\tO\n")
    with pytest.raises(ConllFormatError, match=r"latin1\.conll:3: not UTF-8 .*offset 9\b") as err:
        read_conll(path)
    assert "0xe9" in str(err.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.conll"
    path.write_text("\n\t\n", encoding="utf-8")
    assert read_conll(path) == []


# --- empty / white-space-only tokens ------------------------------------------------------

EMPTY_TOKENS = FIXTURES / "empty_tokens.conll"
EMPTY_TOKENS_DROPPED = [2, 4, 8, 13, 18, 21, 22, 27]  # lines of the fixture whose token is empty


def test_empty_tokens_are_dropped_with_one_warning():
    with pytest.warns(EmptyTokenWarning) as record:
        tweets = read_conll(EMPTY_TOKENS)
    assert len(record) == 1
    message = str(record[0].message)
    assert "dropped 8 empty or white-space-only token(s) (6 tagged O, 2 inside entities)" in message
    assert f"{EMPTY_TOKENS}:2, {EMPTY_TOKENS}:4, {EMPTY_TOKENS}:8" in message
    assert "and 3 more" in message
    assert [t.words for t in tweets] == [
        ["I", "love", "Paris"],
        ["New", "York", "City", "is"],
        ["Obama", "rocks"],
        ["Big", "Apple"],
        ["ok"],  # the lone-TAB separator (wnut17 quirk) still ends tweets
        ["fine"],
    ]
    assert [t.line for t in tweets] == [1, 7, 13, 17, 24, 26]


def test_empty_tokens_keep_the_entities_around_them(vocab):
    with pytest.warns(EmptyTokenWarning):
        tweets = read_conll(EMPTY_TOKENS)
    assert tweets[0].tags == ["O", "O", "B-location"]  # dropped O: nothing else changes
    assert tweets[1].tags == ["B-location", "I-location", "I-location", "O"]  # B <I> I I: one entity
    assert tweets[2].tags == ["I-person", "O"]  # <B> I: the I- is repaired to B- like conlleval
    assert tweets[3].tags == ["B-company", "B-company"]  # B <O> I: still two entities
    docs = list(tweets_to_docs(tweets, vocab))
    assert [ents(d) for d in docs[:4]] == [
        [("Paris", "location")],
        [("New York City", "location")],
        [("Obama", "person")],
        [("Big", "company"), ("Apple", "company")],
    ]


def test_convert_file_counts_dropped_tokens_and_reconciles(tmp_path, vocab):
    dest = tmp_path / "e.spacy"
    with pytest.warns(EmptyTokenWarning, match=r"dropped 8 "):
        report = convert_file(EMPTY_TOKENS, dest, vocab)
    assert (report.tweets, report.tokens, report.entities) == (6, 13, 5)
    assert (report.tokens_read, report.dropped_o, report.dropped_in_entities) == (21, 6, 2)
    assert report.tokens_read == report.tokens + report.dropped_tokens
    assert report.empty_tweets == 1  # the tweet of lines 21-22 held only empty tokens
    assert report.repaired_tags == 1  # "Obama" I-person -> B-person
    assert report.labels == {"company": 2, "location": 2, "person": 1}
    docs = list(DocBin().from_disk(dest).get_docs(vocab))
    assert sum(len(d) for d in docs) == report.tokens
    assert all(t.text.strip() for d in docs for t in d)


def test_cli_reports_dropped_tokens(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "train.conll").write_bytes(EMPTY_TOKENS.read_bytes())
    assert main([str(inp), str(tmp_path / "out"), "--splits", "train"]) == 0
    raw = capsys.readouterr().out
    out = " ".join(raw.split())  # wasabi wraps long lines at spaces
    assert "train: dropped 8 empty or white-space-only token(s)" in out
    assert "train.conll:2," in out
    assert "8 dropped empty tokens (21 read)" in out
    assert _row(raw, "train")[:6] == ["train", "6", "13", "5", "1", "8"]


@pytest.mark.parametrize(
    "line",
    ["\tO", "  \tO", "\t  O  ", "\tNNP\tO", "\u00a0\tO", "\u00a0 O", "\u3000\tB-person"],
    ids=repr,
)
def test_empty_token_line_variants(tmp_path, line):
    path = tmp_path / "t.conll"
    path.write_text(f"a\tO\n{line}\nb\tO\n", encoding="utf-8")
    with pytest.warns(EmptyTokenWarning, match=r"t\.conll:2\b"):
        (tweet,) = read_conll(path)
    assert tweet.words == ["a", "b"]


@pytest.mark.parametrize(
    "line,error",
    [
        ("\tfoo", r"t\.conll:2: expected 'TOKEN TAG', got '\\tfoo'"),  # empty token, no valid tag
        (" O", r"t\.conll:2: expected 'TOKEN TAG', got ' O'"),  # no TAB: a missing token, not empty
        ("\tB-", r"t\.conll:2: expected 'TOKEN TAG', got '\\tB-'"),  # as before: one field
        ("\tX\tB-", r"t\.conll:2: bad tag 'B-'"),
        ("six", r"t\.conll:2: expected 'TOKEN TAG', got 'six'"),
        ("O\t", r"t\.conll:2: expected 'TOKEN TAG', got 'O\\t'"),  # a token without a tag
    ],
    ids=repr,
)
def test_malformed_lines_still_raise_with_line_number(tmp_path, line, error):
    path = tmp_path / "t.conll"
    path.write_text(f"a\tO\n{line}\nb\tO\n", encoding="utf-8")
    with pytest.raises(ConllFormatError, match=error):
        read_conll(path)
    with pytest.raises(ConllFormatError, match=error):
        convert_file(path, tmp_path / "t.spacy")


def test_white_space_only_lines_still_separate_tweets(tmp_path):
    path = tmp_path / "t.conll"
    path.write_text("a\tO\n\t\nb\tO\n  \t  \nc\tO\n", encoding="utf-8")
    assert [t.words for t in read_conll(path)] == [["a"], ["b"], ["c"]]


@pytest.mark.parametrize(
    "tags,drop,expected",
    [
        (["O", "O", "O"], [False, True, False], ["O", "O"]),
        (["B-x", "I-x", "I-x"], [False, True, False], ["B-x", "I-x"]),  # stays one entity
        (["B-x", "I-x", "I-x"], [True, False, False], ["I-x", "I-x"]),  # conlleval reads B-x I-x
        (["B-x", "I-x", "I-x"], [True, True, False], ["I-x"]),
        (["B-x", "O", "I-x"], [False, True, False], ["B-x", "B-x"]),  # two entities stay two
        (["B-x", "B-x", "I-x"], [False, True, False], ["B-x", "B-x"]),  # the second x starts anew
        (["B-x", "B-y", "I-x"], [False, True, False], ["B-x", "B-x"]),  # conlleval: x, y, x
        (["I-x", "I-x"], [True, False], ["I-x"]),
        (["B-x", "I-x"], [False, True], ["B-x"]),
        (["O", "B-x"], [True, True], []),
    ],
)
def test_drop_tokens(tags, drop, expected):
    words = [f"w{i}" for i in range(len(tags))]
    kept_words, kept_tags = drop_tokens(words, tags, drop)
    assert kept_words == [w for w, d in zip(words, drop) if not d]
    assert kept_tags == expected


def test_drop_tokens_keeps_the_conlleval_entities_of_the_rest():
    """Property over all short tag sequences: the kept tokens' entities (as conlleval reads them)
    are exactly the full sequence's entities restricted to the kept tokens."""
    import itertools

    def spans(tags):
        out, cur = [], None
        for i, tag in enumerate(repair_bio(tags)[0]):
            if tag == "O" or tag[0] == "B":
                cur = None
            if tag != "O":
                if cur is None:
                    cur = [tag[2:], []]
                    out.append(cur)
                cur[1].append(i)
        return [(label, tuple(idx)) for label, idx in out]

    for n in range(1, 5):
        for tags in itertools.product(["O", "B-x", "I-x", "B-y", "I-y"], repeat=n):
            for drop in itertools.product([False, True], repeat=n):
                kept = [i for i in range(n) if not drop[i]]
                _, kept_tags = drop_tokens(list(map(str, range(n))), list(tags), list(drop))
                expected = []
                for label, idx in spans(list(tags)):
                    rest = tuple(i for i in idx if not drop[i])
                    if rest:
                        expected.append((label, rest))
                got = [(label, tuple(kept[i] for i in idx)) for label, idx in spans(kept_tags)]
                assert got == expected, (tags, drop, kept_tags)


# --- repair_bio ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags,expected,changed",
    [
        ([], [], 0),
        (["O", "B-x", "I-x", "O"], ["O", "B-x", "I-x", "O"], 0),
        (["I-x", "I-x"], ["B-x", "I-x"], 1),  # I- at the start
        (["O", "I-x", "I-x"], ["O", "B-x", "I-x"], 1),  # I- after O
        (["B-y", "I-x", "I-x"], ["B-y", "B-x", "I-x"], 1),  # I-X after B-Y
        (["B-y", "I-y", "I-x"], ["B-y", "I-y", "B-x"], 1),  # I-X after I-Y
        (["I-x", "O", "I-x", "I-y"], ["B-x", "O", "B-x", "B-y"], 3),
        (["B-x", "B-x", "I-x"], ["B-x", "B-x", "I-x"], 0),  # adjacent entities are valid
    ],
)
def test_repair_bio(tags, expected, changed):
    assert repair_bio(tags) == (expected, changed)


def test_repair_bio_does_not_mutate_input():
    tags = ["I-x"]
    repair_bio(tags)
    assert tags == ["I-x"]


# --- tweets_to_docs -----------------------------------------------------------------------


def test_docs_from_space_separated(vocab):
    docs = list(tweets_to_docs(read_conll(FIXTURES / "space_sep.conll"), vocab))
    assert len(docs) == 2
    assert docs[0].text == "RT @TheValarium : New York \U0001F602"
    assert [t.text for t in docs[0]] == ["RT", "@TheValarium", ":", "New", "York", "\U0001F602"]
    assert ents(docs[0]) == [("New York", "geo-loc")]
    assert ents(docs[1]) == [("Apple", "company")]
    assert docs[1][-1].whitespace_ == ""


def test_docs_from_repaired_bio(vocab):
    docs = list(tweets_to_docs(read_conll(FIXTURES / "bad_bio.conll"), vocab))
    assert [ents(d) for d in docs] == [
        [("Big Apple", "company")],
        [("Big Apple", "geo-loc")],
        [("Obama", "person"), ("in Paris", "geo-loc")],
        [("Barack Obama", "person"), ("Inc", "company")],
    ]


def test_docs_keep_html_entity_tokens(vocab):
    (doc,) = tweets_to_docs(read_conll(FIXTURES / "html_entities.conll"), vocab)
    assert len(doc) == 9
    assert doc.text == "& gt ; The Beatles & amp ; me"
    assert ents(doc) == [("Beatles", "group")]


def test_docs_any_label_set(vocab):
    tweet = Tweet(["a", "b", "c"], ["B-MY_LABEL", "I-MY_LABEL", "B-x.y/z"], 1)
    (doc,) = tweets_to_docs([tweet], vocab)
    assert ents(doc) == [("a b", "MY_LABEL"), ("c", "x.y/z")]


# --- convert_file and DocBin --------------------------------------------------------------


def test_convert_file_round_trip(tmp_path, vocab):
    dest = tmp_path / "deep" / "out" / "bad_bio.spacy"
    report = convert_file(FIXTURES / "bad_bio.conll", dest)
    assert report == ConversionReport(
        path=str(FIXTURES / "bad_bio.conll"),
        tweets=4,
        tokens=11,
        entities=6,
        repaired_tags=4,
        empty_tweets=0,
        labels={"company": 2, "geo-loc": 2, "person": 2},
        tokens_read=11,
    )
    docs = list(DocBin().from_disk(dest).get_docs(vocab))
    assert len(docs) == 4
    assert [t.text for t in docs[2]] == ["Obama", "in", "Paris"]
    assert ents(docs[2]) == [("Obama", "person"), ("in Paris", "geo-loc")]
    assert ents(docs[3]) == [("Barack Obama", "person"), ("Inc", "company")]


def test_convert_file_counts_skipped_blank_lines(tmp_path):
    report = convert_file(FIXTURES / "blank_runs.conll", tmp_path / "b.spacy", Vocab())
    assert (report.tweets, report.tokens, report.entities) == (2, 2, 0)
    assert report.empty_tweets == 6
    assert report.labels == {}


def test_convert_file_emoji_and_unicode(tmp_path, vocab):
    convert_file(FIXTURES / "space_sep.conll", tmp_path / "s.spacy", vocab)
    docs = list(DocBin().from_disk(tmp_path / "s.spacy").get_docs(vocab))
    assert docs[0][-1].text == "\U0001F602"
    assert ents(docs[0]) == [("New York", "geo-loc")]


def test_convert_file_raises_format_error(tmp_path):
    with pytest.raises(ConllFormatError, match=r"malformed\.conll:7"):
        convert_file(FIXTURES / "malformed.conll", tmp_path / "m.spacy")
    assert not (tmp_path / "m.spacy").exists()


# --- write_conll --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["space_sep", "tab_sep", "lone_tab", "no_final_blank", "html_entities", "bad_bio", "blank_runs"],
)
def test_write_conll_round_trip_from_docs(tmp_path, vocab, name):
    tweets = read_conll(FIXTURES / f"{name}.conll")
    docs = list(tweets_to_docs(tweets, vocab))
    out = tmp_path / "out.conll"
    assert write_conll(docs, out) == len(tweets)
    back = read_conll(out)
    assert [t.words for t in back] == [t.words for t in tweets]
    assert [t.tags for t in back] == [repair_bio(t.tags)[0] for t in tweets]
    assert "\t" in out.read_text(encoding="utf-8")
    again = list(tweets_to_docs(back, vocab))
    assert [ents(d) for d in again] == [ents(d) for d in docs]


def test_write_conll_from_tweets_exact_text(tmp_path):
    tweets = read_conll(FIXTURES / "lone_tab.conll")
    out = tmp_path / "sub" / "t.conll"
    write_conll(tweets, out)
    assert out.read_text(encoding="utf-8") == (
        "Dubbz\tB-person\nis\tO\n\nI\tO\nlove\tO\nParis\tB-location\n\nok\tO\n\n"
    )


def test_write_conll_rejects_whitespace_tokens(tmp_path, vocab):
    doc = Doc(vocab, words=["hello", "\n\n", "world"])
    with pytest.raises(ValueError, match="white space"):
        write_conll([doc], tmp_path / "x.conll")


# --- CLI ----------------------------------------------------------------------------------


def _make_input(tmp_path: Path) -> Path:
    inp = tmp_path / "in"
    inp.mkdir()
    for split, fixture in [("train", "bad_bio"), ("dev", "space_sep"), ("test", "tab_sep")]:
        (inp / f"{split}.conll").write_bytes((FIXTURES / f"{fixture}.conll").read_bytes())
    return inp


def _row(out: str, split: str):
    line = next(l for l in out.splitlines() if re.match(rf"^{split}\s", l))
    return line.split()


def test_cli_converts_all_splits(tmp_path, capsys, vocab):
    inp, outdir = _make_input(tmp_path), tmp_path / "out"
    assert main([str(inp), str(outdir)]) == 0
    out = capsys.readouterr().out
    header = next(l for l in out.splitlines() if l.startswith("split")).split()
    assert header[:6] == ["split", "tweets", "tokens", "entities", "repaired", "dropped"]
    assert header[6:] == ["company", "geo-loc", "location", "person"]
    assert _row(out, "train") == ["train", "4", "11", "6", "4", "0", "2", "2", "0", "2"]
    assert _row(out, "dev") == ["dev", "2", "8", "2", "0", "0", "1", "1", "0", "0"]
    assert _row(out, "test") == ["test", "2", "8", "3", "0", "0", "0", "0", "1", "2"]
    for split, n in [("train", 4), ("dev", 2), ("test", 2)]:
        assert len(list(DocBin().from_disk(outdir / f"{split}.spacy").get_docs(vocab))) == n


def test_cli_splits_option(tmp_path, capsys):
    inp, outdir = _make_input(tmp_path), tmp_path / "out"
    assert main([str(inp), str(outdir), "--splits", "dev"]) == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["dev.spacy"]
    assert _row(capsys.readouterr().out, "dev")[:6] == ["dev", "2", "8", "2", "0", "0"]


def test_cli_missing_input(tmp_path, capsys):
    inp = _make_input(tmp_path)
    missing = inp / "validation.conll"
    assert main([str(inp), str(tmp_path / "out"), "--splits", "train", "validation"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"Input file not found: {missing}" in out
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_cli_format_error(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "train.conll").write_bytes((FIXTURES / "malformed.conll").read_bytes())
    assert main([str(inp), str(tmp_path / "out"), "--splits", "train"]) == 1
    out = " ".join(capsys.readouterr().out.split())  # wasabi wraps long lines at spaces
    assert "train.conll:7: expected 'TOKEN TAG', got 'six'" in out
    assert "Traceback" not in out


def test_cli_as_module(tmp_path):
    inp = _make_input(tmp_path)
    (inp / "dev.conll").write_bytes(b"caf\xe9\tO\n")
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_twitter_ner.conll", str(inp), str(tmp_path / "o"), "--splits", "dev"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "dev.conll:1: not UTF-8" in " ".join(proc.stdout.split())
    assert "Traceback" not in proc.stdout + proc.stderr


# --- real corpora (only where the shared data is mounted) ---------------------------------

REAL_COUNTS = {
    "wnut16-course": (5795, 724, 724),
    "wnut16": (2394, 1000, 3850),
    "wnut17": (3394, 1009, 1287),
}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared corpora not available")
@pytest.mark.parametrize("corpus", sorted(REAL_COUNTS))
def test_real_corpora_tweet_counts(corpus):
    counts = tuple(
        len(read_conll(SHARED_DATA / corpus / f"{split}.conll")) for split in ("train", "dev", "test")
    )
    assert counts == REAL_COUNTS[corpus]

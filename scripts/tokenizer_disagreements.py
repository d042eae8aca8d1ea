"""Where the project's Twitter tokenizer and spaCy's English tokenizer split raw tweets differently.

spaCy's rules are tuned on edited English; ours on tweets. Comparing the two on real tweets finds
the cases where one of them is wrong, most frequent first. Each tweet is cut at every offset where
both tokenizers have a token boundary; a piece between two such cuts where the tokens differ is a
disagreement, counted by (our tokens, spaCy's tokens). The decision taken on each frequent entry
is kept in ``DECISIONS`` below, so the table can be regenerated without losing them.

    python scripts/tokenizer_disagreements.py ../shared/data/raw_tweets/tweets.txt --top 30

writes metrics/tokenizer-disagreements.md and prints the same table.
"""
import argparse
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import spacy
from spacy.tokens import Doc

from spacy_twitter_ner.tokenizer import TwitterTokenizer

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "metrics" / "tokenizer-disagreements.md"
SEP = " · "  # between tokens in a table cell (a "|" would end the cell)

Span = Tuple[int, int, str]
Key = Tuple[Tuple[str, ...], Tuple[str, ...]]

_CONTRACTIONS = (
    "keep ours: the WNUT train files keep contractions whole (wnut17: 165 `X'm` vs 25 `'m`, "
    "208 `Xn't` vs 26 `n't`); only the clitic `'s` is split, as there"
)
_REPEATED = "keep ours: repeated punctuation is one token, as in the corpora (`!!` 130x in wnut17 train)"
_HASHTAG = "keep ours: a hashtag is one token, as in the corpora (817 in wnut17 train, a lone `#` 2x)"
_MENTION = "keep ours: a mention is one token, `_` included (handles may end in `_`)"
_URL_UNITS = "keep ours: spaCy's unit suffix rule (`9m`, `9gb` ...) cuts the end off a t.co URL"

# Decision per kind of disagreement, keyed by the shapes of both sides (see ``shape``): one
# decision covers e.g. every hashtag. Either table looks its rows up here.
DECISIONS: Dict[Key, str] = {
    (("#a",), ("#", "a")): _HASHTAG,
    (("#a9",), ("#", "a9")): _HASHTAG,
    (("#9a",), ("#", "9a")): _HASHTAG,
    (("#a9a",), ("#", "a9a")): _HASHTAG,
    (("#a_a",), ("#", "a_a")): _HASHTAG,
    (("#9",), ("#", "9")): "keep ours: `#1` is one token in the corpora too (50x in wnut16 train)",
    (("a'a",), ("a", "'a")): _CONTRACTIONS,
    (("a'a",), ("a", "a'a")): _CONTRACTIONS,
    (("a’a",), ("a", "’a")): _CONTRACTIONS,
    (("a’a",), ("a", "a’a")): _CONTRACTIONS,
    (("a'a",), ("a'", "a")): "keep ours: `y'all` is one word (whole in the corpora)",
    (("a",), ("a", "a", "a")): "keep ours: `Ima`, `cannot` are one token in the corpora, as `gonna`",
    (("a",), ("a", "a")): (
        "keep ours: `gonna`, `im`, `dont` ... are single tokens in the corpora "
        "(`gonna` 46x, `gon` 2x; `im` 52x in wnut17 train)"
    ),
    (("&a;",), ("&", "a", ";")): (
        "keep ours: an HTML entity stands for one character (the train files keep `&amp;` whole)"
    ),
    (("&a;", "9"), ("&", "a;9")): (
        "keep ours: `&lt;` `3` as in the corpora (85x); spaCy's `lt;3` is a broken entity"
    ),
    (("a", "&a;", "a"), ("a&a;a",)): "keep ours: the entity is its own token between words",
    (("&a;", "&a;"), ("&", "a;&a", ";")): "keep ours: one token per HTML entity",
    (("@a_",), ("@a", "_")): _MENTION,
    (("@a__",), ("@a", "_", "_")): _MENTION,
    (("@a_a_",), ("@a_a", "_")): _MENTION,
    (("@_a_",), ("@_a", "_")): _MENTION,
    (("@a9_",), ("@a9", "_")): _MENTION,
    ((".", "@a"), (".@a",)): "keep ours: `.@user` is a mention after a dot (a public reply)",
    (("!!",), ("!", "!")): _REPEATED,
    (("!!!",), ("!", "!", "!")): _REPEATED,
    (("!!!!",), ("!", "!", "!", "!")): _REPEATED,
    (("!!!!!",), ("!", "!", "!", "!", "!")): _REPEATED,
    (("??",), ("?", "?")): _REPEATED,
    (("???",), ("?", "?", "?")): _REPEATED,
    (("a", "."), ("a.",)): (
        "keep ours: `St` `.`, `vs` `.`, `Mr` `.` as in the corpora (no `St.`/`Mr.` token in any "
        "train file); a name's span is the same either way"
    ),
    (("E",), ("E", "E")): (
        "keep ours: an emoji with its variation selector, skin tone or flag pair is one symbol"
    ),
    (("$9",), ("$", "9")): "keep ours: `$5` is one token in the corpora",
    (("$9.9",), ("$", "9.9")): "keep ours: an amount is one token, as `$5`",
    (("9%",), ("9", "%")): "keep ours: `100%` is one token in the corpora (16x vs a lone `%` 3x)",
    (("9a",), ("9", "a")): "keep ours: `9pm`, `1st`, `4GB` are one token in the corpora",
    (("-", "a"), ("-a",)): "keep ours: a dash before a word (`-Trump`, a signature) is punctuation",
    (("a", "-"), ("a-",)): "keep ours: a trailing dash (`Anti-`, `I-`) is punctuation",
    (("a://a.a/a9a9a",), ("a://a.a/a9a9", "a")): _URL_UNITS,
    (("a://a.a/a9a",), ("a://a.a/a9", "a")): _URL_UNITS,
    (("a://a.a/a9a9a9a",), ("a://a.a/a9a9a9", "a")): _URL_UNITS,
    (("a://a.a/9a9a9a",), ("a://a.a/9a9a9", "a")): _URL_UNITS,
    (("a://a.a/9a9a",), ("a://a.a/9a9", "a")): _URL_UNITS,
    (("a", ".", "a"), ("a.a",)): (
        "keep ours: mostly a missing space after a full stop (`today.this`, `voted.heard`); "
        "real hosts (`Agar.io`) are URLs for both"
    ),
    (("9:9", "a"), ("9:9a",)): "keep ours: the corpora write `7:30` `pm`",
    ((")", ":"), ("):",)): "keep ours: `(via @x):` — a paren and a colon, not spaCy's `):` emoticon",
    (("$a",), ("$", "a")): "fixed (ours): a cashtag (`$AAPL`) is one token, like a hashtag",
}

# Disagreements that were our tokenizer's mistakes, fixed (counts on tweets.txt before the fix;
# after it, each agrees with spaCy except the cashtag).
FIXED: List[Tuple[str, str, int]] = [
    ("`it's`, `Prompto's`, `Doctor’s`", "split the clitic: `Prompto` `'s` (spaCy and the WNUT train files)", 3793),
    ("`24/7`, `9/11`, `1/2`, `12/25/2016`", "one token: dates, scores, fractions (as spaCy and the corpora)", 173),
    ("`U.S.`, `D.C.`, `e.g.`, `p.m.`", "one token: dotted abbreviations of single letters", 165),
    ("`w/`, `w/o`", "one token (\"with\"), as spaCy and the corpora", 98),
    ("`https:/…`", "a URL (`<URL>`): tweets cut at 140 characters end so", 82),
    ("`AK-47`, `Pac-12`, `I-35`", "one token: letters, hyphen, digits (as spaCy and the corpora)", 62),
    ("`foo@bar.com`", "one token, not `foo` `@bar` `.` `com` (an e-mail, not a mention)", 10),
    ("`Agar.io`, `realtor.ca`, `bit.ly/x`", "one URL token (`<URL>`) for a host with a known TLD or a path", 8),
    ("`$AAPL`", "one token (a cashtag); spaCy splits it, so this one now disagrees", 0),
]

_LETTERS = re.compile(r"[^\W\d_]+")
_DIGITS = re.compile(r"\d+")
_SYMBOL_CATEGORIES = {"So", "Sk", "Cs", "Mn", "Me", "Cf"}


def spans(doc: Doc) -> List[Span]:
    """(start, end, text) of every token, white-space tokens included (both tokenizers make them)."""
    return [(t.idx, t.idx + len(t.text), t.text) for t in doc]


def _cuts(tokens: Sequence[Span]) -> set:
    """Offsets where a token starts or ends."""
    return {offset for start, end, _ in tokens for offset in (start, end)}


def disagreements(ours: Sequence[Span], theirs: Sequence[Span]) -> Iterator[Key]:
    """The pieces of one text that the two tokenizations split differently.

    A piece runs between two offsets where both have a token boundary (tokens do not overlap, so
    no token of either crosses such an offset): each piece holds whole tokens of both sides.
    """
    cuts = sorted(_cuts(ours) & _cuts(theirs))
    i = j = 0
    for left, right in zip(cuts, cuts[1:]):
        mine, other = [], []
        while i < len(ours) and ours[i][1] <= right:
            if ours[i][0] >= left:
                mine.append(ours[i][2])
            i += 1
        while j < len(theirs) and theirs[j][1] <= right:
            if theirs[j][0] >= left:
                other.append(theirs[j][2])
            j += 1
        if mine != other:
            yield tuple(mine), tuple(other)


def count_disagreements(
    texts: Iterable[str], ours: Callable[[str], Doc], theirs: Callable[[str], Doc]
) -> Tuple[Counter, int, int]:
    """Counts of every disagreement, the number of texts and of texts with at least one."""
    counts: Counter = Counter()
    n_texts = n_differ = 0
    for text in texts:
        n_texts += 1
        found = list(disagreements(spans(ours(text)), spans(theirs(text))))
        counts.update(found)
        n_differ += bool(found)
    return counts, n_texts, n_differ


def shape(token: str) -> str:
    """A coarse kind: letter runs -> ``a``, digit runs -> ``9``, emoji and marks -> ``E``.

    Grouping by shape puts every hashtag, every "n't" contraction ... on one line, so the
    second table shows the distinct *kinds* of disagreement rather than the frequent words.
    """
    token = _DIGITS.sub("9", _LETTERS.sub("a", token))
    token = "".join("E" if unicodedata.category(c) in _SYMBOL_CATEGORIES else c for c in token)
    return re.sub("E+", "E", token)


def by_shape(counts: Counter) -> Counter:
    """The same counts, keyed by the shapes of both sides."""
    shapes: Counter = Counter()
    for (mine, other), n in counts.items():
        shapes[tuple(map(shape, mine)), tuple(map(shape, other))] += n
    return shapes


def cell(tokens: Sequence[str]) -> str:
    """Tokens as one markdown cell: escaped, ``repr`` for white space, joined by SEP."""
    shown = [repr(t) if not t.strip() else t for t in tokens]
    return SEP.join(f"`{t.replace('`', 'ˋ')}`" for t in shown).replace("|", "\\|")


def decision(key: Key, shaped: bool = False) -> str:
    """The decision for a disagreement, found by its shapes (``shaped``: ``key`` already is)."""
    if not shaped:
        key = (tuple(map(shape, key[0])), tuple(map(shape, key[1])))
    return DECISIONS.get(key, "undecided")


def table(counts: Counter, top: int, shaped: bool = False) -> List[str]:
    """Markdown rows of the ``top`` most frequent disagreements, with their decisions."""
    lines = [
        "| # | count | ours | spaCy | decision |",
        "|---:|---:|---|---|---|",
    ]
    for rank, (key, n) in enumerate(counts.most_common(top), start=1):
        lines.append(f"| {rank} | {n:,} | {cell(key[0])} | {cell(key[1])} | {decision(key, shaped)} |")
    return lines


def fixed_table() -> List[str]:
    """The disagreements that were ours to fix, with their counts before the fix."""
    lines = ["| case | ours now | disagreements before the fix |", "|---|---|---:|"]
    lines += [f"| {what} | {now} | {n:,} |" for what, now, n in FIXED]
    return lines


def render(counts: Counter, n_texts: int, n_differ: int, top: int, source: str) -> str:
    """The markdown report: totals, the most frequent disagreements and the most frequent kinds."""
    shapes = by_shape(counts)
    lines = [
        "# Tokenizer disagreements: TwitterTokenizer vs spaCy English",
        "",
        f"Generated by `python scripts/tokenizer_disagreements.py {source} --top {top}`; "
        "decisions are kept in that script's `DECISIONS`.",
        "",
        f"{n_texts:,} tweets, {n_differ:,} with at least one disagreement; "
        f"{sum(counts.values()):,} disagreements: {len(counts):,} distinct strings, "
        f"{len(shapes):,} distinct shapes.",
        "",
        "## Fixed in our tokenizer",
        "",
        *fixed_table(),
        "",
        "## Most frequent disagreements",
        "",
        *table(counts, top),
        "",
        "## Most frequent kinds (shapes: letters `a`, digits `9`, emoji and marks `E`)",
        "",
        *table(shapes, top, shaped=True),
    ]
    return "\n".join(lines) + "\n"


def read_lines(path: Path) -> Iterator[str]:
    """One tweet a line; empty lines skipped."""
    with path.open(encoding="utf8") as f:
        for line in f:
            text = line.rstrip("\r\n")
            if text.strip():
                yield text


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="raw tweets, one a line")
    parser.add_argument("--top", type=int, default=30, help="how many disagreements to list")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file to write")
    args = parser.parse_args(argv)
    nlp = spacy.blank("en")
    ours = TwitterTokenizer(nlp.vocab)
    counts, n_texts, n_differ = count_disagreements(read_lines(args.path), ours, nlp.tokenizer)
    report = render(counts, n_texts, n_differ, args.top, str(args.path))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

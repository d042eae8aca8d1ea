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
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import spacy
from spacy.tokens import Doc

from spacy_twitter_ner.tokenizer import TwitterTokenizer

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "metrics" / "tokenizer-disagreements.md"
SEP = " · "  # between tokens in a table cell (a "|" would end the cell)

Span = Tuple[int, int, str]
Key = Tuple[Tuple[str, ...], Tuple[str, ...]]

# Decision per disagreement, keyed by the table's "ours" and "spaCy" cells (either table).
DECISIONS: Dict[Tuple[str, str], str] = {}

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


def count_disagreements(texts: Iterable[str], ours, theirs) -> Tuple[Counter, int, int]:
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


def table(counts: Counter, top: int) -> List[str]:
    """Markdown rows of the ``top`` most frequent disagreements, with their decisions."""
    lines = [
        "| # | count | ours | spaCy | decision |",
        "|---:|---:|---|---|---|",
    ]
    for rank, ((mine, other), n) in enumerate(counts.most_common(top), start=1):
        key = (cell(mine), cell(other))
        decision = DECISIONS.get(key, "undecided")
        lines.append(f"| {rank} | {n:,} | {key[0]} | {key[1]} | {decision} |")
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
        "## Most frequent disagreements",
        "",
        *table(counts, top),
        "",
        "## Most frequent kinds (shapes: letters `a`, digits `9`, emoji and marks `E`)",
        "",
        *table(shapes, top),
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
    report = render(counts, n_texts, n_differ, args.top, args.path.name)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

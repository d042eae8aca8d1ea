"""Read WNUT-style CoNLL files (one ``TOKEN TAG`` per line, tweets separated by blank lines)
and convert them to spaCy ``DocBin`` files.

The WNUT corpora have quirks that a naive reader gets wrong (tweets separated by a line holding
only a TAB, HTML entities split into tokens, no final blank line, ``I-`` tags that start an
entity). This module parses them strictly, reports every problem with ``file:line`` and repairs
BIO sequences the way ``conlleval`` (the official WNUT scorer) reads them, so the training data
spaCy sees is the data the scorer scores.

CLI: ``python -m spacy_twitter_ner.conll INPUT_DIR OUTPUT_DIR [--splits train dev test]``.
"""
import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc, DocBin
from spacy.training import biluo_tags_to_spans, iob_to_biluo
from spacy.vocab import Vocab
from wasabi import msg

__all__ = [
    "ConllFormatError",
    "Tweet",
    "read_conll",
    "repair_bio",
    "tweets_to_docs",
    "ConversionReport",
    "convert_file",
    "write_conll",
    "main",
]

# Only ASCII white space separates fields and marks blank lines: tweets contain characters such
# as U+00A0 or U+2028 inside tokens, and ``str.split()``/``str.splitlines()`` would cut them.
_FIELD_SEP = re.compile(r"[ \t\f\v]+")
_ASCII_WS = " \t\r\f\v"
_TAG_RE = re.compile(r"^(?:O|[BI]-.+)$")
_FORBIDDEN_IN_TOKEN = set(" \t\n\r\f\v")


class ConllFormatError(ValueError):
    """A CoNLL file cannot be read; the message always starts with ``<file>:<line>:``."""


@dataclass
class Tweet:
    """One tweet: its tokens, their BIO tags, and where it starts in the file (for messages)."""

    words: List[str]
    tags: List[str]
    line: int  # 1-based line number of the tweet's first token (0 if not read from a file)


def _decode(data: bytes, path: Path) -> str:
    """Decode UTF-8 (a leading BOM is dropped), turning a bad byte into a ``file:line`` error."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start : err.start + 1].hex()
        raise ConllFormatError(
            f"{path}:{line}: not UTF-8 (byte 0x{bad} at byte offset {err.start}: {err.reason})"
        ) from None


def _read(path: Union[str, Path]) -> Tuple[List[Tweet], int]:
    """Parse a file; also count blank lines that end no tweet (would-be empty tweets)."""
    path = Path(path)
    text = _decode(path.read_bytes(), path)
    tweets: List[Tweet] = []
    words: List[str] = []
    tags: List[str] = []
    start = 0
    extra_blanks = 0
    # Split on "\n" only: str.splitlines() would also break at U+2028, U+0085, ... inside tokens.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    for lineno, raw in enumerate(lines, start=1):
        stripped = raw.strip(_ASCII_WS)
        if not stripped:
            if words:
                tweets.append(Tweet(words, tags, start))
                words, tags = [], []
            else:
                extra_blanks += 1
            continue
        fields = _FIELD_SEP.split(stripped)
        if len(fields) < 2:
            raise ConllFormatError(f"{path}:{lineno}: expected 'TOKEN TAG', got {raw!r}")
        tag = fields[-1]
        if not _TAG_RE.match(tag):
            raise ConllFormatError(
                f"{path}:{lineno}: bad tag {tag!r} (expected O, B-<label> or I-<label>) in {raw!r}"
            )
        if not words:
            start = lineno
        words.append(fields[0])
        tags.append(tag)
    if words:  # no blank line at the very end
        tweets.append(Tweet(words, tags, start))
    return tweets, extra_blanks


def read_conll(path: Union[str, Path]) -> List[Tweet]:
    """Read a CoNLL BIO file into tweets, strictly: malformed lines raise ``ConllFormatError``.

    The token is the first field and the tag the last, so both TAB- and space-separated files
    (and extra middle columns) work. Any white-space-only line ends a tweet; runs of blank lines
    do not produce empty tweets.
    """
    return _read(path)[0]


def repair_bio(tags: List[str]) -> Tuple[List[str], int]:
    """Rewrite each ``I-X`` that continues no ``X`` entity as ``B-X``, as ``conlleval`` reads it.

    spaCy's ``iob_to_biluo`` would otherwise reject or misread such sequences; scoring with
    conlleval treats them as entity starts, so training does the same. Returns the repaired tags
    and how many were changed.
    """
    out: List[str] = []
    changed = 0
    prev_label: Optional[str] = None  # label of the entity the previous token is in
    for tag in tags:
        if tag == "O":
            prev_label = None
            out.append(tag)
            continue
        prefix, label = tag[:2], tag[2:]
        if prefix == "I-" and prev_label != label:
            tag = "B-" + label
            changed += 1
        out.append(tag)
        prev_label = label
    return out, changed


def _tweet_to_doc(tweet: Tweet, vocab: Vocab) -> Doc:
    n = len(tweet.words)
    if len(tweet.tags) != n:
        raise ValueError(
            f"tweet at line {tweet.line}: {n} words but {len(tweet.tags)} tags"
        )
    spaces = [True] * (n - 1) + [False] if n else []
    doc = Doc(vocab, words=tweet.words, spaces=spaces)
    tags, _ = repair_bio(tweet.tags)
    doc.ents = biluo_tags_to_spans(doc, iob_to_biluo(tags))
    return doc


def tweets_to_docs(tweets: Sequence[Tweet], vocab: Vocab) -> Iterator[Doc]:
    """Yield one ``Doc`` per tweet (tokens joined by single spaces) with entities from its
    repaired BIO tags; labels are kept exactly as in the file, so any tag set works."""
    for tweet in tweets:
        yield _tweet_to_doc(tweet, vocab)


@dataclass
class ConversionReport:
    """What one conversion produced, printed by the CLI so that nothing is lost silently."""

    path: str
    tweets: int
    tokens: int
    entities: int
    repaired_tags: int
    empty_tweets: int  # blank lines that ended no tweet (skipped, not turned into empty docs)
    labels: Dict[str, int] = field(default_factory=dict)


def convert_file(src: Path, dest: Path, vocab: Optional[Vocab] = None) -> ConversionReport:
    """Read ``src``, repair its BIO tags and write a ``DocBin`` to ``dest`` (parents created)."""
    src, dest = Path(src), Path(dest)
    vocab = vocab if vocab is not None else Vocab()
    tweets, extra_blanks = _read(src)
    docbin = DocBin(store_user_data=False)
    labels: Counter = Counter()
    tokens = entities = repaired = 0
    for tweet in tweets:
        repaired += repair_bio(tweet.tags)[1]
        doc = _tweet_to_doc(tweet, vocab)
        tokens += len(doc)
        entities += len(doc.ents)
        labels.update(ent.label_ for ent in doc.ents)
        docbin.add(doc)
    assert len(docbin) == len(tweets), f"{src}: {len(tweets)} tweets in, {len(docbin)} docs out"
    dest.parent.mkdir(parents=True, exist_ok=True)
    docbin.to_disk(dest)
    return ConversionReport(
        path=str(src),
        tweets=len(tweets),
        tokens=tokens,
        entities=entities,
        repaired_tags=repaired,
        empty_tweets=extra_blanks,
        labels=dict(sorted(labels.items())),
    )


def _doc_tags(doc: Doc) -> List[str]:
    return [
        f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc
    ]


def write_conll(tweets_or_docs: Iterable[Union[Tweet, Doc]], path: Union[str, Path]) -> int:
    """Write tweets or docs (entities from ``doc.ents``) as ``TOKEN<TAB>TAG`` CoNLL, a blank line
    after each tweet, so predictions can be scored with conlleval or read back. Returns the
    number of tweets written. A token holding white space would corrupt the file, so it raises
    ``ValueError`` instead."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for i, item in enumerate(tweets_or_docs):
            if isinstance(item, Doc):
                words, tags = [t.text for t in item], _doc_tags(item)
            else:
                words, tags = list(item.words), list(item.tags)
            if len(words) != len(tags):
                raise ValueError(f"item {i}: {len(words)} words but {len(tags)} tags")
            if not words:
                raise ValueError(f"item {i}: an empty tweet cannot be written to CoNLL")
            for word, tag in zip(words, tags):
                if not word or _FORBIDDEN_IN_TOKEN.intersection(word):
                    raise ValueError(
                        f"item {i}: token {word!r} is empty or holds white space; "
                        "it cannot be written as one CoNLL field"
                    )
                fh.write(f"{word}\t{tag}\n")
            fh.write("\n")
            count += 1
    return count


def main(argv: Optional[List[str]] = None) -> int:
    """Convert ``INPUT_DIR/{split}.conll`` to ``OUTPUT_DIR/{split}.spacy``; 0 on success, 1 on
    a missing file or a format error (printed, without a traceback)."""
    parser = argparse.ArgumentParser(
        prog="python -m spacy_twitter_ner.conll",
        description="Convert CoNLL BIO files (one token per line) to spaCy DocBin files.",
    )
    parser.add_argument("input_dir", type=Path, help="folder holding {split}.conll")
    parser.add_argument("output_dir", type=Path, help="folder to write {split}.spacy to")
    parser.add_argument(
        "--splits", nargs="+", default=["train", "dev", "test"], help="split names to convert"
    )
    args = parser.parse_args(argv)

    sources = [(split, args.input_dir / f"{split}.conll") for split in args.splits]
    missing = [src for _, src in sources if not src.is_file()]
    if missing:
        for src in missing:
            msg.fail(f"Input file not found: {src}")
        return 1
    vocab = Vocab()
    reports: List[Tuple[str, ConversionReport]] = []
    for split, src in sources:
        dest = args.output_dir / f"{split}.spacy"
        try:
            report = convert_file(src, dest, vocab)
        except ConllFormatError as err:
            # The message starts with "<file>:<line>:"; wasabi wraps only at spaces, keeping it whole.
            msg.fail(str(err))
            return 1
        reports.append((split, report))
        msg.good(
            f"{split}: {report.tweets} tweets -> {dest}",
            f"{report.tokens} tokens, {report.entities} entities, "
            f"{report.repaired_tags} repaired BIO tags, {report.empty_tweets} extra blank lines",
        )
    all_labels = sorted({label for _, r in reports for label in r.labels})
    header = ["split", "tweets", "tokens", "entities", "repaired"] + all_labels
    rows = [
        [split, r.tweets, r.tokens, r.entities, r.repaired_tags]
        + [r.labels.get(label, 0) for label in all_labels]
        for split, r in reports
    ]
    msg.info(f"Converted {len(reports)} split(s) from {args.input_dir} to {args.output_dir}")
    msg.table(rows, header=header, divider=True, aligns=["l"] + ["r"] * (len(header) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Read WNUT-style CoNLL files (one ``TOKEN TAG`` per line, tweets separated by blank lines)
and convert them to spaCy ``DocBin`` files.

The WNUT corpora have quirks that a naive reader gets wrong (tweets separated by a line holding
only a TAB, HTML entities split into tokens, no final blank line, ``I-`` tags that start an
entity). This module parses them strictly, reports every problem with ``file:line`` and repairs
BIO sequences the way ``conlleval`` (the official WNUT scorer) reads them, so the training data
spaCy sees is the data the scorer scores.

Some public Twitter NER corpora also hold tokens that are empty or only white space (a line
``<TAB>O``, or spaces, a TAB and a tag). No tokenizer produces such a token from raw text, so it
is dropped with a warning (:class:`EmptyTokenWarning`) and counted; the entities around it keep
the segmentation ``conlleval`` gives the full sequence.

CLI: ``python -m spacy_twitter_ner.conll INPUT_DIR OUTPUT_DIR [--splits train dev test]``.
"""
import argparse
import re
import sys
import warnings
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
    "EmptyTokenWarning",
    "Tweet",
    "read_conll",
    "repair_bio",
    "drop_tokens",
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


class EmptyTokenWarning(UserWarning):
    """Tokens that were empty or only white space were dropped; the message says where."""


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


@dataclass
class _Parsed:
    """What ``_read`` found in one file, with the counts that must reconcile."""

    tweets: List[Tweet]
    extra_blanks: int  # blank lines that ended no tweet
    token_lines: int  # every line that holds a tag, kept or dropped
    dropped: List[Tuple[int, str]]  # (line, tag) of each empty / white-space-only token


def _is_empty_token_line(raw: str, fields: List[str]) -> bool:
    """Whether the token column of ``raw`` is present but empty or only white space.

    Only a TAB can show an empty first column (``"<TAB>O"``, ``"  <TAB>B-x"``); with spaces
    alone, ``" O"`` is a line without a token, which stays an error. A token of Unicode white
    space (U+00A0 ...) is empty as well, whatever the separator.
    """
    if not raw[0].isspace():  # the common case, cheaply: the line starts with its token
        return False
    tab = raw.find("\t")
    if tab >= 0 and not raw[:tab].strip():
        return True
    return len(fields) > 1 and fields[0].isspace()


def _entity_ids(tags: List[str]) -> List[Optional[int]]:
    """Number the entities of valid (repaired) BIO tags; ``None`` for ``O``."""
    ids: List[Optional[int]] = []
    current = -1
    for tag in tags:
        if tag == "O":
            ids.append(None)
            continue
        if tag[0] == "B" or not ids or ids[-1] is None:
            current += 1
        ids.append(current)
    return ids


def drop_tokens(words: List[str], tags: List[str], drop: List[bool]) -> Tuple[List[str], List[str]]:
    """Remove the tokens flagged in ``drop`` and keep the entity segmentation of the rest.

    Entities are read as ``conlleval`` reads the full sequence. A kept token stays in the entity
    it was in: ``B-x <I-x> I-x`` stays one entity (``B-x I-x``), ``<B-x> I-x`` keeps ``I-x``,
    which :func:`repair_bio` reads as ``B-x``, and ``B-x <O> I-x`` stays two entities
    (``B-x B-x``). An entity whose tokens are all dropped is gone. Tags are otherwise left as
    they are, so :func:`repair_bio` still counts its own repairs.
    """
    ids = _entity_ids(repair_bio(tags)[0])
    kept_words: List[str] = []
    kept_tags: List[str] = []
    prev_id: Optional[int] = None
    for word, tag, entity, dropped in zip(words, tags, ids, drop):
        if dropped:
            continue
        # Only a kept I-x that would now continue another x entity has to start its own.
        if tag[:2] == "I-" and entity != prev_id and kept_tags and kept_tags[-1][2:] == tag[2:]:
            tag = "B-" + tag[2:]
        kept_words.append(word)
        kept_tags.append(tag)
        prev_id = entity
    return kept_words, kept_tags


def _read(path: Union[str, Path]) -> _Parsed:
    """Parse a file; also count blank lines that end no tweet and the tokens dropped as empty."""
    path = Path(path)
    text = _decode(path.read_bytes(), path)
    tweets: List[Tweet] = []
    words: List[str] = []
    tags: List[str] = []
    empty: List[bool] = []
    dropped: List[Tuple[int, str]] = []
    start = 0
    extra_blanks = 0
    token_lines = 0

    def end_tweet() -> None:
        nonlocal words, tags, empty, extra_blanks
        kept_words, kept_tags = drop_tokens(words, tags, empty) if any(empty) else (words, tags)
        if kept_words:
            tweets.append(Tweet(kept_words, kept_tags, start))
        else:  # a blank line that ends no tweet, or a tweet whose every token was dropped
            extra_blanks += 1
        words, tags, empty = [], [], []

    # Split on "\n" only: str.splitlines() would also break at U+2028, U+0085, ... inside tokens.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    for lineno, raw in enumerate(lines, start=1):
        stripped = raw.strip(_ASCII_WS)
        if not stripped:
            end_tweet()
            continue
        fields = _FIELD_SEP.split(stripped)
        tag = fields[-1]
        is_empty = _is_empty_token_line(raw, fields) and _TAG_RE.match(tag) is not None
        if not is_empty and len(fields) < 2:
            raise ConllFormatError(f"{path}:{lineno}: expected 'TOKEN TAG', got {raw!r}")
        if not _TAG_RE.match(tag):
            raise ConllFormatError(
                f"{path}:{lineno}: bad tag {tag!r} (expected O, B-<label> or I-<label>) in {raw!r}"
            )
        if not words:
            start = lineno
        token_lines += 1
        words.append("" if is_empty else fields[0])
        tags.append(tag)
        empty.append(is_empty)
        if is_empty:
            dropped.append((lineno, tag))
    if words:  # no blank line at the very end
        end_tweet()
    return _Parsed(tweets, extra_blanks, token_lines, dropped)


def _warn_dropped(path: Union[str, Path], dropped: List[Tuple[int, str]]) -> None:
    """One warning per file, with counts and the first few ``file:line`` places."""
    if not dropped:
        return
    in_entities = sum(tag != "O" for _, tag in dropped)
    where = ", ".join(f"{path}:{line}" for line, _ in dropped[:5])
    more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
    warnings.warn(
        f"dropped {len(dropped)} empty or white-space-only token(s) "
        f"({len(dropped) - in_entities} tagged O, {in_entities} inside entities) at {where}{more}",
        EmptyTokenWarning,
        stacklevel=3,
    )


def read_conll(path: Union[str, Path]) -> List[Tweet]:
    """Read a CoNLL BIO file into tweets, strictly: malformed lines raise ``ConllFormatError``.

    The token is the first field and the tag the last, so both TAB- and space-separated files
    (and extra middle columns) work. Any white-space-only line ends a tweet; runs of blank lines
    do not produce empty tweets. A token that is empty or only white space (``<TAB>O``) is
    dropped with an :class:`EmptyTokenWarning` (see :func:`drop_tokens`).
    """
    parsed = _read(path)
    _warn_dropped(path, parsed.dropped)
    return parsed.tweets


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
    tokens_read: int = 0  # token lines in the file: tokens + dropped_tokens
    dropped_o: int = 0  # empty / white-space-only tokens tagged O, dropped
    dropped_in_entities: int = 0  # the same, tagged B-x / I-x, dropped (entities repaired)

    @property
    def dropped_tokens(self) -> int:
        """All dropped tokens; ``tokens_read == tokens + dropped_tokens`` always holds."""
        return self.dropped_o + self.dropped_in_entities


def convert_file(src: Path, dest: Path, vocab: Optional[Vocab] = None) -> ConversionReport:
    """Read ``src``, repair its BIO tags and write a ``DocBin`` to ``dest`` (parents created).

    Empty or white-space-only tokens are dropped with an :class:`EmptyTokenWarning` and counted
    in the report."""
    src, dest = Path(src), Path(dest)
    vocab = vocab if vocab is not None else Vocab()
    parsed = _read(src)
    _warn_dropped(src, parsed.dropped)
    tweets = parsed.tweets
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
    dropped_o = sum(tag == "O" for _, tag in parsed.dropped)
    assert parsed.token_lines == tokens + len(parsed.dropped), (
        f"{src}: {parsed.token_lines} tokens read, {tokens} written, {len(parsed.dropped)} dropped"
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    docbin.to_disk(dest)
    return ConversionReport(
        path=str(src),
        tweets=len(tweets),
        tokens=tokens,
        entities=entities,
        repaired_tags=repaired,
        empty_tweets=parsed.extra_blanks,
        labels=dict(sorted(labels.items())),
        tokens_read=parsed.token_lines,
        dropped_o=dropped_o,
        dropped_in_entities=len(parsed.dropped) - dropped_o,
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
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", EmptyTokenWarning)
                report = convert_file(src, dest, vocab)
        except ConllFormatError as err:
            # The message starts with "<file>:<line>:"; wasabi wraps only at spaces, keeping it whole.
            msg.fail(str(err))
            return 1
        for warning in caught:
            if issubclass(warning.category, EmptyTokenWarning):
                msg.warn(f"{split}: {warning.message}")
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        reports.append((split, report))
        msg.good(
            f"{split}: {report.tweets} tweets -> {dest}",
            f"{report.tokens} tokens, {report.entities} entities, "
            f"{report.repaired_tags} repaired BIO tags, {report.empty_tweets} extra blank lines, "
            f"{report.dropped_tokens} dropped empty tokens ({report.tokens_read} read)",
        )
    all_labels = sorted({label for _, r in reports for label in r.labels})
    header = ["split", "tweets", "tokens", "entities", "repaired", "dropped"] + all_labels
    rows = [
        [split, r.tweets, r.tokens, r.entities, r.repaired_tags, r.dropped_tokens]
        + [r.labels.get(label, 0) for label in all_labels]
        for split, r in reports
    ]
    msg.info(f"Converted {len(reports)} split(s) from {args.input_dir} to {args.output_dir}")
    msg.table(rows, header=header, divider=True, aligns=["l"] + ["r"] * (len(header) - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

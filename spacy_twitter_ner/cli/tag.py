"""Command line tagger: tweets in (one per line), JSON Lines out.

    python -m spacy_twitter_ner MODEL [INPUT] [--output FILE] [--batch-size N] [--n-process N]
    spacy-twitter-ner MODEL [INPUT] ...

Every input line gives exactly one output object, in order, empty lines included, so output line
``i`` always belongs to input line ``i``::

    {"text": "...", "entities": [{"text": ..., "label": ..., "start": ..., "end": ..., "score": ...}]}

``start``/``end`` are character offsets into ``text``.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import BinaryIO, Iterable, List, Optional, Sequence

PROG = "spacy-twitter-ner"
STDIN_NAME = "<stdin>"
STDOUT = "-"
# Inputs shorter than this get no progress bar: it would flash by.
PROGRESS_MIN_LINES = 1000


class CLIError(Exception):
    """A user-facing error: printed as one line on stderr, exit code 1, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Tag named entities in tweets with a spaCy pipeline. Reads one tweet per line and "
            "writes one JSON object per input line (empty lines included, in order): "
            '{"text": ..., "entities": [{"text", "label", "start", "end", "score"}]}, with '
            "character offsets start/end."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="pipeline directory or installed pipeline package name")
    parser.add_argument(
        "input", metavar="INPUT", nargs="?", default="-",
        help="UTF-8 text file with one tweet per line; '-' or omitted reads stdin",
    )
    parser.add_argument("-o", "--output", metavar="FILE", default=STDOUT, help="JSON Lines output file (default: stdout)")
    parser.add_argument("-b", "--batch-size", metavar="N", type=_positive_int, default=64, help="tweets per batch (default 64)")
    parser.add_argument(
        "-n", "--n-process", metavar="N", type=_positive_int, default=1,
        help="worker processes for nlp.pipe (default 1)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def int_at_least(minimum: int):
    """An argparse ``type`` for integers >= ``minimum`` (a usage error naming the value)."""
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}")
        return n

    return parse


_positive_int = int_at_least(1)


# -- input --------------------------------------------------------------------------------------


def decode_lines(stream: BinaryIO, name: str) -> List[str]:
    """Lines of a UTF-8 byte stream without their ``\\n``/``\\r\\n`` ends (a leading BOM is
    dropped). Only ``\\n`` ends a line, so other Unicode line separators stay inside a tweet and
    line numbers match what ``wc -l``/editors show."""
    lines: List[str] = []
    for lineno, raw in enumerate(stream, start=1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise CLIError(
                f"{name}: line {lineno} is not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                f"{err.start + 1}); convert the file to UTF-8"
            ) from None
        lines.append(text)
    return lines


def read_input(path: str) -> List[str]:
    if path == "-":
        return decode_lines(sys.stdin.buffer, STDIN_NAME)
    p = Path(path)
    if not p.exists():
        raise CLIError(f"input file {path} does not exist")
    if p.is_dir():
        raise CLIError(f"input {path} is a directory, not a file")
    try:
        with p.open("rb") as f:
            return decode_lines(f, str(path))
    except OSError as err:
        raise CLIError(f"cannot read input file {path}: {err.strerror or err}") from None


# -- output -------------------------------------------------------------------------------------


def check_output(path: str) -> None:
    """Fail before the (slow) model load when the output file cannot be written."""
    if path == STDOUT:
        return
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"output {path} is a directory, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise CLIError(f"cannot write output file {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise CLIError(f"cannot write output file {path}: {parent} is not a directory")
    if p.exists() and not os.access(p, os.W_OK):
        raise CLIError(f"cannot write output file {path}: permission denied")
    if not p.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"cannot write output file {path}: directory {parent} is not writable")


def open_output(path: str) -> BinaryIO:
    if path == STDOUT:
        return sys.stdout.buffer
    try:
        return open(path, "wb")
    except OSError as err:
        raise CLIError(f"cannot write output file {path}: {err.strerror or err}") from None


# -- model --------------------------------------------------------------------------------------


def resolve_model(name: str):
    """The path or package name to hand to ``spacy.load``; checked before any slow work (spaCy
    is not even imported yet, so usage errors are reported at once)."""
    path = Path(name)
    if path.exists():
        if not path.is_dir():
            raise CLIError(f"model {name} is not a directory (expected a saved spaCy pipeline)")
        if not (path / "config.cfg").exists():
            raise CLIError(f"model {name} is not a spaCy pipeline directory (no config.cfg in it)")
        return path
    if _is_module(name):
        return name
    raise CLIError(f"model {name} not found: no such directory or installed pipeline package")


def _is_module(name: str) -> bool:
    """An importable (installed) package, e.g. a pipeline installed with ``spacy package``."""
    import importlib.util

    if not all(part.isidentifier() for part in name.split(".")):
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def load_model(name: str, target=None):
    import spacy

    target = resolve_model(name) if target is None else target
    try:
        return spacy.load(target)
    except Exception as err:  # noqa: BLE001 - any failure means the model is unusable
        detail = " ".join(str(err).split())[:300]
        raise CLIError(f"could not load model {name}: {type(err).__name__}: {detail}") from None


# -- tagging ------------------------------------------------------------------------------------


# JSON leaves these unescaped with ensure_ascii=False, but str.splitlines() and some editors
# treat them as line breaks: escaped, so that one object is one line for every reader.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def to_json_line(obj: dict) -> bytes:
    line = json.dumps(obj, ensure_ascii=False)
    for char, escaped in _LINE_BREAKS.items():
        if char in line:
            line = line.replace(char, escaped)
    return line.encode("utf-8") + b"\n"


def doc_to_json(text: str, doc) -> dict:
    entities = []
    for ent in doc.ents:
        score = getattr(ent._, "score", None) if ent.has_extension("score") else None
        entities.append(
            {
                "text": ent.text,
                "label": ent.label_,
                "start": ent.start_char,
                "end": ent.end_char,
                "score": None if score is None else float(score),
            }
        )
    return {"text": text, "entities": entities}


def tag_lines(nlp, lines: Sequence[str], batch_size: int, n_process: int) -> Iterable[dict]:
    docs = nlp.pipe(lines, batch_size=batch_size, n_process=n_process)
    for text, doc in zip(lines, docs):
        yield doc_to_json(text, doc)


def _progress(total: int, quiet: bool):
    disable = quiet or total < PROGRESS_MIN_LINES or not _isatty(sys.stderr)
    if disable:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    return tqdm(total=total, file=sys.stderr, unit="tweet", desc=PROG)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    target = resolve_model(args.model)
    check_output(args.output)
    lines = read_input(args.input)
    nlp = load_model(args.model, target)
    # one line is one tweet: never refuse a long line (the tagger is linear in its length)
    longest = max(map(len, lines), default=0)
    if longest >= nlp.max_length:
        nlp.max_length = longest + 1
    out = open_output(args.output)
    bar = _progress(len(lines), args.quiet)
    try:
        for obj in tag_lines(nlp, lines, args.batch_size, args.n_process):
            out.write(to_json_line(obj))
            if bar is not None:
                bar.update(1)
        out.flush()
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout.buffer:
            out.close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): argparse already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return run(args)
    except CLIError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, without a traceback at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

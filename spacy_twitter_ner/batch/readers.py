"""Inputs of ``annotate``: finding the files, cutting them into partitions, reading a partition.

Formats (by file name, ``.gz`` allowed on the line formats; ``--input-format`` overrides):

* ``text``: one tweet per line (UTF-8, ``\\n`` or ``\\r\\n``); every line is a record, empty ones
  included, so output record ``i`` of a file belongs to its line ``i``;
* ``jsonl`` (``.jsonl``, ``.ndjson``, ``.json``): one JSON object per line with a text field;
  blank lines are not records (they are counted, not annotated);
* ``parquet`` (``.parquet``, ``.pq``; needs pyarrow): a string column with the text.

A partition is a run of ``partition_size`` consecutive lines of one file (row groups for
Parquet), so one input file gives ``<stem>.part-00000``, ``<stem>.part-00001``, ... in order. The
driver finds where each partition starts in one pass over the file (a byte offset into the
decompressed stream); a worker seeks there (a ``.gz`` file is decompressed up to that point,
which is fast next to tagging) and reads its lines.
"""
import glob
import gzip
import json
import os
import zlib
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

TEXT, JSONL, PARQUET = "text", "jsonl", "parquet"
INPUT_FORMATS = (TEXT, JSONL, PARQUET)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
SKIP, STOP = "skip", "stop"
# skipped records named (file, line, reason) per partition; the counts are always complete
MAX_ERRORS_KEPT = 100
_CHUNK = 1 << 20


class AnnotateError(Exception):
    """A user-facing failure (bad input, unreadable file, a record in ``--on-error stop``): one
    line, no traceback. Raised in workers too, so it must stay picklable (message only)."""


class RecordError(AnnotateError):
    """One bad record under ``--on-error stop``."""


@dataclass
class Partition:
    """One unit of work: ``count`` lines (rows) of ``source`` from line (row) ``start``."""

    source: str  # absolute path
    input_format: str
    index: int
    name: str  # output file name without its extension: "<stem>.part-00003"
    start: int  # 0-based index of the first line (row)
    count: int  # lines (rows) in this partition
    offset: int = 0  # byte offset of the first line in the (decompressed) stream
    row_groups: Tuple[int, ...] = ()  # Parquet
    size: int = 0  # of the source file when planned: part of what a rerun must match to resume
    mtime_ns: int = 0  # informational only (a copied input keeps its partitions)

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["row_groups"] = list(self.row_groups)
        return d

    @classmethod
    def from_dict(cls, d: Dict) -> "Partition":
        return cls(**dict(d, row_groups=tuple(d.get("row_groups", ()))))


# -- finding files --------------------------------------------------------------------------------


def expand_inputs(patterns: Sequence[str]) -> List[str]:
    """Files named by ``patterns`` (files, globs such as ``data/*.jsonl.gz`` or ``data/**/*.txt``,
    or directories: their files, names starting with ``.``/``_`` left out), in order, each once."""
    files: List[str] = []
    seen = set()
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = [p for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p)]
            if not matches:
                raise AnnotateError(f"no files match {pattern}")
        elif os.path.isdir(pattern):
            matches = [
                os.path.join(pattern, n) for n in sorted(os.listdir(pattern))
                if not n.startswith((".", "_")) and os.path.isfile(os.path.join(pattern, n))
            ]
            if not matches:
                raise AnnotateError(f"input directory {pattern} has no files")
        elif not os.path.exists(pattern):
            raise AnnotateError(f"input file {pattern} does not exist")
        else:
            matches = [pattern]
        for path in matches:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            if not os.access(path, os.R_OK):
                raise AnnotateError(f"cannot read input file {path}: permission denied")
            files.append(path)
    return files


def detect_format(path: str, forced: Optional[str] = None) -> str:
    if forced and forced != "auto":
        return forced
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(JSONL_SUFFIXES):
        return JSONL
    if name.endswith(PARQUET_SUFFIXES):
        return PARQUET
    return TEXT


def file_stem(path: str) -> str:
    """``tweets.jsonl.gz`` -> ``tweets``; ``tweets.txt`` -> ``tweets``; ``tweets`` -> ``tweets``."""
    name = os.path.basename(path)
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem, ext = os.path.splitext(name)
    return stem or name


def output_stems(files: Sequence[str]) -> Dict[str, str]:
    """An output name stem per input file: its stem when those are unique, else its path from the
    inputs' common folder with ``/`` as ``__`` (``day1/tweets.jsonl`` -> ``day1__tweets``)."""
    stems = {f: file_stem(f) for f in files}
    if len(set(stems.values())) == len(stems):
        return stems
    absolute = [os.path.abspath(f) for f in files]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute])
    stems = {}
    for f, a in zip(files, absolute):
        rel = os.path.relpath(a, common)
        rel = rel[:-3] if rel.lower().endswith(".gz") else rel
        stems[f] = os.path.splitext(rel)[0].replace(os.sep, "__")
    if len(set(stems.values())) < len(stems):  # e.g. tweets.txt and tweets.jsonl side by side
        stems = {}
        for f, a in zip(files, absolute):
            rel = os.path.relpath(a, common)
            rel = rel[:-3] if rel.lower().endswith(".gz") else rel
            stems[f] = rel.replace(os.sep, "__").replace(".", "_")
    return stems


# -- planning -------------------------------------------------------------------------------------


def open_binary(path: str):
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_error(path: str, err: BaseException) -> AnnotateError:
    if isinstance(err, (gzip.BadGzipFile, zlib.error, EOFError)):
        return AnnotateError(f"{path}: damaged or truncated gzip file ({err})")
    if isinstance(err, OSError):
        return AnnotateError(f"cannot read input file {path}: {err.strerror or err}")
    return AnnotateError(f"cannot read input file {path}: {type(err).__name__}: {err}")


def scan_lines(path: str, partition_size: int) -> Tuple[int, List[int]]:
    """(number of lines, byte offset where each partition starts) in one pass over the file. A
    last line without ``\\n`` counts; an empty file has 0 lines and one (empty) partition."""
    offsets = [0]
    n = 0
    pos = 0
    last = b""
    boundary = partition_size
    try:
        with open_binary(path) as f:
            while True:
                buf = f.read(_CHUNK)
                if not buf:
                    break
                newlines = buf.count(b"\n")
                if n + newlines < boundary:
                    n += newlines
                else:
                    i = buf.find(b"\n")
                    while i >= 0:
                        n += 1
                        if n == boundary:
                            offsets.append(pos + i + 1)
                            boundary += partition_size
                        i = buf.find(b"\n", i + 1)
                pos += len(buf)
                last = buf[-1:]
    except (OSError, EOFError, zlib.error) as err:
        raise _read_error(path, err) from None
    if last and last != b"\n":
        n += 1
    if len(offsets) > 1 and offsets[-1] >= pos:  # the file ends exactly on a boundary
        offsets.pop()
    return n, offsets


def plan_file(path: str, input_format: str, stem: str, partition_size: int,
              text_field: str) -> List[Partition]:
    try:
        st = os.stat(path)
    except OSError as err:
        raise _read_error(path, err) from None
    source = os.path.abspath(path)
    common = dict(source=source, input_format=input_format, size=st.st_size, mtime_ns=st.st_mtime_ns)
    parts: List[Partition] = []
    if input_format == PARQUET:
        for i, (start, count, groups) in enumerate(_parquet_groups(path, partition_size, text_field)):
            parts.append(Partition(index=i, name=part_name(stem, i), start=start, count=count,
                                   row_groups=groups, **common))
        return parts
    n, offsets = scan_lines(path, partition_size)
    for i, offset in enumerate(offsets):
        start = i * partition_size
        parts.append(Partition(index=i, name=part_name(stem, i), start=start,
                               count=min(partition_size, n - start), offset=offset, **common))
    return parts


def part_name(stem: str, index: int) -> str:
    return f"{stem}.part-{index:05d}"


def _parquet_file(path: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AnnotateError(
            f"{path}: reading Parquet needs pyarrow: pip install 'spacy-twitter-ner[parquet]'"
        ) from None
    try:
        return pq.ParquetFile(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several kinds
        raise AnnotateError(f"{path}: not a readable Parquet file ({' '.join(str(err).split())[:200]})") from None


def _parquet_groups(path: str, partition_size: int, text_field: str):
    """(first row, rows, row groups) per partition: consecutive row groups, at least
    ``partition_size`` rows each (the last may have fewer; a big row group is one partition)."""
    import pyarrow as pa

    pf = _parquet_file(path)
    schema = pf.schema_arrow
    if text_field not in schema.names:
        raise AnnotateError(f"{path}: no column {text_field!r} (columns: {', '.join(schema.names)}); "
                            f"name the text column with --text-field")
    kind = schema.field(text_field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise AnnotateError(f"{path}: column {text_field!r} holds {kind}, not strings")
    meta = pf.metadata
    groups: List[int] = []
    start = rows = 0
    out = []
    for g in range(meta.num_row_groups):
        groups.append(g)
        rows += meta.row_group(g).num_rows
        if rows >= partition_size:
            out.append((start, rows, tuple(groups)))
            start, rows, groups = start + rows, 0, []
    if groups or not out:
        out.append((start, rows, tuple(groups)))
    return out


# -- reading a partition --------------------------------------------------------------------------


@dataclass
class PartitionInput:
    """What a partition holds: the records to annotate, in order, and the ones skipped."""

    texts: List[str] = field(default_factory=list)
    keys: List[int] = field(default_factory=list)  # 1-based line (row) numbers of ``texts``
    objects: Optional[List[Dict]] = None  # JSONL: the parsed objects, in step with ``texts``
    table: object = None  # Parquet: the partition's rows (a pyarrow Table), skipped ones included
    records_in: int = 0
    blank_lines: int = 0
    skipped: int = 0
    errors: List[Dict] = field(default_factory=list)  # first MAX_ERRORS_KEPT skipped records

    def skip(self, key: int, message: str, on_error: str) -> None:
        if on_error == STOP:
            raise RecordError(message)
        self.skipped += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append({"line": key, "error": message})


def read_partition(part: Partition, text_field: str, on_error: str) -> PartitionInput:
    if part.input_format == PARQUET:
        return _read_parquet(part, text_field, on_error)
    result = PartitionInput(objects=[] if part.input_format == JSONL else None)
    n_read = 0
    path = part.source
    try:
        with open_binary(path) as f:
            if part.offset:
                f.seek(part.offset)
            for n_read, raw in enumerate(_take(f, part.count), start=1):
                lineno = part.start + n_read
                _add_line(result, part, raw, lineno, text_field, on_error)
    except AnnotateError:
        raise
    except (OSError, EOFError, zlib.error) as err:
        raise _read_error(path, err) from None
    if n_read != part.count:
        raise AnnotateError(
            f"{path} changed while being annotated: expected {part.count} lines from line "
            f"{part.start + 1}, found {n_read}; rerun the command"
        )
    return result


def _take(f, count: int) -> Iterable[bytes]:
    for i, raw in enumerate(f):
        if i >= count:
            return
        yield raw


def _add_line(result: PartitionInput, part: Partition, raw: bytes, lineno: int,
              text_field: str, on_error: str) -> None:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    where = f"{part.source}:{lineno}"
    if part.input_format == JSONL and not raw.strip():
        result.blank_lines += 1
        return
    result.records_in += 1
    try:
        text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as err:
        result.skip(lineno, f"{where}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                            f"{err.start + 1})", on_error)
        return
    if part.input_format == TEXT:
        result.texts.append(text)
        result.keys.append(lineno)
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        result.skip(lineno, f"{where}: malformed JSON: {err.msg} (column {err.colno})", on_error)
        return
    if not isinstance(obj, dict):
        result.skip(lineno, f"{where}: expected a JSON object, got {_json_type(obj)}", on_error)
        return
    found, value = get_field(obj, text_field)
    if not found:
        result.skip(lineno, f"{where}: no {text_field!r} field (use --text-field to name the "
                            f"text field)", on_error)
        return
    if not isinstance(value, str):
        result.skip(lineno, f"{where}: field {text_field!r} is {_json_type(value)}, not a string",
                    on_error)
        return
    result.texts.append(value)
    result.keys.append(lineno)
    result.objects.append(obj)


def get_field(obj: Dict, name: str) -> Tuple[bool, object]:
    """``obj[name]``, or a nested field by a dotted path (``extended_tweet.full_text``)."""
    if name in obj:
        return True, obj[name]
    value: object = obj
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _json_type(value) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _read_parquet(part: Partition, text_field: str, on_error: str) -> PartitionInput:
    pf = _parquet_file(part.source)
    try:
        table = pf.read_row_groups(list(part.row_groups)) if part.row_groups else pf.schema_arrow.empty_table()
    except Exception as err:  # noqa: BLE001
        raise AnnotateError(f"{part.source}: cannot read rows ({' '.join(str(err).split())[:200]})") from None
    if table.num_rows != part.count:
        raise AnnotateError(f"{part.source} changed while being annotated; rerun the command")
    result = PartitionInput(table=table, records_in=table.num_rows)
    for i, text in enumerate(table.column(text_field).to_pylist()):
        row = part.start + i + 1
        if text is None:
            result.skip(row, f"{part.source}: row {row}: {text_field!r} is null", on_error)
            continue
        result.texts.append(text)
        result.keys.append(row)
    return result

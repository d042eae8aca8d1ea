"""Outputs of ``annotate``: one file per input partition, written atomically, plus bookkeeping.

``OUTDIR/<stem>.part-00003.jsonl`` (or ``.parquet``) is written under a temporary name in OUTDIR
(``.<name>.tmp-<random>``) and renamed with ``os.replace`` only when complete, so a final name
always means a complete partition: a worker that dies leaves at most a temporary file, and two
runs of the same partition (a task retried after its worker died) write the same bytes to the same
name. Next to it, ``OUTDIR/_parts/<name>.json`` records where the partition came from and its
counts (written before the data file is renamed); a rerun skips partitions that have both.
``OUTDIR/_SUCCESS.json`` summarises a finished job. Names that start with ``.`` or ``_`` are
ignored by Parquet/Dask readers, so ``dask.dataframe.read_parquet(OUTDIR)`` reads just the data.
"""
import json
import os
import uuid
from typing import Callable, Dict, Iterable, List, Optional

from ..cli.tag import to_json_line

EXTENSIONS = {"jsonl": ".jsonl", "parquet": ".parquet"}
OUTPUT_FORMATS = tuple(EXTENSIONS)
PARTS_DIR = "_parts"
SUMMARY = "_SUCCESS.json"
TMP_MARK = ".tmp-"


def output_path(outdir: str, name: str, fmt: str) -> str:
    return os.path.join(outdir, name + EXTENSIONS[fmt])


def meta_path(outdir: str, name: str) -> str:
    return os.path.join(outdir, PARTS_DIR, name + ".json")


def temporary_name(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARK}{uuid.uuid4().hex[:12]}")


def atomic_write(path: str, write: Callable[[str], None],
                 before_rename: Optional[Callable[[], None]] = None) -> None:
    """``write(tmp)`` to a temporary name next to ``path``, flush it to disk, call
    ``before_rename()``, rename it to ``path``; the temporary file is removed on failure."""
    tmp = temporary_name(path)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def json_line(obj: Dict) -> bytes:
    try:
        return to_json_line(obj)
    except TypeError:  # Parquet values JSON has no type for (timestamps, bytes, ...)
        return to_json_line(json.loads(json.dumps(obj, ensure_ascii=False, default=str)))


def write_jsonl(path: str, objects: Iterable[Dict]) -> None:
    with open(path, "wb") as f:
        for obj in objects:
            f.write(json_line(obj))


ENTITY_FIELDS = (("text", "string"), ("label", "string"), ("start", "int64"), ("end", "int64"),
                 ("score", "float64"))


def entities_type():
    import pyarrow as pa

    return pa.list_(pa.struct([pa.field(n, getattr(pa, t)()) for n, t in ENTITY_FIELDS]))


def write_parquet(path: str, table) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def with_entities(table, entities: List[List[Dict]]):
    """``table`` (the kept records' fields; None for none) with an ``entities`` column last."""
    import pyarrow as pa

    column = pa.array(entities, type=entities_type())
    if table is None:
        return pa.table({"entities": column})
    if "entities" in table.column_names:
        table = table.drop(["entities"])
    return table.append_column("entities", column)


def records_table(records: List[Dict], where: str):
    """A pyarrow Table of JSON records (JSONL input written as Parquet)."""
    import pyarrow as pa

    from .readers import AnnotateError

    try:
        return pa.Table.from_pylist(records) if records else None
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise AnnotateError(
            f"{where}: the records' fields do not fit one Parquet schema ({' '.join(str(err).split())[:200]}); "
            f"use --format jsonl"
        ) from None


def write_json(path: str, obj: Dict) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2)
            f.write("\n")

    atomic_write(path, write)


def read_json(path: str) -> Optional[Dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def remove_temporaries(outdir: str) -> int:
    """Delete temporary files that runs killed mid-write left behind; how many."""
    removed = 0
    for folder in (outdir, os.path.join(outdir, PARTS_DIR)):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and TMP_MARK in name:
                try:
                    os.unlink(os.path.join(folder, name))
                    removed += 1
                except OSError:
                    pass
    return removed

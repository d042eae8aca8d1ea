"""Annotating one partition: what a Dask task (or the ``--workers 0`` loop) runs.

The pipeline is loaded once per process and kept in a cache keyed by the model's path or package
name (:func:`get_nlp`); Dask workers fill it in their plugin's setup, before any task runs, so a
task only ever looks it up. Tasks get the model's name, never the pipeline itself.
"""
import os
import socket
import threading
import time
from typing import Dict, List, Optional

from . import writers
from .readers import JSONL, PARQUET, TEXT, AnnotateError, Partition, read_partition

_LOCK = threading.Lock()
_MODELS: Dict[str, object] = {}
LOAD_SECONDS: Dict[str, float] = {}  # model -> seconds this process took to load it
LOADS: Dict[str, int] = {}  # model -> times this process loaded it (1, or the cache is broken)
LOAD_ERRORS: Dict[str, str] = {}  # model -> why this process could not load it


def get_nlp(model: str):
    """The pipeline ``model`` (a directory or an installed package), loaded once per process."""
    with _LOCK:
        nlp = _MODELS.get(model)
        if nlp is None:
            from ..cli.tag import CLIError, load_model, resolve_model

            t0 = time.perf_counter()
            try:
                nlp = load_model(model, resolve_model(model))
            except CLIError as err:
                LOAD_ERRORS[model] = str(err)
                raise AnnotateError(str(err)) from None
            LOAD_ERRORS.pop(model, None)
            LOAD_SECONDS[model] = time.perf_counter() - t0
            LOADS[model] = LOADS.get(model, 0) + 1
            _MODELS[model] = nlp
        return nlp


def process_info() -> Dict:
    """This process: pid, host, memory now and at its peak (bytes), model load times, threads."""
    import resource

    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "load_seconds": dict(LOAD_SECONDS), "loads": dict(LOADS), "load_errors": dict(LOAD_ERRORS)}
    try:
        import psutil

        info["rss"] = psutil.Process().memory_info().rss
    except ImportError:  # pragma: no cover - psutil comes with distributed
        info["rss"] = None
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        info["torch_threads"] = None
    return info


def partition_identity(part: Partition, settings: Dict) -> Dict:
    """What an existing output partition must have been made from to be reused by a rerun."""
    return {
        "source": part.source, "input_format": part.input_format, "start": part.start,
        "count": part.count, "size": part.size, "model": settings["model"],
        "format": settings["format"],
        "text_field": None if part.input_format == TEXT else settings["text_field"],
    }


def finished(outdir: str, part: Partition, settings: Dict) -> Optional[Dict]:
    """The recorded result of ``part`` when its output exists and was made by this same job;
    None when it has to be (re)computed. Raises when a different job's output is in the way."""
    final = writers.output_path(outdir, part.name, settings["format"])
    if not os.path.exists(final):
        return None
    meta = writers.read_json(writers.meta_path(outdir, part.name))
    if meta is None or meta.get("partition") != partition_identity(part, settings):
        raise AnnotateError(
            f"{final} exists but was not made by this job (different input, model, --format, "
            f"--text-field or --partition-size): use a new output directory, or delete it"
        )
    return meta["result"]


def annotate_partition(part_dict: Dict, settings: Dict) -> Dict:
    """Annotate one partition and write it to ``settings['outdir']``; return its counts.

    Idempotent: run twice (a retry after a worker died), it writes the same file under the same
    name; a partition already done by this job is not recomputed."""
    part = Partition.from_dict(part_dict)
    outdir, fmt = settings["outdir"], settings["format"]
    done = finished(outdir, part, settings)
    if done is not None:
        return dict(done, reused=True)
    nlp = get_nlp(settings["model"])
    t0 = time.perf_counter()
    data = read_partition(part, settings["text_field"], settings["on_error"])
    longest = max(map(len, data.texts), default=0)
    if longest >= nlp.max_length:  # one line is one tweet: never refuse a long one
        nlp.max_length = longest + 1
    from ..cli.tag import doc_to_json

    entities: List[List[Dict]] = []
    words = 0
    for text, doc in zip(data.texts, nlp.pipe(data.texts, batch_size=settings["batch_size"])):
        words += len(doc)
        entities.append(doc_to_json(text, doc)["entities"])
    if data.records_in != len(entities) + data.skipped:  # pragma: no cover - a bug, never input
        raise AnnotateError(f"{part.name}: {data.records_in} records read but "
                            f"{len(entities)} annotated and {data.skipped} skipped")
    result = {
        "name": part.name, "source": part.source, "index": part.index,
        "records_in": data.records_in, "records_out": len(entities), "skipped": data.skipped,
        "blank_lines": data.blank_lines, "words": words, "errors": data.errors,
        "seconds": round(time.perf_counter() - t0, 4), "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    final = writers.output_path(outdir, part.name, fmt)
    meta = {"partition": partition_identity(part, settings), "result": result}
    write = _writer(part, data, entities, fmt)
    writers.atomic_write(final, write, lambda: writers.write_json(writers.meta_path(outdir, part.name), meta))
    return result


def _writer(part: Partition, data, entities: List[List[Dict]], fmt: str):
    if fmt == "jsonl":
        return lambda tmp: writers.write_jsonl(tmp, _records(part, data, entities))
    return lambda tmp: writers.write_parquet(tmp, _table(part, data, entities))


def _records(part: Partition, data, entities):
    if part.input_format == TEXT:
        for text, line, ents in zip(data.texts, data.keys, entities):
            yield {"text": text, "entities": ents, "line": line}
    elif part.input_format == JSONL:
        for obj, ents in zip(data.objects, entities):
            obj["entities"] = ents
            yield obj
    else:  # PARQUET
        rows = data.table.to_pylist()
        for row_number, ents in zip(data.keys, entities):
            row = rows[row_number - part.start - 1]
            row["entities"] = ents
            yield row


def _table(part: Partition, data, entities):
    import pyarrow as pa

    if part.input_format == TEXT:
        return pa.table({"text": pa.array(data.texts, pa.string()),
                         "entities": pa.array(entities, type=writers.entities_type()),
                         "line": pa.array(data.keys, pa.int64())})
    if part.input_format == JSONL:
        table = writers.records_table([{k: v for k, v in o.items() if k != "entities"} for o in data.objects],
                                      f"{part.source} ({part.name})")
        return writers.with_entities(table, entities)
    assert part.input_format == PARQUET
    table = data.table
    if data.skipped:
        table = table.take(pa.array([k - part.start - 1 for k in data.keys], pa.int64()))
    return writers.with_entities(table, entities)

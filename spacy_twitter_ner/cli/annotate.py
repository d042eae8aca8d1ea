"""Annotate many tweet files, in parallel on Dask, one output partition per input partition.

    spacy-twitter-ner annotate MODEL INPUT... -o OUTDIR [--workers N | --scheduler ADDRESS]
        [--text-field text] [--format jsonl|parquet] [--partition-size LINES]
        [--batch-size B] [--on-error stop|skip] [--input-format auto|text|jsonl|parquet]

INPUTs are files, globs (quote them: ``'data/*.jsonl.gz'``) or directories of: plain text (one
tweet per line), JSON Lines with a text field (``.jsonl``/``.ndjson``/``.json``), either gzipped
(``.gz``), or Parquet. Every ``--partition-size`` lines of a file (default 50,000) are one
partition and give one output file, ``OUTDIR/<input-stem>.part-00003.jsonl`` (or ``.parquet``),
with the same records in the same order plus ``entities`` (as ``spacy-twitter-ner tag`` writes
them): ``{"text", "entities", "line"}`` for plain text (``line``: 1-based line in the input),
every original field plus ``entities`` for JSON Lines and Parquet.

``--workers N`` (default: the number of cores) starts N single-threaded Dask worker processes
here; ``--workers 0`` runs in this process without Dask (one torch thread unless
``OMP_NUM_THREADS`` is set); ``--scheduler tcp://host:8786`` uses an
existing cluster, whose workers must see MODEL, the inputs and OUTDIR at the same paths.

A rerun of the same command skips the partitions already written (a partition's file appears
under its final name only once complete) and says how many. ``OUTDIR/_SUCCESS.json`` holds the
per-file counts: records in = records out + records skipped.
"""
import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

from .tag import CLIError, PROG, _isatty, _positive_int, int_at_least, resolve_model

DEFAULT_PARTITION_SIZE = 50_000
MAX_ERRORS_SHOWN = 20
MAX_FILES_LISTED = 20
MAX_ERRORS_LISTED = 100  # skipped records named per file in _SUCCESS.json (all are counted)


def build_parser() -> argparse.ArgumentParser:
    from ..batch.readers import INPUT_FORMATS, SKIP, STOP
    from ..batch.writers import OUTPUT_FORMATS

    parser = argparse.ArgumentParser(
        prog=f"{PROG} annotate",
        description=(
            "Annotate many tweet files with a spaCy pipeline, in parallel (Dask). Each partition "
            "of an input file (--partition-size lines) becomes one output file in OUTDIR, with the "
            "same records in the same order plus their entities; a rerun resumes."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="pipeline directory or installed pipeline package name")
    parser.add_argument("inputs", metavar="INPUT", nargs="+",
                        help="input files, globs or directories (.txt/.jsonl/.parquet, .gz allowed)")
    parser.add_argument("-o", "--output", metavar="OUTDIR", required=True, help="output directory (created)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-w", "--workers", metavar="N", type=_non_negative_int, default=None,
                       help="local Dask worker processes, one thread each (default: number of cores); 0: no Dask, this process")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running Dask scheduler (tcp://host:8786); its workers must "
                            "see MODEL, the inputs and OUTDIR at the same paths")
    parser.add_argument("--text-field", metavar="NAME", default="text",
                        help="JSON field (dotted path allowed) or Parquet column with the text (default: text)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="jsonl", help="output format (default jsonl)")
    parser.add_argument("--input-format", choices=("auto",) + INPUT_FORMATS, default="auto",
                        help="input format (default: from the file name)")
    parser.add_argument("--partition-size", metavar="LINES", type=_positive_int, default=DEFAULT_PARTITION_SIZE,
                        help=f"lines (Parquet: rows, whole row groups) per partition (default {DEFAULT_PARTITION_SIZE})")
    parser.add_argument("-b", "--batch-size", metavar="N", type=_positive_int, default=64,
                        help="tweets per nlp.pipe batch (default 64)")
    parser.add_argument("--on-error", choices=(STOP, SKIP), default=STOP,
                        help="a bad record (malformed JSON, no text field, text not a string, invalid "
                             "UTF-8): stop with its file:line (default), or skip it and count it")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


_non_negative_int = int_at_least(0)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# -- planning -------------------------------------------------------------------------------------


def model_ref(name: str, remote: bool) -> str:
    """What workers load: an absolute directory path or a package name. A path the driver cannot
    see is passed on as given to a remote cluster (its workers may see it)."""
    try:
        target = resolve_model(name)
    except CLIError:
        if remote:
            return name
        raise
    return os.path.abspath(target) if not isinstance(target, str) else target


def check_outdir(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"output {path} is not a directory")
    try:
        os.makedirs(os.path.join(path, "_parts"), exist_ok=True)
    except OSError as err:
        raise CLIError(f"cannot create output directory {path}: {err.strerror or err}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CLIError(f"output directory {path} is not writable")


def plan(inputs: Sequence[str], input_format: str, partition_size: int, text_field: str):
    """(files in order, partitions in order) for the inputs."""
    from ..batch import readers

    files = readers.expand_inputs(inputs)
    stems = readers.output_stems(files)
    parts = []
    for path in files:
        fmt = readers.detect_format(path, input_format)
        parts.extend(readers.plan_file(path, fmt, stems[path], partition_size, text_field))
    return files, parts


# -- running --------------------------------------------------------------------------------------


class Progress:
    """A bar over partitions on a terminal (tqdm); silent otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.bar = None
        self.words = 0
        self.t0 = time.perf_counter()
        if not quiet and total and _isatty(sys.stderr):
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, file=sys.stderr, unit="part", desc="annotate")
            except ImportError:  # pragma: no cover - tqdm is a dependency
                pass

    def update(self, result: Dict) -> None:
        self.words += result["words"]
        if self.bar is not None:
            rate = self.words / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:,.0f} words/s", refresh=False)
            self.bar.update(1)

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def annotate(args: argparse.Namespace, client=None, log=print) -> Dict:
    """Run the job ``args`` describes (``client``: an existing ``distributed.Client`` to use
    instead of ``--workers``/``--scheduler``); return the summary written to ``_SUCCESS.json``."""
    from ..batch import tasks, writers
    from ..batch.readers import RecordError

    t_start = time.perf_counter()
    remote = client is not None or args.scheduler is not None
    workers = None if remote else (default_workers() if args.workers is None else args.workers)
    in_process = workers == 0
    model = model_ref(args.model, remote)
    outdir = os.path.abspath(args.output)
    settings = {"model": model, "outdir": outdir, "format": args.format, "text_field": args.text_field,
                "batch_size": args.batch_size, "on_error": args.on_error}
    files, parts = plan(args.inputs, args.input_format, args.partition_size, args.text_field)
    check_outdir(outdir)
    log(f"{_n(len(files), 'input file')}, {_n(sum(p.count for p in parts), 'record')} "
        f"(lines/rows), {_n(len(parts), 'partition')} -> {args.output}")
    summary_path = os.path.join(outdir, writers.SUMMARY)
    if os.path.exists(summary_path):
        os.unlink(summary_path)  # rewritten when this run completes
    writers.remove_temporaries(outdir)

    done: Dict[str, Dict] = {}
    for part in parts:
        result = tasks.finished(outdir, part, settings)
        if result is not None:
            done[part.name] = result
    todo = [p for p in parts if p.name not in done]
    if done:
        log(f"resuming: {len(done)} of {len(parts)} partitions already in {args.output}, skipped; "
            f"{len(todo)} to annotate")

    results: Dict[str, Dict] = dict(done)
    progress = None
    cluster = own_client = None
    shown_errors = 0
    t_startup = t_run = time.perf_counter()
    try:
        if todo and in_process:
            if "OMP_NUM_THREADS" not in os.environ:  # one thread, as a Dask worker has
                import torch

                torch.set_num_threads(1)
            tasks.get_nlp(model)  # load once, up front (and fail before any work)
        elif todo:
            from ..batch import dask_runner

            if client is None:
                if args.scheduler:
                    client = own_client = dask_runner.connect(args.scheduler)
                else:
                    cluster = dask_runner.local_cluster(workers)
                    client = own_client = dask_runner.Client(cluster)
            dask_runner.load_on_workers(client, model, wait_for_workers=workers or 1)
        t_run = time.perf_counter()
        progress = Progress(len(todo), getattr(args, "quiet", False))
        if not todo:
            stream = iter(())
        elif in_process:
            stream = (tasks.annotate_partition(p.to_dict(), settings) for p in todo)
        else:
            stream = dask_runner.run_partitions(client, [p.to_dict() for p in todo], settings)
        for result in stream:
            results[result["name"]] = result
            progress.update(result)
            for err in result["errors"]:
                if shown_errors < MAX_ERRORS_SHOWN:
                    progress.write(f"{PROG}: warning: skipped {err['error']}")
                shown_errors += 1
    except RecordError as err:
        raise CLIError(f"{err} (--on-error skip skips and counts such records; the partitions "
                       f"already written are kept: rerun the same command to resume)") from None
    finally:
        if progress is not None:
            progress.close()
        if own_client is not None or cluster is not None:
            dask_runner.close(own_client, cluster)
    t_end = time.perf_counter()
    writers.remove_temporaries(outdir)

    summary = make_summary(args, settings, files, parts, results, set(done),
                           workers=workers, run_seconds=t_end - t_run,
                           startup_seconds=t_run - t_startup, total_seconds=t_end - t_start)
    writers.write_json(summary_path, summary)
    report(summary, shown_errors, log)
    return summary


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def make_summary(args, settings: Dict, files: List[str], parts, results: Dict[str, Dict],
                 resumed: set, workers: int, run_seconds: float, startup_seconds: float,
                 total_seconds: float) -> Dict:
    from ..batch import writers

    keys = ("records_in", "records_out", "skipped", "blank_lines", "words")
    per_file: Dict[str, Dict] = {}
    for path in files:
        per_file[os.path.abspath(path)] = dict(input=path, source=os.path.abspath(path), input_format=None,
                                               partitions=0, **{k: 0 for k in keys}, outputs=[], errors=[])
    for part in parts:
        r = results[part.name]
        f = per_file[part.source]
        f["input_format"] = part.input_format
        f["partitions"] += 1
        for k in keys:
            f[k] += r[k]
        f["outputs"].append(part.name + writers.EXTENSIONS[settings["format"]])
        f["errors"].extend(r["errors"][:max(0, MAX_ERRORS_LISTED - len(f["errors"]))])
        if f["records_in"] != f["records_out"] + f["skipped"]:  # pragma: no cover - a bug
            raise CLIError(f"{part.source}: counts do not add up")
    run_parts = [results[p.name] for p in parts if p.name not in resumed]
    run_words = sum(r["words"] for r in run_parts)
    totals = {k: sum(f[k] for f in per_file.values()) for k in keys}
    totals.update(files=len(files), partitions=len(parts), partitions_resumed=len(resumed))
    return {
        "status": "complete",
        "command": "annotate",
        "model": settings["model"],
        "output": settings["outdir"],
        "format": settings["format"],
        "text_field": settings["text_field"],
        "partition_size": args.partition_size,
        "on_error": settings["on_error"],
        "batch_size": settings["batch_size"],
        "scheduler": args.scheduler,
        "workers": workers,
        "totals": totals,
        "this_run": {
            "partitions": len(run_parts),
            "records": sum(r["records_in"] for r in run_parts),
            "words": run_words,
            "startup_seconds": round(startup_seconds, 3),
            "seconds": round(run_seconds, 3),
            "total_seconds": round(total_seconds, 3),
            "words_per_second": round(run_words / run_seconds, 1) if run_seconds > 0 else None,
        },
        "files": list(per_file.values()),
    }


def report(summary: Dict, shown_errors: int, log=print) -> None:
    totals, run = summary["totals"], summary["this_run"]
    if shown_errors > MAX_ERRORS_SHOWN:
        log(f"... and {shown_errors - MAX_ERRORS_SHOWN} more skipped records (all counted in _SUCCESS.json)")
    if len(summary["files"]) <= MAX_FILES_LISTED:
        for f in summary["files"]:
            blank = f", {f['blank_lines']} blank lines" if f["blank_lines"] else ""
            log(f"  {f['input']}: {_n(f['records_in'], 'record')} in = {f['records_out']:,} out "
                f"+ {f['skipped']:,} skipped{blank} ({_n(f['partitions'], 'partition')})")
    resumed = f", {totals['partitions_resumed']} resumed" if totals["partitions_resumed"] else ""
    log(f"{_n(totals['records_in'], 'record')} in = {totals['records_out']:,} annotated + "
        f"{totals['skipped']:,} skipped; {_n(totals['files'], 'file')}, "
        f"{_n(totals['partitions'], 'partition')}{resumed} in {summary['output']}")
    if not run["partitions"]:
        log("this run: nothing left to annotate")
        return
    rate = run["words_per_second"]
    log(f"this run: {_n(run['records'], 'record')}, {_n(run['words'], 'word')} in {run['seconds']:.1f} s"
        f" = {rate or 0:,.0f} words/s (+{run['startup_seconds']:.1f} s startup)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2): argparse already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    from ..batch.readers import AnnotateError

    try:
        annotate(args)
        return 0
    except (CLIError, AnnotateError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except ImportError as err:
        print(f"{PROG}: error: {err.name or err} is not installed: pip install "
              f"'spacy-twitter-ner[dask]' (or run in-process with --workers 0)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

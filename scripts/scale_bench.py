"""How ``spacy-twitter-ner annotate`` scales with Dask workers on this machine.

    python scripts/scale_bench.py MODEL --inputs assets/raw_tweets/tweets.txt \\
        assets/raw_tweets/tweeteval.txt --workers 1 2 --out metrics/scale.json [--limit N]

For each worker count: a fresh LocalCluster (single-threaded worker processes, one torch thread
each), the pipeline loaded by the worker plugin (timed in each worker), the same inputs annotated
into a fresh output directory with the same partitioning, then the workers' peak memory read
with ``client.run``. Reports words/s, tweets/s, scaling efficiency against 1 worker (the
smallest count when 1 is not run), model load time, peak RSS per worker, whether every run wrote
the same annotations, machine info, and an estimate for 100M tweets (mean words per tweet as
measured here; throughput linear in workers at the least efficiency measured). Run it alone:
other work on the machine skews it (the load average before and after is recorded).
"""
import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

TWEETS_TARGET = 100_000_000
PROJECTED_WORKERS = (1, 2, 4, 8, 16, 32, 64)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="pipeline directory or installed package name")
    p.add_argument("--inputs", nargs="+", required=True, help="tweet files (any format annotate reads)")
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="worker counts to time (default 1 2)")
    p.add_argument("--out", default="metrics/scale.json", help="JSON report (default metrics/scale.json)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N tweets (split evenly over the inputs; plain-text or JSONL inputs)")
    p.add_argument("--partition-size", type=int, default=None,
                   help="lines per partition (default: about 8 partitions per worker of the largest count)")
    p.add_argument("--batch-size", type=int, default=64, help="nlp.pipe batch size (default 64)")
    p.add_argument("--workdir", default=None, help="where outputs go (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    if any(n < 1 for n in args.workers):
        p.error("--workers: counts must be >= 1")
    return args


def machine_info() -> Dict:
    import psutil

    info = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for name in ("spacy", "torch", "dask", "distributed"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def limited_inputs(inputs: List[str], limit: int, folder: Path) -> List[str]:
    """The first ``limit`` lines, split evenly over ``inputs``, copied to ``folder``."""
    from spacy_twitter_ner.batch.readers import open_binary

    folder.mkdir(parents=True, exist_ok=True)
    share = math.ceil(limit / len(inputs))
    out = []
    for path in inputs:
        name = os.path.basename(path)
        name = name[:-3] if name.endswith(".gz") else name
        target = folder / name
        with open_binary(path) as src, open(target, "wb") as dst:
            for i, line in enumerate(src):
                if i >= share:
                    break
                dst.write(line)
        out.append(str(target))
    return out


def output_digest(outdir: str) -> str:
    """A hash of every output partition's bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(outdir)):
        if name.startswith((".", "_")):
            continue
        h.update(name.encode())
        with open(os.path.join(outdir, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def partitions_per_worker(outdir: str) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    parts = os.path.join(outdir, "_parts")
    for name in os.listdir(parts):
        with open(os.path.join(parts, name)) as f:
            pid = str(json.load(f)["result"]["pid"])
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def run_one(n: int, args, inputs: List[str], partition_size: int, outdir: str) -> Dict:
    from distributed import Client

    from spacy_twitter_ner.batch import dask_runner
    from spacy_twitter_ner.cli import annotate as cli

    shutil.rmtree(outdir, ignore_errors=True)
    t0 = time.perf_counter()
    cluster = dask_runner.local_cluster(n)
    client = Client(cluster)
    try:
        t_cluster = time.perf_counter() - t0
        t1 = time.perf_counter()
        loaded = dask_runner.load_on_workers(client, args.model, wait_for_workers=n)
        t_load_wall = time.perf_counter() - t1
        cli_args = cli.build_parser().parse_args(
            [args.model, *inputs, "-o", outdir, "--partition-size", str(partition_size),
             "--batch-size", str(args.batch_size), "-q"])
        summary = cli.annotate(cli_args, client=client, log=lambda *a: None)
        after = dask_runner.workers_info(client)
    finally:
        dask_runner.close(client, cluster)
    run = summary["this_run"]
    load_s = [max(i["load_seconds"].values()) for i in loaded.values() if i["load_seconds"]]
    peaks = [i["peak_rss"] for i in after.values()]
    return {
        "workers": n,
        "records": run["records"],
        "words": run["words"],
        "seconds": run["seconds"],
        "words_per_second": round(run["words"] / run["seconds"], 1),
        "tweets_per_second": round(run["records"] / run["seconds"], 1),
        "cluster_start_seconds": round(t_cluster, 2),
        "model_load_seconds_per_worker": [round(s, 2) for s in load_s],
        "model_load_wall_seconds": round(t_load_wall, 2),
        "peak_rss_mb_per_worker": [round(p / 2**20) for p in peaks],
        "rss_after_load_mb_per_worker": [round(i["rss"] / 2**20) for i in loaded.values() if i.get("rss")],
        "torch_threads_per_worker": sorted({i["torch_threads"] for i in after.values()}),
        "partitions": summary["totals"]["partitions"],
        "partitions_per_worker": sorted(partitions_per_worker(outdir).values(), reverse=True),
        "output_sha256": output_digest(outdir),
    }


def estimate(runs: List[Dict], words_per_tweet: float) -> Dict:
    """Hours for TWEETS_TARGET tweets on N workers: the 1-worker rate (or the smallest run's
    rate per worker), times N, times the least scaling efficiency measured."""
    base = min(runs, key=lambda r: r["workers"])
    per_worker = base["words_per_second"] / base["workers"]
    efficiency = min(r["efficiency"] for r in runs)
    words = TWEETS_TARGET * words_per_tweet
    peak = max(max(r["peak_rss_mb_per_worker"]) for r in runs)
    hours = {}
    for n in sorted(set(PROJECTED_WORKERS) | {r["workers"] for r in runs}):
        eff = 1.0 if n == 1 else efficiency
        hours[str(n)] = round(words / (per_worker * n * eff) / 3600, 2)
    return {
        "tweets": TWEETS_TARGET,
        "mean_words_per_tweet": round(words_per_tweet, 2),
        "words": round(words),
        "words_per_second_per_worker": round(per_worker, 1),
        "efficiency_assumed": round(efficiency, 3),
        "hours_by_workers": hours,
        "memory_gb_by_workers": {k: round(int(k) * peak / 1024, 1) for k in hours},
        "assumptions": (
            f"mean words per tweet as measured on these inputs ({words_per_tweet:.2f}); one worker "
            f"process per core at {per_worker:,.0f} words/s (measured with {base['workers']} worker(s)); "
            f"throughput linear in workers at the least efficiency measured ({efficiency:.2f}) for "
            f"more than one worker; same CPU as this machine; input reading and output writing on "
            f"a filesystem that keeps up; cluster start and model load (seconds) not included; "
            f"memory: peak RSS per worker ({peak} MB) times workers"
        ),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    from spacy_twitter_ner.cli import annotate as cli

    for path in args.inputs:
        if not os.path.exists(path):
            print(f"scale_bench: input {path} does not exist", file=sys.stderr)
            return 1
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        inputs = list(args.inputs)
        if args.limit:
            inputs = limited_inputs(inputs, args.limit, workdir / "inputs")
        _, parts = cli.plan(inputs, "auto", 10**12, "text")
        n_records = sum(p.count for p in parts)
        counts = sorted(set(args.workers))
        partition_size = args.partition_size or max(200, min(50_000, math.ceil(n_records / (max(counts) * 8))))
        load_before = os.getloadavg()
        runs = []
        for n in counts:
            print(f"scale_bench: {n} worker(s), {n_records:,} tweets, partitions of {partition_size:,} ...",
                  file=sys.stderr, flush=True)
            runs.append(run_one(n, args, inputs, partition_size, str(workdir / f"out-{n}")))
            r = runs[-1]
            print(f"scale_bench: {n} worker(s): {r['words_per_second']:,.0f} words/s, "
                  f"{r['tweets_per_second']:,.0f} tweets/s, {r['seconds']:.1f} s", file=sys.stderr, flush=True)
        base = runs[0]
        for r in runs:
            r["speedup"] = round(r["words_per_second"] / base["words_per_second"], 3)
            r["efficiency"] = round(r["speedup"] * base["workers"] / r["workers"], 3)
        words_per_tweet = base["words"] / max(base["records"], 1)
        report = {
            "model": args.model,
            "inputs": list(args.inputs),
            "limit": args.limit,
            "tweets": n_records,
            "partition_size": partition_size,
            "batch_size": args.batch_size,
            "machine": machine_info(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "runs": runs,
            "outputs_identical": len({r["output_sha256"] for r in runs}) == 1,
            "estimate_100m_tweets": estimate(runs, words_per_tweet),
            "efficiency_baseline": f"{base['workers']} worker(s)",
        }
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(report)
    print(f"wrote {args.out}")
    return 0


def print_table(report: Dict) -> None:
    m = report["machine"]
    print(f"{report['tweets']:,} tweets, partitions of {report['partition_size']:,}; "
          f"{m['cpus_usable']} usable cores ({m['cpu_model']}), load average before "
          f"{report['load_average_before'][0]}")
    print(f"{'workers':>7} {'words/s':>10} {'tweets/s':>9} {'speedup':>8} {'effic.':>7} "
          f"{'load s':>7} {'peak MB':>8}")
    for r in report["runs"]:
        load = max(r["model_load_seconds_per_worker"] or [0])
        print(f"{r['workers']:>7} {r['words_per_second']:>10,.0f} {r['tweets_per_second']:>9,.0f} "
              f"{r['speedup']:>8.2f} {r['efficiency']:>7.2f} {load:>7.2f} "
              f"{max(r['peak_rss_mb_per_worker']):>8}")
    print(f"outputs identical across worker counts: {report['outputs_identical']}")
    e = report["estimate_100m_tweets"]
    hours = ", ".join(f"{n} workers {h:,.1f} h" for n, h in e["hours_by_workers"].items())
    print(f"100M tweets ({e['mean_words_per_tweet']} words each): {hours}")


if __name__ == "__main__":
    sys.exit(main())

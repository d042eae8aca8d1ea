"""Load test of ``spacy-twitter-ner serve``: start the server on 127.0.0.1 (a free port, in a
subprocess), let N client threads post batches of real tweets for a bounded time, and check every
answer against the same batch run through the model sequentially in this process.

    python scripts/serve_bench.py MODEL --clients 32 --seconds 60 \\
        --texts assets/raw_tweets/tweets.txt --out metrics/serve.json

Writes (and prints) requests/s, texts/s, words/s (spaCy tokens, as the benchmark counts them),
latency percentiles, errors and mismatches. ``mismatches`` counts answers that differ in any way
(scores bit for bit) from ``nlp.pipe`` on the same batch, run sequentially: it must be 0, like
``errors``; the exit code is 1 otherwise. ``entity_mismatches_vs_single`` compares entities
(text, label, offsets; not scores, whose last bits depend on the batch's padding) with ``nlp()``
on each text alone.
"""
import argparse
import json
import os
import platform
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

HOST = "127.0.0.1"  # loopback only
MAX_CLIENTS = 256
MAX_SECONDS = 3600
MAX_POOL = 20000
STARTUP_TIMEOUT = 300


def positive(kind, upper):
    def parse(value):
        n = kind(value)
        if not 0 < n <= upper:
            raise argparse.ArgumentTypeError(f"expected a number in (0, {upper}], got {value}")
        return n
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="pipeline directory (what `spacy-twitter-ner serve` loads)")
    p.add_argument("--texts", required=True, help="UTF-8 file, one tweet per line")
    p.add_argument("--out", default="metrics/serve.json", help="metrics JSON (default metrics/serve.json)")
    p.add_argument("--clients", type=positive(int, MAX_CLIENTS), default=32,
                   help="concurrent client threads (default 32)")
    p.add_argument("--seconds", type=positive(float, MAX_SECONDS), default=60.0,
                   help="how long the clients post (default 60)")
    p.add_argument("--batch", type=positive(int, 1000), default=8,
                   help="tweets per request (default 8; at most 1000, the server's --max-texts)")
    p.add_argument("--pool", type=positive(int, MAX_POOL), default=2000,
                   help="distinct tweets used, the file's first non-empty lines (default 2000)")
    p.add_argument("--max-requests", type=positive(int, 10**7), default=1_000_000,
                   help="stop after this many requests in all (default 1,000,000)")
    p.add_argument("--threads", type=positive(int, 256), default=4, help="server --threads (default 4)")
    p.add_argument("--workers", type=positive(int, 64), default=1, help="server --workers (default 1)")
    p.add_argument("--timeout", type=positive(float, 600), default=60.0,
                   help="per-request timeout in seconds (default 60)")
    return p


# -- the texts and what the answers must be -----------------------------------------------------


def read_pool(path: str, n: int, max_chars: int) -> List[str]:
    pool = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.rstrip("\n").rstrip("\r")
            if text.strip() and len(text) <= max_chars:
                pool.append(text)
                if len(pool) == n:
                    break
    return pool


def reference(model: str, batches: List[List[str]]):
    """Per batch: the JSON the server must return (``nlp.pipe`` on the batch, sequentially), its
    token count, and the entities of each text run alone through ``nlp()``."""
    import spacy
    import torch

    from spacy_twitter_ner.cli.serve import DEFAULT_BATCH_SIZE
    from spacy_twitter_ner.cli.tag import doc_to_json

    torch.set_num_threads(1)  # as the server runs it (--torch-threads 1)
    nlp = spacy.load(model)
    expected, words, single = [], [], {}
    for batch in batches:
        docs = list(nlp.pipe(batch, batch_size=DEFAULT_BATCH_SIZE))
        expected.append([doc_to_json(t, d) for t, d in zip(batch, docs)])
        words.append(sum(len(d) for d in docs))
        for text in batch:
            if text not in single:
                single[text] = entity_keys(doc_to_json(text, nlp(text)))
    return expected, words, single


def entity_keys(result: Dict) -> List:
    return [(e["text"], e["label"], e["start"], e["end"]) for e in result["entities"]]


# -- the server ---------------------------------------------------------------------------------


class Server:
    def __init__(self, model: str, threads: int, workers: int):
        cmd = [sys.executable, "-m", "spacy_twitter_ner", "serve", model, "--host", HOST, "--port", "0",
               "--threads", str(threads), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.log: List[str] = []
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()
        self.url: Optional[str] = None

    def wait(self) -> str:
        """The server's URL once /health answers (it loads the model meanwhile)."""
        if self.url is None:
            self.url = self._wait()
        return self.url

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            self.lines.put(line)

    def _wait(self) -> str:
        import httpx

        deadline = time.monotonic() + STARTUP_TIMEOUT
        url = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            if url is None:
                try:
                    found = re.search(r"serving .* on (http://127\.0\.0\.1:\d+)", self.lines.get(timeout=0.5))
                except queue.Empty:
                    continue
                url = found.group(1) if found else None
                continue
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("serve_bench: the server did not start:\n" + "\n".join(self.log[-20:]))

    def stop(self) -> Optional[int]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


# -- the clients --------------------------------------------------------------------------------


def run_clients(url: str, batches, expected, single, clients: int, seconds: float, max_requests: int,
                timeout: float):
    import httpx

    lock = threading.Lock()
    state = {"sent": 0}
    records = []  # (client, batch index, latency s, status, ok, entity mismatches vs single)
    error_samples: List[str] = []
    start_gate = threading.Barrier(clients + 1)

    def take() -> bool:
        with lock:
            if state["sent"] >= max_requests:
                return False
            state["sent"] += 1
            return True

    def client(k: int):
        rnd = random.Random(k)
        mine = []
        with httpx.Client(base_url=url, timeout=timeout) as http:
            start_gate.wait()
            deadline = state["deadline"]
            while time.monotonic() < deadline and take():
                i = rnd.randrange(len(batches))
                t0 = time.perf_counter()
                try:
                    r = http.post("/ner", json={"texts": batches[i]})
                    latency = time.perf_counter() - t0
                    status = r.status_code
                    body = r.json() if status == 200 else None
                except (httpx.HTTPError, ValueError) as err:
                    latency, status, body = time.perf_counter() - t0, None, None
                    with lock:
                        if len(error_samples) < 5:
                            error_samples.append(f"{type(err).__name__}: {err}")
                if status != 200:
                    if status is not None:
                        with lock:
                            if len(error_samples) < 5:
                                error_samples.append(f"HTTP {status}: {r.text[:200]}")
                    mine.append((k, i, latency, status, False, 0))
                    continue
                results = body.get("results")
                same = results == expected[i]
                ent_diff = 0
                if isinstance(results, list) and len(results) == len(batches[i]):
                    ent_diff = sum(entity_keys(res) != single[t] for res, t in zip(results, batches[i]))
                mine.append((k, i, latency, status, same, ent_diff))
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    state["deadline"] = time.monotonic() + seconds
    t0 = time.perf_counter()
    start_gate.wait()
    for t in threads:
        t.join(timeout=seconds + timeout + 30)
    elapsed = time.perf_counter() - t0
    hung = sum(t.is_alive() for t in threads)
    return records, elapsed, error_samples, hung


def percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from spacy_twitter_ner.cli.serve import DEFAULT_MAX_CHARS

    if not Path(args.model, "config.cfg").exists():
        print(f"serve_bench: {args.model} is not a pipeline directory (no config.cfg)", file=sys.stderr)
        return 1
    if not Path(args.texts).is_file():
        print(f"serve_bench: no texts file {args.texts}", file=sys.stderr)
        return 1
    pool = read_pool(args.texts, args.pool, DEFAULT_MAX_CHARS)
    if not pool:
        print(f"serve_bench: no usable lines in {args.texts}", file=sys.stderr)
        return 1
    batches = [pool[i:i + args.batch] for i in range(0, len(pool), args.batch)]
    print(f"serve_bench: {len(pool)} tweets in {len(batches)} batches of {args.batch}; starting the server "
          "and computing the sequential reference ...", file=sys.stderr, flush=True)
    server = Server(args.model, args.threads, args.workers)  # loads its model while we compute
    try:
        t0 = time.perf_counter()
        expected, words, single = reference(args.model, batches)
        reference_seconds = time.perf_counter() - t0
        server.wait()
        import httpx

        httpx.post(f"{server.url}/ner", json={"texts": batches[0]}, timeout=args.timeout)  # warm-up
        print(f"serve_bench: server at {server.url}; {args.clients} clients for {args.seconds:g} s ...",
              file=sys.stderr, flush=True)
        records, elapsed, error_samples, hung = run_clients(
            server.url, batches, expected, single, args.clients, args.seconds, args.max_requests, args.timeout)
    finally:
        server_rc = server.stop()

    ok = [r for r in records if r[3] == 200]
    latencies = [r[2] * 1000 for r in ok]
    n_texts = sum(len(batches[r[1]]) for r in ok)
    n_words = sum(words[r[1]] for r in ok)
    errors = len(records) - len(ok)
    mismatches = sum(1 for r in ok if not r[4])
    metrics = {
        "model": str(args.model),
        "clients": args.clients,
        "seconds": round(elapsed, 3),
        "batch": args.batch,
        "server": {"threads": args.threads, "workers": args.workers, "exit_code": server_rc},
        "requests": len(records),
        "requests_per_s": len(records) / elapsed if elapsed else 0.0,
        "texts_per_s": n_texts / elapsed if elapsed else 0.0,
        "words_per_s": n_words / elapsed if elapsed else 0.0,
        "latency_ms": {
            "p50": percentile(latencies, 0.50), "p90": percentile(latencies, 0.90),
            "p99": percentile(latencies, 0.99), "max": max(latencies, default=None),
            "mean": statistics.fmean(latencies) if latencies else None,
        },
        "errors": errors,
        "error_samples": error_samples,
        "mismatches": mismatches,
        "entity_mismatches_vs_single": sum(r[5] for r in ok),
        "hung_clients": hung,
        "pool": {"texts": len(pool), "batches": len(batches), "file": str(args.texts)},
        "reference_seconds": round(reference_seconds, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    lat = metrics["latency_ms"]
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(
        f"serve_bench: {len(records)} requests in {elapsed:.1f} s: {metrics['requests_per_s']:.1f} req/s, "
        f"{metrics['texts_per_s']:.0f} tweets/s, {metrics['words_per_s']:.0f} words/s; latency p50 "
        f"{fmt(lat['p50'])} ms, p99 {fmt(lat['p99'])} ms; errors {errors}, mismatches {mismatches}, "
        f"entity mismatches vs nlp() alone {metrics['entity_mismatches_vs_single']}; wrote {out}",
        file=sys.stderr,
    )
    return 0 if errors == 0 and mismatches == 0 and hung == 0 and records else 1


if __name__ == "__main__":
    sys.exit(main())

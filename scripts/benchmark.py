#!/usr/bin/env python
"""Benchmark the NER systems side by side, in one run, on the same machine and data.

    python scripts/benchmark.py --corpus wnut16-course --corpus-dir corpus/wnut16-course \\
        --raw assets/raw_tweets/tweets.txt --out metrics \\
        [--systems twitter_bilstm_ner:fast twitter_bilstm_ner:accurate spacy_ner crf] \\
        [--quick] [--seed 0] [--gpu-id -1]

Systems (all trained on ``<corpus-dir>/train.spacy``, model picked on ``dev.spacy``):

* ``twitter_bilstm_ner:<cfg>``: ``spacy train configs/<cfg>.cfg`` (skipped with a note when the
  config does not exist); the model is ``model-best`` (best dev ``ents_f``).
* ``spacy_ner``: spaCy's built-in ``ner`` from ``spacy init config -l en -p ner -o efficiency``
  (the CPU config), with ``gold_preproc = true`` for both corpora and the Twitter tokenizer in
  place of spaCy's, so that it sees the same tokens and its raw-text speed includes the same
  tokenizer; ``model-best``.
* ``crf``: the sklearn-crfsuite CRF of ``spacy_twitter_ner.crf_baseline`` (``c1``/``c2`` picked on
  dev from a small grid; only the defaults in ``--quick``), saved as a spaCy pipeline
  (Twitter tokenizer + ``twitter_crf_ner``) in ``model-best``.

Measured per system:

* ``dev_p/r/f``, ``test_p/r/f``: spaCy's NER scorer (``ents_p/r/f``) through ``nlp.evaluate`` on
  examples built as ``spacy.training.Corpus(gold_preproc=True)`` builds them, i.e. what
  ``spacy evaluate --gold-preproc`` computes. **0-1 floats in the JSON, percentages in the
  Markdown table.**
* ``train_seconds``: wall time of the whole training (for spaCy: the ``spacy train`` process,
  including its dev evaluations; for the CRF: the whole c1/c2 selection).
* ``words_per_second``: raw tweets (the lines of ``--raw``) through ``nlp.pipe(texts,
  batch_size=B)`` (the tokenizer included; "words" = tokens produced by the Twitter tokenizer,
  the same for every system), in a fresh subprocess per system, systems one after another,
  after one excluded warm-up batch; median of ``--runs`` runs; measured at several corpus
  sizes (``words_per_second_at``, keyed by the number of tweets) and reported at the largest.
* ``load_rss_mb`` (after ``spacy.load``) and ``peak_rss_mb`` (after loading + predicting):
  ``ru_maxrss`` of that subprocess, in MiB. ``model_mb``: size of the model directory, MiB.
* ``speed_ratio``: words/s over ``spacy_ner``'s words/s in this same run (null without it).

Writes ``<out>/benchmark-<corpus>[-quick].json`` (systems + ``"_meta"``) and ``.md`` (a table);
models go to ``<training-dir>/benchmark-<corpus>[-quick]/<system>/model-best`` (``:`` in a
system name becomes ``-`` in its directory name).

``--quick``: trains on the first 300 train / 100 dev tweets (scores on those 100 dev and the
first 300 test tweets), 2 epochs (``--max-steps`` caps it further), CRF ``max_iterations=20``,
speed on 200 and 1000 tweets, one run: a smoke test, not numbers to report.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional

import srsly
from wasabi import msg

TOKENIZER_NAME = "spacy_twitter_ner.TwitterTokenizer.v1"
BILSTM = "twitter_bilstm_ner"
SPACY_NER = "spacy_ner"
CRF = "crf"
DEFAULT_SYSTEMS = [f"{BILSTM}:fast", f"{BILSTM}:accurate", SPACY_NER, CRF]
SPEED_SIZES = [1000, 10000, 0]  # 0 = all tweets
QUICK_SPEED_SIZES = [200, 1000]
QUICK_LIMITS = {"train": 300, "dev": 100, "test": 300}
QUICK_EPOCHS = 2
QUICK_EVAL_FREQUENCY = 10
QUICK_CRF_ITERATIONS = 20
# c1/c2 grid for the CRF's model selection on dev (full mode); quick mode uses the defaults only.
CRF_GRID = [(c1, c2) for c1 in (0.05, 0.1, 0.25) for c2 in (0.01, 0.1)]
MIB = 1024 * 1024


# ------------------------------------------------------------------------------------------
# Worker (runs in a fresh subprocess: evaluation, or speed + memory)
# ------------------------------------------------------------------------------------------


def _load_nlp(model: str, gpu_id: int, threads: Optional[int]):
    import spacy
    import torch

    import spacy_twitter_ner.crf_baseline  # noqa: F401  (registers "twitter_crf_ner")

    if threads:
        torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    return spacy.load(model), torch.get_num_threads()


def _maxrss_mib() -> float:
    import resource

    # Linux reports kilobytes (macOS bytes; this script targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_eval(spec: Dict) -> Dict:
    from spacy.training import Corpus

    nlp, _ = _load_nlp(spec["model"], spec["gpu_id"], spec.get("threads"))
    out = {}
    for split, (path, limit) in spec["splits"].items():
        examples = list(Corpus(path, gold_preproc=True, limit=limit or 0)(nlp))
        scores = nlp.evaluate(examples, batch_size=spec["batch_size"])
        out[split] = {
            "p": scores.get("ents_p"),
            "r": scores.get("ents_r"),
            "f": scores.get("ents_f"),
            "per_type": scores.get("ents_per_type"),
            "docs": len(examples),
        }
    return out


def worker_speed(spec: Dict) -> Dict:
    t0 = time.perf_counter()
    nlp, threads = _load_nlp(spec["model"], spec["gpu_id"], spec.get("threads"))
    load_seconds = time.perf_counter() - t0
    load_rss = _maxrss_mib()
    texts = read_raw(Path(spec["raw"]))
    batch_size = spec["batch_size"]
    # Warm-up (excluded from timing): one batch through the whole pipeline.
    for _ in nlp.pipe(texts[:batch_size], batch_size=batch_size):
        pass
    sizes = resolve_sizes(spec["sizes"], len(texts))
    wps_at, words_at, seconds_at = {}, {}, {}
    for size in sizes:
        subset = texts[:size]
        rates, times = [], []
        n_words = 0
        for _ in range(spec["runs"]):
            n_words = 0
            start = time.perf_counter()
            for doc in nlp.pipe(subset, batch_size=batch_size):
                n_words += len(doc)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            rates.append(n_words / elapsed if elapsed > 0 else 0.0)
        wps_at[str(size)] = statistics.median(rates)
        words_at[str(size)] = n_words
        seconds_at[str(size)] = statistics.median(times)
    return {
        "words_per_second": wps_at[str(sizes[-1])],
        "words_per_second_at": wps_at,
        "words_at": words_at,
        "seconds_at": seconds_at,
        "load_seconds": load_seconds,
        "load_rss_mb": load_rss,
        "peak_rss_mb": _maxrss_mib(),
        "threads": threads,
    }


def worker_main(argv: List[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf8"))
    result = worker_eval(spec) if spec["mode"] == "eval" else worker_speed(spec)
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf8")
    return 0


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def read_raw(path: Path) -> List[str]:
    """Raw tweets, one per non-blank line (trailing newline removed)."""
    with path.open(encoding="utf8") as fh:
        return [line.rstrip("\r\n") for line in fh if line.strip()]


def resolve_sizes(sizes: List[int], n: int) -> List[int]:
    """Tweet counts to time: 0 means all; capped at ``n``; deduplicated, ascending."""
    return sorted({n if s <= 0 else min(s, n) for s in sizes})


def dir_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / MIB


def system_dirname(system: str) -> str:
    return system.replace(":", "-").replace("/", "-")


def child_env(threads: Optional[int]) -> Dict[str, str]:
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    return env


def run_logged(cmd: List[str], log: Path, env: Dict[str, str], label: str) -> float:
    """Run ``cmd`` with output to ``log``; return its wall time; raise with the log tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w", encoding="utf8") as fh:
        fh.write(" ".join(cmd) + "\n\n")
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf8", errors="replace").splitlines()[-25:])
        raise RuntimeError(f"{label} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return elapsed


def run_worker(spec: Dict, workdir: Path, env: Dict[str, str], label: str) -> Dict:
    workdir.mkdir(parents=True, exist_ok=True)
    spec_file = workdir / f"{spec['mode']}-spec.json"
    spec["result"] = str(workdir / f"{spec['mode']}-result.json")
    spec_file.write_text(json.dumps(spec), encoding="utf8")
    cmd = [sys.executable, str(Path(__file__).resolve()), "_worker", str(spec_file)]
    run_logged(cmd, workdir / f"{spec['mode']}.log", env, label)
    return json.loads(Path(spec["result"]).read_text(encoding="utf8"))


def subset_docbin(src: Path, dest: Path, limit: int) -> int:
    """Write the first ``limit`` docs of ``src`` to ``dest``; return how many."""
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    docs = list(DocBin().from_disk(src).get_docs(Vocab()))[:limit]
    dest.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=False).to_disk(dest)
    return len(docs)


def count_docs(path: Path) -> int:
    from spacy.tokens import DocBin

    return len(DocBin().from_disk(path))


def machine_info() -> Dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": ram_gib, "platform": platform.platform()}


def _version(pkg: str) -> Optional[str]:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


def spacy_train(config: Path, out_dir: Path, data: Dict[str, Path], args, env, label: str) -> float:
    cmd = [
        sys.executable, "-m", "spacy", "train", str(config), "--output", str(out_dir),
        "--paths.train", str(data["train"]), "--paths.dev", str(data["dev"]),
        "--system.seed", str(args.seed), "--gpu-id", str(args.gpu_id),
    ]
    if "twitter_bilstm_ner" in label:
        # the fast profile's static vectors and the gazetteer lists (ignored by configs without them)
        vectors = args.vectors or Path("assets") / "vectors" / f"{args.corpus}-minilm-256"
        cmd += ["--paths.vectors", str(vectors), "--paths.lexicons", str(args.lexicons)]
    if args.quick:
        cmd += ["--training.max_epochs", str(QUICK_EPOCHS)]
    if args.quick or args.eval_frequency:
        cmd += ["--training.eval_frequency", str(args.eval_frequency or QUICK_EVAL_FREQUENCY)]
    if args.max_steps:
        cmd += ["--training.max_steps", str(args.max_steps)]
    return run_logged(cmd, out_dir / "train.log", env, label)


def make_spacy_ner_config(dest: Path, env) -> Path:
    """spaCy's CPU efficiency NER config, with gold_preproc corpora and the Twitter tokenizer."""
    from spacy.util import load_config

    generated = dest.with_name("init.cfg")
    run_logged(
        [sys.executable, "-m", "spacy", "init", "config", str(generated), "-l", "en", "-p", "ner",
         "-o", "efficiency", "--force"],
        dest.parent / "init.log", env, "spacy init config",
    )
    cfg = load_config(generated, interpolate=False)
    cfg["nlp"]["tokenizer"] = {"@tokenizers": TOKENIZER_NAME}
    cfg["corpora"]["train"]["gold_preproc"] = True
    cfg["corpora"]["dev"]["gold_preproc"] = True
    cfg.to_disk(dest)
    return dest


def train_crf_system(out_dir: Path, data: Dict[str, Path], args) -> Dict:
    """Fit the CRF (c1/c2 picked on dev), save it as a spaCy pipeline in ``out_dir/model-best``."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from spacy_twitter_ner.crf_baseline import DEFAULT_HPARAMS, evaluate_docs, train_crf

    vocab = Vocab()
    train_docs = list(DocBin().from_disk(data["train"]).get_docs(vocab))
    dev_docs = list(DocBin().from_disk(data["dev"]).get_docs(vocab))
    grid = [(DEFAULT_HPARAMS["c1"], DEFAULT_HPARAMS["c2"])] if args.quick else CRF_GRID
    max_iter = QUICK_CRF_ITERATIONS if args.quick else DEFAULT_HPARAMS["max_iterations"]
    best = None
    tried = []
    for c1, c2 in grid:
        crf = train_crf(train_docs, c1=c1, c2=c2, max_iterations=max_iter)
        f = evaluate_docs(crf, dev_docs)["ents_f"]
        tried.append({"c1": c1, "c2": c2, "dev_f": f})
        msg.text(f"  crf c1={c1} c2={c2}: dev F1 {100 * f:.2f}")
        if best is None or f > best[0]:
            best = (f, c1, c2, crf)
    _, c1, c2, crf = best
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": TOKENIZER_NAME}}})
    ner = nlp.add_pipe("twitter_crf_ner", config={"c1": c1, "c2": c2, "max_iterations": max_iter})
    ner.set_crf(crf)
    model = out_dir / "model-best"
    nlp.to_disk(model)
    return {"hparams": {"c1": c1, "c2": c2, "max_iterations": max_iter}, "grid": tried}


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def _fmt_seconds(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(results: Dict, meta: Dict) -> str:
    m = meta["machine"]
    lines = [
        f"# Benchmark: {meta['corpus']}{' (quick: smoke test, not comparable numbers)' if meta['quick'] else ''}",
        "",
        f"{meta['date']} · {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM · Python {meta['python']}, "
        f"spaCy {meta['spacy']}, torch {meta['torch']} · {meta['threads_note']} · seed {meta['seed']} · "
        f"speed: {meta['n_tweets']} raw tweets, nlp.pipe batch_size={meta['batch_size']}, "
        f"median of {meta['runs']} run(s)",
        "",
        "| System | Dev F1 | Test F1 | Words/s | Speed vs spacy ner | Train time | Peak RSS | Model size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        ratio = "-" if r.get("speed_ratio") is None else f"{r['speed_ratio']:.2f}x"
        wps = "-" if r.get("words_per_second") is None else f"{r['words_per_second']:,.0f}"
        rss = "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f} MiB"
        size = "-" if r.get("model_mb") is None else f"{r['model_mb']:.{1 if r['model_mb'] >= 1 else 2}f} MiB"
        lines.append(
            f"| {name} | {_pct(r.get('dev_f'))} | {_pct(r.get('test_f'))} | {wps} | {ratio} | "
            f"{_fmt_seconds(r.get('train_seconds'))} | {rss} | {size} |"
        )
    lines += [
        "",
        f"F1: spaCy's ents_f in % (gold tokenisation; dev {meta['docs']['dev']} and test "
        f"{meta['docs']['test']} tweets; trained on {meta['docs']['train']}). Words/s: raw text through "
        "nlp.pipe, Twitter tokenizer included, at the largest size; peak RSS: ru_maxrss of a fresh "
        "process after loading and predicting.",
    ]
    if meta.get("skipped"):
        lines.append("")
        lines += [f"Skipped: {k}: {v}" for k, v in meta["skipped"].items()]
    if meta.get("errors"):
        lines.append("")
        lines += [f"Failed: {k}: {v.splitlines()[0]}" for k, v in meta["errors"].items()]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus name (used in output names)")
    p.add_argument("--corpus-dir", type=Path, default=None, help="folder with train/dev/test.spacy (default corpus/<corpus>)")
    p.add_argument("--raw", type=Path, default=Path("assets/raw_tweets/tweets.txt"), help="raw tweets, one per line")
    p.add_argument("--out", type=Path, default=Path("metrics"), help="folder for benchmark-<corpus>.json/.md")
    p.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS,
                   help=f"systems to run: {BILSTM}:<config name>, {SPACY_NER}, {CRF}")
    p.add_argument("--configs-dir", type=Path, default=Path("configs"), help="where <cfg>.cfg files live")
    p.add_argument("--training-dir", type=Path, default=Path("training"), help="models go to <dir>/benchmark-<corpus>[-quick]/")
    p.add_argument("--quick", type=int, nargs="?", const=1, default=0,
                   help="1 (or the bare flag): small subsets, 2 epochs, speed on 200/1000 tweets")
    p.add_argument("--vectors", type=Path, default=None,
                   help="static vectors for configs that use them (the project's assets/vectors/<corpus>-minilm-256)")
    p.add_argument("--reuse", nargs="*", default=[], metavar="SYSTEM=DIR",
                   help="score and time the model the project already trained, when DIR/model-best exists (train "
                        "time from DIR/train_log.jsonl), instead of training it again; else it is trained here")
    p.add_argument("--speed-cap", nargs="*", default=[], metavar="SYSTEM=N",
                   help="time SYSTEM on at most N tweets, once (for a slow profile)")
    p.add_argument("--lexicons", type=Path, default=Path("assets/lexicons"), help="gazetteer list folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-id", type=int, default=-1, help="for spacy train and the spaCy workers (the CRF is CPU only)")
    p.add_argument("--batch-size", type=int, default=256, help="nlp.pipe / nlp.evaluate batch size")
    p.add_argument("--runs", type=int, default=None, help="speed runs per size, median reported (default 3, quick 1)")
    p.add_argument("--speed-sizes", type=int, nargs="+", default=None,
                   help="numbers of tweets to time (0 = all; default 1000 10000 0, quick 200 1000)")
    p.add_argument("--max-steps", type=int, default=0, help="cap spaCy training steps (0 = config's value)")
    p.add_argument("--eval-frequency", type=int, default=0, help="spaCy dev evaluation every N steps (quick default 10)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch/OpenMP threads in the subprocesses (default: the machine's default)")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    corpus_dir = args.corpus_dir or Path("corpus") / args.corpus
    splits = {s: corpus_dir / f"{s}.spacy" for s in ("train", "dev", "test")}
    missing = [str(p) for p in splits.values() if not p.is_file()]
    if missing:
        msg.fail(f"Corpus files not found: {', '.join(missing)}",
                 f"Convert the corpus first: python -m spacy_twitter_ner.conll assets/{args.corpus} {corpus_dir}")
        return 1
    if not args.raw.is_file():
        msg.fail(f"Raw tweets file not found: {args.raw}", "Pass --raw FILE (one tweet per line).")
        return 1
    n_raw = len(read_raw(args.raw))
    if n_raw == 0:
        msg.fail(f"Raw tweets file is empty: {args.raw}")
        return 1
    bad = [s for s in args.systems if s not in (SPACY_NER, CRF) and not s.startswith(f"{BILSTM}:")]
    if bad:
        msg.fail(f"Unknown system(s): {', '.join(bad)}", f"Use {BILSTM}:<config>, {SPACY_NER} or {CRF}.")
        return 1
    if len(set(args.systems)) != len(args.systems):
        msg.fail("A system is listed twice")
        return 1

    runs = args.runs or (1 if args.quick else 3)
    sizes = args.speed_sizes or (QUICK_SPEED_SIZES if args.quick else SPEED_SIZES)
    name = f"benchmark-{args.corpus}{'-quick' if args.quick else ''}"
    root = args.training_dir / name
    root.mkdir(parents=True, exist_ok=True)
    env = child_env(args.threads)

    # Data: the full splits, or their first N tweets in quick mode.
    data = dict(splits)
    limits = {"train": 0, "dev": 0, "test": 0}
    if args.quick:
        limits = dict(QUICK_LIMITS)
        for split in ("train", "dev"):
            data[split] = root / "_data" / f"{split}.spacy"
            subset_docbin(splits[split], data[split], limits[split])
    n_docs = {s: count_docs(data[s]) for s in ("train", "dev")}
    n_docs["test"] = min(count_docs(splits["test"]), limits["test"]) if limits["test"] else count_docs(splits["test"])
    msg.info(f"{name}: systems {', '.join(args.systems)}; train {n_docs['train']}, dev {n_docs['dev']}, "
             f"test {n_docs['test']} tweets; {n_raw} raw tweets")

    reused: Dict[str, Path] = {}
    for item in args.reuse:
        system, _, folder = item.partition("=")
        if not folder:
            msg.fail(f"--reuse {item}: expected SYSTEM=DIR")
            return 1
        if (Path(folder) / "model-best").is_dir():
            reused[system] = Path(folder)
        elif system in args.systems:
            msg.info(f"--reuse {item}: no {folder}/model-best yet, so {system} is trained here")
    if args.quick and reused:
        msg.info("quick mode trains every system (--reuse is ignored)")
        reused = {}
    caps: Dict[str, int] = {}
    for item in args.speed_cap:
        system, _, n = item.partition("=")
        if not n.isdigit():
            msg.fail(f"--speed-cap {item}: expected SYSTEM=N")
            return 1
        caps[system] = int(n)
    results: Dict[str, Dict] = {}
    skipped: Dict[str, str] = {}
    errors: Dict[str, str] = {}
    for system in args.systems:
        out_dir = root / system_dirname(system)
        reuse = reused.get(system)
        if system.startswith(f"{BILSTM}:"):
            config = args.configs_dir / f"{system.split(':', 1)[1]}.cfg"
            # a reused pipeline needs no config file (e.g. a seed ensemble, which is assembled, not trained)
            if reuse is None and not config.is_file():
                note = f"config {config} does not exist"
                if system.endswith("-ensemble"):
                    note = (f"a seed ensemble is assembled, not trained: run `spacy project run seeds` and "
                            f"`spacy project run ensemble` first, then pass --reuse {system}=DIR")
                msg.warn(f"Skipping {system}: {note}")
                skipped[system] = note
                continue
        if reuse is None:
            if out_dir.exists():
                shutil.rmtree(out_dir)
            out_dir.mkdir(parents=True)
        else:
            out_dir = reuse
        entry: Dict = {"system": system}
        try:
            msg.text(f"Training {system} ...")
            if reuse is not None:
                # trained by the project's `train` command: its time comes from the training log
                entry["reused"] = True
                if system.startswith(f"{BILSTM}:") and config.is_file():
                    entry["config"] = str(config)
                log = reuse / "train_log.jsonl"
                records = list(srsly.read_jsonl(log)) if log.exists() else []
                entry["train_seconds"] = float(records[-1]["seconds"]) if records else None
                msg.info(f"{system}: reusing {reuse} (trained by the project, not retrained here)")
            elif system == CRF:
                t0 = time.perf_counter()
                entry.update(train_crf_system(out_dir, data, args))
                entry["train_seconds"] = time.perf_counter() - t0
            else:
                if system == SPACY_NER:
                    config = make_spacy_ner_config(out_dir / "config.cfg", env)
                entry["config"] = str(config)
                entry["train_seconds"] = spacy_train(config, out_dir, data, args, env, f"spacy train ({system})")
            model = out_dir / "model-best"
            entry["model_path"] = str(model)
            entry["model_mb"] = dir_mib(model)
            if entry["train_seconds"] is not None:
                msg.good(f"Trained {system} in {_fmt_seconds(entry['train_seconds'])} -> {model}")

            msg.text(f"Scoring {system} on dev and test ...")
            scores = run_worker(
                {"mode": "eval", "model": str(model), "gpu_id": args.gpu_id, "threads": args.threads,
                 "batch_size": args.batch_size,
                 "splits": {"dev": [str(data["dev"]), 0], "test": [str(splits["test"]), limits["test"]]}},
                out_dir / "bench", env, f"evaluation ({system})",
            )
            for split in ("dev", "test"):
                for k in ("p", "r", "f"):
                    entry[f"{split}_{k}"] = scores[split][k]
                entry[f"{split}_per_type"] = scores[split]["per_type"]
            msg.good(f"{system}: dev F1 {_pct(entry['dev_f'])}, test F1 {_pct(entry['test_f'])}")

            msg.text(f"Timing {system} on raw tweets ...")
            system_sizes, system_runs = sizes, runs
            if system in caps:  # a slow system is timed on fewer tweets, once
                system_sizes = sorted({min(n if n else caps[system], caps[system]) for n in sizes})
                system_runs = 1
                entry["speed_cap"] = caps[system]
            speed = run_worker(
                {"mode": "speed", "model": str(model), "gpu_id": args.gpu_id, "threads": args.threads,
                 "batch_size": args.batch_size, "raw": str(args.raw), "sizes": system_sizes, "runs": system_runs},
                out_dir / "bench", env, f"speed ({system})",
            )
            entry.update(speed)
            msg.good(f"{system}: {speed['words_per_second']:,.0f} words/s, peak RSS {speed['peak_rss_mb']:.0f} MiB")
        except Exception as err:  # report, go on with the other systems, exit 1 at the end
            msg.fail(f"{system} failed", str(err))
            errors[system] = str(err)
            continue
        results[system] = entry

    base = results.get(SPACY_NER, {}).get("words_per_second")
    base_at = results.get(SPACY_NER, {}).get("words_per_second_at", {})
    for entry in results.values():
        wps = entry.get("words_per_second")
        entry["speed_ratio"] = (wps / base) if (base and wps is not None) else None
        entry["speed_ratio_at"] = {k: (v / base_at[k] if base_at.get(k) else None)
                                   for k, v in entry.get("words_per_second_at", {}).items()}

    threads = sorted({r.get("threads") for r in results.values() if r.get("threads") is not None})
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine_info(),
        "python": platform.python_version(),
        "spacy": _version("spacy"),
        "thinc": _version("thinc"),
        "torch": _version("torch"),
        "sklearn_crfsuite": _version("sklearn-crfsuite"),
        "corpus": args.corpus,
        "corpus_dir": str(corpus_dir),
        "raw": str(args.raw),
        "seed": args.seed,
        "quick": bool(args.quick),
        "gpu_id": args.gpu_id,
        "batch_size": args.batch_size,
        "n_tweets": n_raw,
        "speed_sizes": resolve_sizes(sizes, n_raw),
        "runs": runs,
        "threads": threads,
        "threads_note": f"torch threads {','.join(map(str, threads)) or '?'}",
        "docs": n_docs,
        "units": {
            "p/r/f": "spaCy ents_p/ents_r/ents_f as 0-1 floats (percent in the Markdown table)",
            "train_seconds": "wall-clock seconds of the whole training run",
            "words_per_second": "Twitter-tokenizer tokens per second through nlp.pipe on raw tweets (median of runs, at the largest size)",
            "peak_rss_mb": "ru_maxrss of a fresh process after loading + predicting, MiB",
            "load_rss_mb": "ru_maxrss right after spacy.load, MiB",
            "model_mb": "size of the model directory on disk, MiB",
            "speed_ratio": "words_per_second / spacy_ner's words_per_second in this run",
        },
        "systems": list(results),
        "skipped": skipped,
        "errors": errors,
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "total_seconds": None,
    }
    meta["total_seconds"] = time.perf_counter() - started
    report = dict(results)
    report["_meta"] = meta
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out / f"{name}.json", args.out / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    md = markdown(results, meta)
    md_path.write_text(md, encoding="utf8")
    print()
    print(md)
    msg.good(f"Wrote {json_path} and {md_path} ({_fmt_seconds(meta['total_seconds'])})")
    if SPACY_NER not in results:
        msg.warn(f"No {SPACY_NER} result: speed_ratio is null")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit(main())

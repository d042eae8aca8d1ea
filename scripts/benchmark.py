#!/usr/bin/env python
"""Benchmark the NER systems side by side, in one run, on the same machine and data.

    python scripts/benchmark.py --corpus wnut16-course --corpus-dir corpus/wnut16-course \\
        --raw assets/raw_tweets/tweets.txt --out metrics \\
        [--systems twitter_bilstm_ner:fast twitter_bilstm_ner:accurate spacy_ner crf] \\
        [--threads 1 default] [--quick] [--seed 0] [--gpu-id -1]

Systems (all trained on ``<corpus-dir>/train.spacy``, model picked on ``dev.spacy``):

* ``twitter_bilstm_ner:<cfg>``: ``spacy train configs/<cfg>.cfg`` (skipped with a note when the
  config does not exist); the model is ``model-best`` (best dev ``ents_f``). The command line comes
  from scripts/commands.py, as for the project's ``train``: the vectors and gazetteer paths are
  passed when the config uses them.
* ``spacy_ner``: spaCy's built-in ``ner`` from ``spacy init config -l en -p ner -o efficiency``
  (the CPU config, no static vectors), with ``gold_preproc = true`` for both corpora and the
  Twitter tokenizer in place of spaCy's, so that it sees the same tokens and its raw-text speed
  includes the same tokenizer; ``model-best``.
* ``crf``: the sklearn-crfsuite CRF of ``spacy_twitter_ner.baselines.crf`` (``c1``/``c2`` picked on
  dev from a small grid; only the defaults in ``--quick``), saved as a spaCy pipeline
  (Twitter tokenizer + ``twitter_crf_ner``) in ``model-best``.

Measured per system:

* ``dev_p/r/f``, ``test_p/r/f``: spaCy's NER scorer (``ents_p/r/f``) through ``nlp.evaluate`` on
  examples built as ``spacy.training.Corpus(gold_preproc=True)`` builds them, i.e. what
  ``spacy evaluate --gold-preproc`` computes. **0-1 floats in the JSON, percentages in the
  Markdown table.**
* ``train_seconds``: wall time of the whole training (for spaCy: the ``spacy train`` process,
  including its dev evaluations; for the CRF: the whole c1/c2 selection). Saved beside the model
  (``train.json``), so a model passed again with ``--reuse`` keeps the time measured when this
  script trained it (a model the project's ``train`` made: from its training log).
* ``words_per_second``: raw tweets (the lines of ``--raw``) through ``nlp.pipe(texts,
  batch_size=B)`` (the tokenizer included; "words" = tokens produced by the Twitter tokenizer,
  the same for every system), in a fresh subprocess per system and thread setting, one after
  another, after one excluded warm-up batch; median of ``--runs`` runs; measured at several
  corpus sizes (``words_per_second_at``, keyed by the number of tweets) and reported at the
  largest. Timed at each ``--threads`` setting (default ``1 default``: one torch thread, and
  torch's default, i.e. no OMP/MKL/torch thread setting in the subprocess, as users get it):
  ``words_per_second_by_threads``/``speed_ratio_by_threads``; the plain keys are the first setting.
* ``rss_growth_mb``: memory the pipeline holds after piping the raw tweets that it did not hold
  after the warm-up batch: resident memory (``/proc/self/statm``, current, not the peak) of the
  speed subprocess at both points, each read after glibc's free heap was given back
  (``malloc_trim``), MiB (first setting; ``rss_growth_mb_by_threads``), and ``rss_growth_ratio``
  over ``spacy_ner``'s. Without the trims, how much freed memory the allocator happens to keep at
  the two readings decides much of the figure (spaCy ``ner`` read +23 and +61 MiB in two runs of
  the same model); ``rss_growth_raw_mb`` is the untrimmed difference, for reference.
* ``load_rss_mb`` (after ``spacy.load``) and ``peak_rss_mb`` (after loading + predicting):
  ``ru_maxrss`` of that subprocess, in MiB. ``model_mb``: size of the model directory, MiB.
* ``speed_ratio``: words/s over ``spacy_ner``'s words/s in this same run (null without it).

The ``_meta`` states the machine's load (load average before/after, and the CPU cores that other
processes kept busy during the run and during each timing, from /proc/stat) and the thread settings.

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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import srsly
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import TRAIN_TIME, project_paths, recorded_train_seconds, train_command  # noqa: E402

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
DEFAULT_THREADS = "default"  # a --threads setting: torch's own default, nothing set
THREAD_SETTINGS = ["1", DEFAULT_THREADS]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# rss_growth_ratio needs spaCy's ner to have grown by at least this much (MiB): a ratio to a few
# pages' growth (a tiny --raw file) would only be noise
MIN_BASE_RSS_GROWTH_MB = 1.0
# beside a model this script trained: its measured train time, kept when it is reused
TRAIN_RECORD = "train.json"


# ------------------------------------------------------------------------------------------
# Worker (runs in a fresh subprocess: evaluation, or speed + memory)
# ------------------------------------------------------------------------------------------


def _load_nlp(model: str, gpu_id: int, threads: Optional[int]):
    import spacy
    import torch

    import spacy_twitter_ner.baselines.crf  # noqa: F401  (registers "twitter_crf_ner")

    if threads:
        torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    return spacy.load(model), torch.get_num_threads()


def _maxrss_mib() -> float:
    import resource

    # Linux reports kilobytes (macOS bytes; this script targets Linux).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> Optional[float]:
    """Current resident memory of this process (not the peak), MiB; None without /proc."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MIB


def _held_rss_mib() -> Optional[float]:
    """``_rss_mib`` after giving glibc's free heap back to the OS: memory held, not the
    allocator's free lists (the same for every system; plain RSS where there is no glibc)."""
    from spacy_twitter_ner.runtime import trim_heap

    trim_heap()
    return _rss_mib()


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


def _time_sizes(nlp, texts: List[str], sizes: List[int], runs: int, batch_size: int) -> Dict[str, Dict]:
    """words/s (median of ``runs``), words and seconds for the first ``size`` tweets, per size."""
    at: Dict[str, Dict] = {"words_per_second_at": {}, "words_at": {}, "seconds_at": {}}
    for size in sizes:
        subset = texts[:size]
        rates, times = [], []
        n_words = 0
        for _ in range(runs):
            n_words = 0
            start = time.perf_counter()
            for doc in nlp.pipe(subset, batch_size=batch_size):
                n_words += len(doc)
            elapsed = time.perf_counter() - start
            times.append(elapsed)
            rates.append(n_words / elapsed if elapsed > 0 else 0.0)
        at["words_per_second_at"][str(size)] = statistics.median(rates)
        at["words_at"][str(size)] = n_words
        at["seconds_at"][str(size)] = statistics.median(times)
    return at


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
    raw_warm = _rss_mib()
    rss_warm = _held_rss_mib()
    sizes = resolve_sizes(spec["sizes"], len(texts))
    at = _time_sizes(nlp, texts, sizes, spec["runs"], batch_size)
    raw_end = _rss_mib()
    rss_end = _held_rss_mib()
    growth = None if rss_warm is None or rss_end is None else rss_end - rss_warm
    raw_growth = None if raw_warm is None or raw_end is None else raw_end - raw_warm
    return {
        "words_per_second": at["words_per_second_at"][str(sizes[-1])],
        **at,
        "load_seconds": load_seconds,
        "load_rss_mb": load_rss,
        "peak_rss_mb": _maxrss_mib(),
        "rss_warm_mb": rss_warm,
        "rss_end_mb": rss_end,
        "rss_growth_mb": growth,
        "rss_growth_raw_mb": raw_growth,
        "rss_growth_tweets": sizes[-1],
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


def thread_setting(value: str) -> str:
    """A ``--threads`` value: a positive number of torch threads, or "default"."""
    value = value.strip().lower()
    if value == DEFAULT_THREADS:
        return value
    if value.isdigit() and int(value) > 0:
        return str(int(value))
    raise argparse.ArgumentTypeError(f"expected a positive number of threads or {DEFAULT_THREADS!r}, got {value!r}")


def setting_threads(setting: str) -> Optional[int]:
    """The thread count a setting sets (None: torch's default)."""
    return None if setting == DEFAULT_THREADS else int(setting)


def child_env(threads: Optional[int], clear: bool = False) -> Dict[str, str]:
    """This process's environment with the OpenMP/MKL thread variables set to ``threads``; with
    ``threads`` None they are inherited, or removed when ``clear`` (torch's own default)."""
    env = dict(os.environ)
    for var in THREAD_ENV:
        if threads:
            env[var] = str(threads)
        elif clear:
            env.pop(var, None)
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
# Machine load: how much CPU other processes used while we measured
# ------------------------------------------------------------------------------------------


def _busy_cpu_seconds() -> Optional[float]:
    """CPU seconds all processes of the machine have used (user, nice, system, irq, softirq,
    steal; /proc/stat), None without /proc."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        ticks = [int(x) for x in fields[1:9]]
    except (OSError, IndexError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of its finished subprocesses."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def _loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


class LoadProbe:
    """Started on creation; ``read()`` gives the load average then and now and the mean number of
    CPU cores that *other* processes kept busy in between (machine busy time minus ours)."""

    def __init__(self) -> None:
        self.loadavg = _loadavg()
        self.busy = _busy_cpu_seconds()
        self.own = _own_cpu_seconds()
        self.start = time.perf_counter()

    def read(self) -> Dict:
        wall = time.perf_counter() - self.start
        busy = _busy_cpu_seconds()
        other = None
        if busy is not None and self.busy is not None and wall > 0:
            other = max(0.0, (busy - self.busy) - (_own_cpu_seconds() - self.own)) / wall
        return {"seconds": wall, "other_cpu_cores": other,
                "loadavg_before": self.loadavg, "loadavg_after": _loadavg()}


# ------------------------------------------------------------------------------------------
# Options and data
# ------------------------------------------------------------------------------------------


class UsageError(Exception):
    """Bad input: (title, optional hint) for msg.fail, exit code 1."""


@dataclass
class Plan:
    """What one benchmark run works on, resolved from the options."""

    name: str  # benchmark-<corpus>[-quick]
    root: Path  # <training-dir>/<name>
    corpus_dir: Path
    splits: Dict[str, Path]  # the corpus's train/dev/test.spacy
    data: Dict[str, Path]  # what is trained on and scored (first N docs in quick mode)
    limits: Dict[str, int]  # docs per split (0 = all)
    n_docs: Dict[str, int]
    n_raw: int
    sizes: List[int]
    runs: int
    thread_settings: List[str]
    reused: Dict[str, Path] = field(default_factory=dict)
    caps: Dict[str, int] = field(default_factory=dict)


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
                   help="static vectors for configs that use them (default the project's assets/vectors/<corpus>-minilm-256)")
    p.add_argument("--reuse", nargs="*", default=[], metavar="SYSTEM=DIR",
                   help="score and time the model the project already trained, when DIR/model-best exists (train "
                        "time from DIR/train_log.jsonl), instead of training it again; else it is trained here")
    p.add_argument("--teacher-pass", nargs="*", default=[], metavar="SYSTEM=FILE",
                   help="a reused distilled SYSTEM's teacher pass (the teach-summary.json `teach` wrote): its "
                        "seconds are added to the train time (train_seconds = student + teacher pass)")
    p.add_argument("--speed-cap", nargs="*", default=[], metavar="SYSTEM=N",
                   help="time SYSTEM on at most N tweets, once (for a slow profile)")
    p.add_argument("--lexicons", type=Path, default=None,
                   help="gazetteer list folder for configs that use one (default the project's assets/lexicons)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-id", type=int, default=-1, help="for spacy train and the spaCy workers (the CRF is CPU only)")
    p.add_argument("--batch-size", type=int, default=256, help="nlp.pipe / nlp.evaluate batch size")
    p.add_argument("--runs", type=int, default=None, help="speed runs per size, median reported (default 3, quick 1)")
    p.add_argument("--speed-sizes", type=int, nargs="+", default=None,
                   help="numbers of tweets to time (0 = all; default 1000 10000 0, quick 200 1000)")
    p.add_argument("--max-steps", type=int, default=0, help="cap spaCy training steps (0 = config's value)")
    p.add_argument("--eval-frequency", type=int, default=0, help="spaCy dev evaluation every N steps (quick default 10)")
    p.add_argument("--threads", type=thread_setting, nargs="+", default=THREAD_SETTINGS, metavar="N|default",
                   help="torch thread settings to time every system at, in the same run: a number of threads, or "
                        "'default' (torch's default: no OMP/MKL/torch thread setting in the subprocess). The first "
                        "is the headline words_per_second/speed_ratio (default: 1 default)")
    p.add_argument("--train-threads", type=int, default=None,
                   help="torch/OpenMP threads for training and scoring (default: inherited, torch's default)")
    return p.parse_args(argv)


def check_inputs(args: argparse.Namespace, splits: Dict[str, Path]) -> None:
    missing = [str(p) for p in splits.values() if not p.is_file()]
    if missing:
        raise UsageError(f"Corpus files not found: {', '.join(missing)}",
                         f"Convert the corpus first: python -m spacy_twitter_ner.conll assets/{args.corpus} "
                         f"{splits['train'].parent}")
    if not args.raw.is_file():
        raise UsageError(f"Raw tweets file not found: {args.raw}", "Pass --raw FILE (one tweet per line).")
    bad = [s for s in args.systems if s not in (SPACY_NER, CRF) and not s.startswith(f"{BILSTM}:")]
    if bad:
        raise UsageError(f"Unknown system(s): {', '.join(bad)}", f"Use {BILSTM}:<config>, {SPACY_NER} or {CRF}.")
    if len(set(args.systems)) != len(args.systems):
        raise UsageError("A system is listed twice")
    if len(set(args.threads)) != len(args.threads):
        raise UsageError(f"A --threads setting is listed twice: {' '.join(args.threads)}")


def parse_reuse(items: List[str], systems: List[str]) -> Dict[str, Path]:
    """--reuse SYSTEM=DIR items whose DIR/model-best exists."""
    reused: Dict[str, Path] = {}
    for item in items:
        system, _, folder = item.partition("=")
        if not folder:
            raise UsageError(f"--reuse {item}: expected SYSTEM=DIR")
        if (Path(folder) / "model-best").is_dir():
            reused[system] = Path(folder)
        elif system in systems:
            msg.info(f"--reuse {item}: no {folder}/model-best yet, so {system} is trained here")
    return reused


def parse_caps(items: List[str]) -> Dict[str, int]:
    caps: Dict[str, int] = {}
    for item in items:
        system, _, n = item.partition("=")
        if not n.isdigit():
            raise UsageError(f"--speed-cap {item}: expected SYSTEM=N")
        caps[system] = int(n)
    return caps


def prepare(args: argparse.Namespace) -> Plan:
    """Check the inputs; in quick mode write the train/dev subsets; resolve the options."""
    corpus_dir = args.corpus_dir or project_paths(args.corpus, "").corpus_dir
    splits = {s: corpus_dir / f"{s}.spacy" for s in ("train", "dev", "test")}
    check_inputs(args, splits)
    n_raw = len(read_raw(args.raw))
    if n_raw == 0:
        raise UsageError(f"Raw tweets file is empty: {args.raw}")
    reused = parse_reuse(args.reuse, args.systems)
    teacher_passes(args)  # bad --teacher-pass items fail now, not after hours of training
    if args.quick and reused:
        msg.info("quick mode trains every system (--reuse is ignored)")
        reused = {}
    caps = parse_caps(args.speed_cap)
    name = f"benchmark-{args.corpus}{'-quick' if args.quick else ''}"
    root = args.training_dir / name
    root.mkdir(parents=True, exist_ok=True)
    data = dict(splits)
    limits = dict(QUICK_LIMITS) if args.quick else {"train": 0, "dev": 0, "test": 0}
    if args.quick:
        for split in ("train", "dev"):
            data[split] = root / "_data" / f"{split}.spacy"
            subset_docbin(splits[split], data[split], limits[split])
    n_docs = {s: count_docs(data[s]) for s in ("train", "dev")}
    n_test = count_docs(splits["test"])
    n_docs["test"] = min(n_test, limits["test"]) if limits["test"] else n_test
    return Plan(
        name=name, root=root, corpus_dir=corpus_dir, splits=splits, data=data, limits=limits,
        n_docs=n_docs, n_raw=n_raw,
        sizes=args.speed_sizes or (QUICK_SPEED_SIZES if args.quick else SPEED_SIZES),
        runs=args.runs or (1 if args.quick else 3),
        thread_settings=list(args.threads), reused=reused, caps=caps,
    )


# ------------------------------------------------------------------------------------------
# Training (or reuse of the project's model)
# ------------------------------------------------------------------------------------------


def train_overrides(args: argparse.Namespace) -> List[str]:
    """spacy train overrides for --quick, --eval-frequency and --max-steps."""
    out: List[str] = []
    if args.quick:
        out += ["--training.max_epochs", str(QUICK_EPOCHS)]
    if args.quick or args.eval_frequency:
        out += ["--training.eval_frequency", str(args.eval_frequency or QUICK_EVAL_FREQUENCY)]
    if args.max_steps:
        out += ["--training.max_steps", str(args.max_steps)]
    return out


def spacy_train(config: Path, out_dir: Path, data: Dict[str, Path], args, env, label: str) -> float:
    """Run the shared ``spacy train`` command line (scripts/commands.py): the vectors and the
    gazetteer lists go to the configs that use them. Returns the wall time."""
    project = project_paths(args.corpus, config.stem)
    cmd = train_command(
        config, out_dir, data["train"], data["dev"], seed=args.seed, gpu_id=args.gpu_id,
        vectors=args.vectors or project.vectors, lexicons=args.lexicons or project.lexicons,
        overrides=train_overrides(args),
    )
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
    # The efficiency config has no static vectors (include_static_vectors = false); with no
    # ${paths.vectors} left, the shared command line does not load ours into its vocab either.
    cfg["initialize"]["vectors"] = None
    cfg.to_disk(dest)
    return dest


def train_crf_system(out_dir: Path, data: Dict[str, Path], args) -> Dict:
    """Fit the CRF (c1/c2 picked on dev), save it as a spaCy pipeline in ``out_dir/model-best``."""
    import spacy
    from spacy.tokens import DocBin
    from spacy.vocab import Vocab

    from spacy_twitter_ner.baselines.crf import DEFAULT_HPARAMS, evaluate_docs, train_crf

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


def bilstm_config(system: str, args) -> Optional[Path]:
    return args.configs_dir / f"{system.split(':', 1)[1]}.cfg" if system.startswith(f"{BILSTM}:") else None


def is_distilled(config: Path) -> bool:
    """Whether ``config`` trains on a teacher's labels (its train corpus is DistillCorpus)."""
    return "spacy_twitter_ner.DistillCorpus" in config.read_text(encoding="utf8")


def skip_reason(system: str, plan: Plan, args) -> Optional[str]:
    """Why ``system`` cannot run (a missing config; a distilled student that was not passed with
    --reuse: it needs a teacher pass first), or None. A reused pipeline needs no config file
    (e.g. a seed ensemble, which is assembled, not trained)."""
    config = bilstm_config(system, args)
    if config is None or system in plan.reused:
        return None
    if config.is_file():
        if is_distilled(config):
            return (f"a distilled student learns from a teacher's labels: run `spacy project run distill` "
                    f"first, then pass --reuse {system}=DIR (and --teacher-pass {system}=<teach-summary.json>)")
        return None
    if system.endswith("-ensemble"):
        return (f"a seed ensemble is assembled, not trained: run `spacy project run seeds` and "
                f"`spacy project run ensemble` first, then pass --reuse {system}=DIR")
    return f"config {config} does not exist"


def reuse_entry(system: str, reuse: Path, args) -> Dict:
    """A model the project's `train` made: its train time comes from the benchmark's own record, else
    scripts/train.py's, else its training log."""
    entry: Dict = {"system": system, "reused": True}
    config = bilstm_config(system, args)
    if config is not None and config.is_file():
        entry["config"] = str(config)
    entry["train_seconds"] = recorded_train_seconds(reuse, (TRAIN_RECORD, TRAIN_TIME))
    teach = teacher_passes(args).get(system)
    if teach is not None:
        summary = srsly.read_json(teach)
        counts = summary.get("counts", {})
        if not summary.get("complete") or "seconds" not in counts:
            raise UsageError(f"--teacher-pass {system}={teach}: the teacher pass is not complete")
        # the whole pass: earlier finished runs whose shards this one reused included
        seconds = counts.get("seconds_all_runs") or counts["seconds"]
        if counts.get("shards_reused") and not counts.get("seconds_all_runs"):
            msg.warn(f"{teach}: {counts['shards_reused']} shards came from an earlier run; only this run's "
                     f"{counts['seconds']:.0f} s are counted")
        entry["student_seconds"] = entry.get("train_seconds")
        entry["teach_seconds"] = float(seconds)
        entry["teach_tweets"] = counts.get("annotated")
        if entry["student_seconds"] is not None:
            entry["train_seconds"] = entry["student_seconds"] + entry["teach_seconds"]
    msg.info(f"{system}: reusing {reuse} (trained by the project, not retrained here)")
    return entry


def teacher_passes(args) -> Dict[str, Path]:
    out: Dict[str, Path] = {}
    for item in getattr(args, "teacher_pass", None) or []:
        system, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"--teacher-pass {item}: expected SYSTEM=FILE")
        if Path(path).is_file():
            out[system] = Path(path)
        else:  # as --reuse: no teacher pass yet (then the student is skipped, having no model)
            msg.info(f"--teacher-pass {item}: no {path} yet")
    return out


def train_entry(system: str, out_dir: Path, plan: Plan, args, env) -> Dict:
    """Train ``system`` from scratch into ``out_dir/model-best``; its train time is saved as
    ``out_dir/train.json`` for a later ``--reuse``."""
    entry = _train(system, out_dir, plan, args, env)
    srsly.write_json(out_dir / TRAIN_RECORD, {"system": system, "train_seconds": entry["train_seconds"]})
    return entry


def _train(system: str, out_dir: Path, plan: Plan, args, env) -> Dict:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    entry: Dict = {"system": system}
    if system == CRF:
        t0 = time.perf_counter()
        entry.update(train_crf_system(out_dir, plan.data, args))
        entry["train_seconds"] = time.perf_counter() - t0
        return entry
    if system == SPACY_NER:
        config = make_spacy_ner_config(out_dir / "config.cfg", env)
    else:
        config = bilstm_config(system, args)
    entry["config"] = str(config)
    entry["train_seconds"] = spacy_train(config, out_dir, plan.data, args, env, f"spacy train ({system})")
    return entry


# ------------------------------------------------------------------------------------------
# Scoring and timing (fresh subprocesses)
# ------------------------------------------------------------------------------------------


def score_system(system: str, model: Path, workdir: Path, plan: Plan, args, env) -> Dict:
    """dev/test P/R/F1 (0-1) and per type, as ``spacy evaluate --gold-preproc`` computes them."""
    scores = run_worker(
        {"mode": "eval", "model": str(model), "gpu_id": args.gpu_id, "threads": args.train_threads,
         "batch_size": args.batch_size,
         "splits": {"dev": [str(plan.data["dev"]), 0], "test": [str(plan.splits["test"]), plan.limits["test"]]}},
        workdir, env, f"evaluation ({system})",
    )
    out = {}
    for split in ("dev", "test"):
        for k in ("p", "r", "f"):
            out[f"{split}_{k}"] = scores[split][k]
        out[f"{split}_per_type"] = scores[split]["per_type"]
    return out


def time_system(system: str, model: Path, workdir: Path, plan: Plan, args) -> Dict:
    """words/s and memory on the raw tweets at each thread setting, one fresh subprocess each.
    The plain keys (words_per_second, rss_growth_mb, ...) are the first setting's."""
    sizes, runs, out = plan.sizes, plan.runs, {}
    if system in plan.caps:  # a slow system is timed on fewer tweets, once
        cap = plan.caps[system]
        sizes, runs = sorted({min(n if n else cap, cap) for n in plan.sizes}), 1
        out["speed_cap"] = cap
    by_setting: Dict[str, Dict] = {}
    for setting in plan.thread_settings:
        threads = setting_threads(setting)
        probe = LoadProbe()
        speed = run_worker(
            {"mode": "speed", "model": str(model), "gpu_id": args.gpu_id, "threads": threads,
             "batch_size": args.batch_size, "raw": str(args.raw), "sizes": sizes, "runs": runs},
            workdir / f"threads-{setting}", child_env(threads, clear=True), f"speed ({system}, threads {setting})",
        )
        speed["other_cpu_cores"] = probe.read()["other_cpu_cores"]
        by_setting[setting] = speed
        msg.good(f"{system} at threads {setting} ({speed['threads']}): {speed['words_per_second']:,.0f} words/s, "
                 f"RSS +{_mib(speed['rss_growth_mb'])} predicting, peak {_mib(speed['peak_rss_mb'])}")
    out.update(by_setting[plan.thread_settings[0]])
    out["speed_by_threads"] = by_setting
    for key, source in (("words_per_second_by_threads", "words_per_second"), ("threads_by_setting", "threads"),
                        ("rss_growth_mb_by_threads", "rss_growth_mb"), ("rss_growth_raw_mb_by_threads", "rss_growth_raw_mb"),
                        ("other_cpu_cores_by_threads", "other_cpu_cores")):
        out[key] = {s: r.get(source) for s, r in by_setting.items()}
    return out


def run_system(system: str, plan: Plan, args, env) -> Dict:
    """Train (or reuse), score and time one system."""
    reuse = plan.reused.get(system)
    msg.text(f"Training {system} ...")
    if reuse is not None:
        entry, out_dir = reuse_entry(system, reuse, args), reuse
    else:
        out_dir = plan.root / system_dirname(system)
        entry = train_entry(system, out_dir, plan, args, env)
    model = out_dir / "model-best"
    entry["model_path"] = str(model)
    entry["model_mb"] = dir_mib(model)
    if entry["train_seconds"] is not None:
        msg.good(f"Trained {system} in {_fmt_seconds(entry['train_seconds'])} -> {model}")
    msg.text(f"Scoring {system} on dev and test ...")
    entry.update(score_system(system, model, out_dir / "bench", plan, args, env))
    msg.good(f"{system}: dev F1 {_pct(entry['dev_f'])}, test F1 {_pct(entry['test_f'])}")
    msg.text(f"Timing {system} on raw tweets at threads {', '.join(plan.thread_settings)} ...")
    entry.update(time_system(system, model, out_dir / "bench", plan, args))
    return entry


def run_systems(plan: Plan, args) -> Tuple[Dict[str, Dict], Dict[str, str], Dict[str, str]]:
    """(results, skipped, errors) over ``args.systems``, one after another; a failing system is
    reported and the others go on."""
    env = child_env(args.train_threads)
    results: Dict[str, Dict] = {}
    skipped: Dict[str, str] = {}
    errors: Dict[str, str] = {}
    for system in args.systems:
        note = skip_reason(system, plan, args)
        if note:
            msg.warn(f"Skipping {system}: {note}")
            skipped[system] = note
            continue
        try:
            results[system] = run_system(system, plan, args, env)
        except Exception as err:  # report, go on with the other systems, exit 1 at the end
            msg.fail(f"{system} failed", str(err))
            errors[system] = str(err)
    return results, skipped, errors


# ------------------------------------------------------------------------------------------
# Ratios against spaCy's ner, meta
# ------------------------------------------------------------------------------------------


def _ratio(value: Optional[float], base: Optional[float]) -> Optional[float]:
    return value / base if (value is not None and base) else None


def add_ratios(results: Dict[str, Dict]) -> None:
    """speed_ratio(_at, _by_threads) and rss_growth_ratio(_by_threads): over spacy_ner's figure in
    this same run (null without it, where its speed is 0, or where it grew by less than
    MIN_BASE_RSS_GROWTH_MB)."""
    base = results.get(SPACY_NER, {})

    def above(d: Dict, floor: float) -> Dict:
        return {k: v for k, v in d.items() if v is not None and v > 0 and v >= floor}

    base_at = above(base.get("words_per_second_at", {}), 0)
    base_threads = above(base.get("words_per_second_by_threads", {}), 0)
    base_rss = above(base.get("rss_growth_mb_by_threads", {}), MIN_BASE_RSS_GROWTH_MB)
    base_growth = base.get("rss_growth_mb")
    base_growth = base_growth if base_growth is not None and base_growth >= MIN_BASE_RSS_GROWTH_MB else None
    for entry in results.values():
        entry["speed_ratio"] = _ratio(entry.get("words_per_second"), base.get("words_per_second"))
        entry["speed_ratio_at"] = {k: _ratio(v, base_at.get(k)) for k, v in entry.get("words_per_second_at", {}).items()}
        entry["speed_ratio_by_threads"] = {
            k: _ratio(v, base_threads.get(k)) for k, v in entry.get("words_per_second_by_threads", {}).items()}
        entry["rss_growth_ratio"] = _ratio(entry.get("rss_growth_mb"), base_growth)
        entry["rss_growth_ratio_by_threads"] = {
            k: _ratio(v, base_rss.get(k)) for k, v in entry.get("rss_growth_mb_by_threads", {}).items()}


UNITS = {
    "p/r/f": "spaCy ents_p/ents_r/ents_f as 0-1 floats (percent in the Markdown table)",
    "train_seconds": "wall-clock seconds of the whole training run (a distilled student: its training plus the teacher pass, teach_seconds; the teacher's own training is not included)",
    "words_per_second": "Twitter-tokenizer tokens per second through nlp.pipe on raw tweets (median of runs, at "
                        "the largest size), at the first thread setting",
    "words_per_second_by_threads": "the same at each thread setting ('default': torch's default threads)",
    "peak_rss_mb": "ru_maxrss of a fresh process after loading + predicting, MiB",
    "load_rss_mb": "ru_maxrss right after spacy.load, MiB",
    "rss_growth_mb": "current RSS (/proc/self/statm) after piping the raw tweets (rss_growth_tweets, each size "
                     "and run) minus after the warm-up batch, each read after malloc_trim (memory held, not "
                     "free heap), MiB, first thread setting",
    "rss_growth_raw_mb": "the same without the malloc_trim before each reading",
    "model_mb": "size of the model directory on disk, MiB",
    "speed_ratio": "words_per_second / spacy_ner's words_per_second in this run (speed_ratio_by_threads: per setting)",
    "rss_growth_ratio": "rss_growth_mb / spacy_ner's rss_growth_mb in this run (null where spacy_ner grew by "
                        f"less than {MIN_BASE_RSS_GROWTH_MB} MiB)",
    "other_cpu_cores": "mean number of CPU cores other processes kept busy (machine busy CPU time from /proc/stat "
                       "minus this benchmark's own, over wall time)",
}


def thread_meta(plan: Plan, results: Dict[str, Dict], args) -> Dict:
    """The thread settings and the torch thread counts they gave."""
    by_setting = {s: sorted({r["threads_by_setting"][s] for r in results.values()
                             if r.get("threads_by_setting", {}).get(s) is not None})
                  for s in plan.thread_settings}
    threads = sorted({n for ns in by_setting.values() for n in ns})
    shown = ", ".join(f"{s} ({'/'.join(map(str, ns)) or '?'})" for s, ns in by_setting.items())
    train = args.train_threads or DEFAULT_THREADS
    return {
        "thread_settings": plan.thread_settings,
        "threads_by_setting": by_setting,
        "threads": threads,
        "train_threads": train,
        "threads_note": f"speed at torch threads {shown}; training at {train}",
    }


def build_meta(args, plan: Plan, results: Dict, skipped: Dict, errors: Dict, load: Dict,
               argv: Optional[List[str]], started: float) -> Dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine_info(),
        "python": platform.python_version(),
        "spacy": _version("spacy"),
        "thinc": _version("thinc"),
        "torch": _version("torch"),
        "sklearn_crfsuite": _version("sklearn-crfsuite"),
        "corpus": args.corpus,
        "corpus_dir": str(plan.corpus_dir),
        "raw": str(args.raw),
        "seed": args.seed,
        "quick": bool(args.quick),
        "gpu_id": args.gpu_id,
        "batch_size": args.batch_size,
        "n_tweets": plan.n_raw,
        "speed_sizes": resolve_sizes(plan.sizes, plan.n_raw),
        "runs": plan.runs,
        **thread_meta(plan, results, args),
        "load": load,
        "docs": plan.n_docs,
        "units": UNITS,
        "systems": list(results),
        "skipped": skipped,
        "errors": errors,
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "total_seconds": time.perf_counter() - started,
    }


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


def _mib(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.0f} MiB"


def _times(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _wps(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:,.0f}"


def thread_label(setting: str, meta: Dict) -> str:
    """"1 thread", "4 threads", "default: 2 threads" (the counts torch reported)."""
    counts = "/".join(map(str, meta.get("threads_by_setting", {}).get(setting) or [])) or "?"
    if setting == DEFAULT_THREADS:
        return f"default: {counts} thread{'' if counts == '1' else 's'}"
    return f"{setting} thread{'' if setting == '1' else 's'}"


def _header(meta: Dict) -> List[str]:
    m = meta["machine"]
    cols = ["System", "Dev F1", "Test F1"]
    for setting in meta["thread_settings"]:
        label = thread_label(setting, meta)
        cols += [f"Words/s ({label})", f"Speed vs spacy ner ({label})"]
    cols += ["RSS growth predicting (held)", "RSS growth vs spacy ner", "RSS growth (untrimmed)", "Train time",
             "Peak RSS", "Model size"]
    return [
        f"# Benchmark: {meta['corpus']}{' (quick: smoke test, not comparable numbers)' if meta['quick'] else ''}",
        "",
        f"{meta['date']} · {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM · Python {meta['python']}, "
        f"spaCy {meta['spacy']}, torch {meta['torch']} · {meta['threads_note']} · seed {meta['seed']} · "
        f"speed: {meta['n_tweets']} raw tweets, nlp.pipe batch_size={meta['batch_size']}, "
        f"median of {meta['runs']} run(s)",
        "",
        "| " + " | ".join(cols) + " |",
        "|---|" + "---:|" * (len(cols) - 1),
    ]


def _row(name: str, r: Dict, settings: List[str]) -> str:
    cells = [name, _pct(r.get("dev_f")), _pct(r.get("test_f"))]
    for setting in settings:
        cells += [_wps(r.get("words_per_second_by_threads", {}).get(setting)),
                  _times(r.get("speed_ratio_by_threads", {}).get(setting))]
    growth, raw = r.get("rss_growth_mb"), r.get("rss_growth_raw_mb")
    size = r.get("model_mb")
    cells += [
        "-" if growth is None else f"{growth:+.1f} MiB",
        _times(r.get("rss_growth_ratio")),
        "-" if raw is None else f"{raw:+.1f} MiB",
        _fmt_seconds(r.get("train_seconds")),
        _mib(r.get("peak_rss_mb")),
        "-" if size is None else f"{size:.{1 if size >= 1 else 2}f} MiB",
    ]
    return "| " + " | ".join(cells) + " |"


def _load_note(load: Dict) -> str:
    other = load.get("other_cpu_cores")
    before, after = load.get("loadavg_before"), load.get("loadavg_after")
    text = "Load: "
    text += "?" if other is None else f"other processes kept {other:.1f} CPU cores busy on average during the run"
    if before and after:
        text += f" (1/5/15-min load average {'/'.join(map(str, before))} before, {'/'.join(map(str, after))} after)"
    return text + "."


def markdown(results: Dict, meta: Dict) -> str:
    lines = _header(meta)
    lines += [_row(name, r, meta["thread_settings"]) for name, r in results.items()]
    first = thread_label(meta["thread_settings"][0], meta)
    lines += [
        "",
        f"F1: spaCy's ents_f in % (gold tokenisation; dev {meta['docs']['dev']} and test "
        f"{meta['docs']['test']} tweets; trained on {meta['docs']['train']}). Words/s: raw text through "
        "nlp.pipe, Twitter tokenizer included, at the largest size, at each torch thread setting ('default': "
        "torch's own, as users get it); speed ratios against spaCy's ner at the same setting. RSS growth: "
        f"resident memory after piping the raw tweets minus after the warm-up batch ({first}), each read "
        "after malloc_trim gave the free heap back (memory held); untrimmed: the same without it; peak RSS: "
        "ru_maxrss of a fresh process after loading and predicting.",
        "",
        _load_note(meta.get("load") or {}),
    ]
    if meta.get("skipped"):
        lines.append("")
        lines += [f"Skipped: {k}: {v}" for k, v in meta["skipped"].items()]
    if meta.get("errors"):
        lines.append("")
        lines += [f"Failed: {k}: {v.splitlines()[0]}" for k, v in meta["errors"].items()]
    return "\n".join(lines) + "\n"


def write_report(out: Path, name: str, results: Dict, meta: Dict) -> Tuple[Path, Path]:
    """``<out>/<name>.json`` (systems + "_meta") and ``<out>/<name>.md``; prints the table."""
    report = dict(results)
    report["_meta"] = meta
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    md = markdown(results, meta)
    md_path.write_text(md, encoding="utf8")
    print()
    print(md)
    return json_path, md_path


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load = LoadProbe()
    try:
        plan = prepare(args)
    except UsageError as err:
        msg.fail(*err.args)
        return 1
    msg.info(f"{plan.name}: systems {', '.join(args.systems)}; train {plan.n_docs['train']}, dev "
             f"{plan.n_docs['dev']}, test {plan.n_docs['test']} tweets; {plan.n_raw} raw tweets; "
             f"speed at threads {', '.join(plan.thread_settings)}")
    results, skipped, errors = run_systems(plan, args)
    add_ratios(results)
    meta = build_meta(args, plan, results, skipped, errors, load.read(), argv, started)
    json_path, md_path = write_report(args.out, plan.name, results, meta)
    msg.good(f"Wrote {json_path} and {md_path} ({_fmt_seconds(meta['total_seconds'])})")
    if SPACY_NER not in results:
        msg.warn(f"No {SPACY_NER} result: speed_ratio is null")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit(main())

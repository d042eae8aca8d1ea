"""scripts/benchmark.py end to end in quick mode on a tiny templated corpus (a subprocess with a
timeout): the JSON report's keys and types, speed_ratio at two thread settings, memory growth while
predicting, loadable models, the Markdown table; and its helpers without a run."""
import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn_crfsuite")

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "benchmark.py"
SYSTEMS = ["twitter_bilstm_ner:seed", "spacy_ner", "crf"]

PEOPLE = ["Carmelo Anthony", "Lady Gaga", "Barack Obama", "Tom Brady", "Adele"]
PLACES = ["New York", "Paris", "Tokyo", "Madison Square Garden", "Boston"]
FRAMES = [
    "{p} is in {l} tonight",
    "omg {p} just landed in {l} !!",
    "@fan saw {p} at {l} http://t.co/q",
    "can't wait for {p} in {l} #live",
    "{l} loves {p}",
]


def _tweet(rnd):
    """(tokens, tags) of one templated tweet with a person and a place."""
    p, l, f = rnd.choice(PEOPLE), rnd.choice(PLACES), rnd.choice(FRAMES)
    words, tags = [], []
    for chunk in f.split():
        if chunk in ("{p}", "{l}"):
            name, label = (p, "person") if chunk == "{p}" else (l, "geo-loc")
            for i, w in enumerate(name.split()):
                words.append(w)
                tags.append(("B-" if i == 0 else "I-") + label)
        else:
            words.append(chunk)
            tags.append("O")
    return words, tags


def _write_conll(path: Path, n: int, rnd) -> None:
    with path.open("w", encoding="utf8") as fh:
        for _ in range(n):
            for w, t in zip(*_tweet(rnd)):
                fh.write(f"{w}\t{t}\n")
            fh.write("\n")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    rnd = random.Random(0)
    conll = tmp / "conll"
    conll.mkdir()
    for split, n in (("train", 40), ("dev", 12), ("test", 12)):
        _write_conll(conll / f"{split}.conll", n, rnd)
    corpus = tmp / "corpus"
    subprocess.run([sys.executable, "-m", "spacy_twitter_ner.conll", str(conll), str(corpus)],
                   check=True, capture_output=True, timeout=120)
    raw = tmp / "tweets.txt"
    raw.write_text("\n".join(" ".join(_tweet(rnd)[0]) for _ in range(50)) + "\n", encoding="utf8")
    out = tmp / "metrics"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [
        sys.executable, str(SCRIPT), "--corpus", "tiny", "--corpus-dir", str(corpus), "--raw", str(raw),
        "--out", str(out), "--training-dir", str(tmp / "training"),
        "--systems", "twitter_bilstm_ner:no_such_config", *SYSTEMS,
        "--quick", "--max-steps", "6", "--eval-frequency", "3", "--threads", "1", "default",
        "--train-threads", "1", "--batch-size", "16",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp, out, proc


def test_json_report(bench_run):
    tmp, out, _ = bench_run
    report = json.loads((out / "benchmark-tiny-quick.json").read_text(encoding="utf8"))
    assert set(report) == set(SYSTEMS) | {"_meta"}
    for system in SYSTEMS:
        r = report[system]
        for key in ("dev_p", "dev_r", "dev_f", "test_p", "test_r", "test_f", "train_seconds",
                    "words_per_second", "peak_rss_mb", "load_rss_mb", "model_mb", "speed_ratio"):
            assert isinstance(r[key], float), (system, key, r[key])
        for key in ("dev_f", "test_f"):
            assert 0.0 <= r[key] <= 1.0
        assert r["words_per_second"] > 0 and r["train_seconds"] > 0 and r["model_mb"] > 0
        assert r["peak_rss_mb"] >= r["load_rss_mb"] > 0
        assert isinstance(r["words_per_second_at"], dict) and list(r["words_per_second_at"]) == ["50"]
        assert isinstance(r["threads"], int) and r["threads"] == 1
        assert Path(r["model_path"]).is_dir()
        assert str(tmp / "training" / "benchmark-tiny-quick") in r["model_path"]
    assert report["spacy_ner"]["speed_ratio"] == 1.0
    # The CRF learns the templates even in quick mode.
    assert report["crf"]["dev_f"] > 0.5
    meta = report["_meta"]
    for key in ("date", "machine", "python", "spacy", "torch", "seed", "quick", "batch_size", "n_tweets"):
        assert key in meta
    assert meta["quick"] is True and meta["batch_size"] == 16 and meta["n_tweets"] == 50
    assert meta["machine"]["cores"] == os.cpu_count()
    assert meta["docs"] == {"train": 40, "dev": 12, "test": 12}
    assert "twitter_bilstm_ner:no_such_config" in meta["skipped"]
    assert "no_such_config.cfg does not exist" in bench_run[2].stdout


def test_thread_settings_and_memory(bench_run):
    """Speed at one thread and at torch's default in the same run, each against spaCy's ner;
    resident-memory growth while predicting; the load and the thread settings in the meta."""
    _, out, _ = bench_run
    report = json.loads((out / "benchmark-tiny-quick.json").read_text(encoding="utf8"))
    meta = report["_meta"]
    assert meta["thread_settings"] == ["1", "default"]
    assert meta["threads_by_setting"]["1"] == [1]
    default_threads = meta["threads_by_setting"]["default"]
    assert len(default_threads) == 1 and default_threads[0] >= 1
    assert set(meta["threads"]) == {1, default_threads[0]}
    assert meta["train_threads"] == 1
    load = meta["load"]
    assert set(load) >= {"loadavg_before", "loadavg_after", "other_cpu_cores", "seconds"}
    assert len(load["loadavg_before"]) == 3 and load["other_cpu_cores"] >= 0
    for system in SYSTEMS:
        r = report[system]
        assert list(r["words_per_second_by_threads"]) == ["1", "default"]
        assert all(v > 0 for v in r["words_per_second_by_threads"].values())
        # the headline figures are the first setting's
        assert r["words_per_second"] == r["words_per_second_by_threads"]["1"]
        assert r["speed_ratio"] == r["speed_ratio_by_threads"]["1"]
        assert r["threads_by_setting"] == {"1": 1, "default": default_threads[0]}
        assert set(r["speed_by_threads"]) == {"1", "default"}
        assert r["other_cpu_cores_by_threads"]["1"] >= 0
        # current RSS (statm) after the warm-up and at the end, not the peak
        assert isinstance(r["rss_growth_mb"], float)
        assert r["rss_growth_mb"] == pytest.approx(r["rss_end_mb"] - r["rss_warm_mb"])
        assert 0 < r["rss_warm_mb"] <= r["peak_rss_mb"] + 1
        assert r["rss_growth_tweets"] == 50
        assert r["rss_growth_mb_by_threads"]["1"] == r["rss_growth_mb"]
        assert isinstance(r["rss_growth_raw_mb"], float)  # the untrimmed difference, for reference
        assert r["rss_growth_raw_mb_by_threads"]["1"] == r["rss_growth_raw_mb"]
        assert r["speed_by_threads"]["1"]["words_per_second"] == r["words_per_second"]
    base = report["spacy_ner"]
    assert base["speed_ratio_by_threads"] == {"1": 1.0, "default": 1.0}
    # null when spaCy's own growth is below 1 MiB (50 tiny tweets): a ratio to a few pages is noise
    assert base["rss_growth_ratio"] == (1.0 if base["rss_growth_mb"] >= 1 else None)
    for system in SYSTEMS:
        r = report[system]
        ratio = r["words_per_second_by_threads"]["default"] / base["words_per_second_by_threads"]["default"]
        assert r["speed_ratio_by_threads"]["default"] == pytest.approx(ratio)
        if base["rss_growth_mb"] >= 1:
            assert r["rss_growth_ratio"] == pytest.approx(r["rss_growth_mb"] / base["rss_growth_mb"])


def test_train_time_is_saved_for_reuse(bench_run):
    tmp, out, _ = bench_run
    report = json.loads((out / "benchmark-tiny-quick.json").read_text(encoding="utf8"))
    bench = _benchmark_module()
    for system in SYSTEMS:
        folder = Path(report[system]["model_path"]).parent
        saved = json.loads((folder / bench.TRAIN_RECORD).read_text(encoding="utf8"))
        assert saved == {"system": system, "train_seconds": pytest.approx(report[system]["train_seconds"])}
        entry = bench.reuse_entry(system, folder, argparse.Namespace(configs_dir=ROOT / "configs"))
        assert entry["reused"] and entry["train_seconds"] == pytest.approx(report[system]["train_seconds"])


def test_train_command_lines_come_from_the_configs(bench_run):
    """The benchmark trains through scripts/commands.py: neither spaCy's ner config nor the
    tutorial's (configs/seed.cfg) uses static vectors, so neither gets --paths.vectors."""
    tmp, _, _ = bench_run
    root = tmp / "training" / "benchmark-tiny-quick"
    for system in ("spacy_ner", "twitter_bilstm_ner-seed"):
        line = (root / system / "train.log").read_text(encoding="utf8").splitlines()[0]
        assert " -m spacy train " in line and "--paths.vectors" not in line, line
        assert "--training.max_steps 6" in line and "--system.seed 0" in line
    spacy_ner = (root / "spacy_ner" / "train.log").read_text(encoding="utf8").splitlines()[0]
    assert "--paths.lexicons" not in spacy_ner


def test_models_load(bench_run):
    import spacy

    import spacy_twitter_ner.baselines.crf  # noqa: F401

    _, out, _ = bench_run
    report = json.loads((out / "benchmark-tiny-quick.json").read_text(encoding="utf8"))
    for system in SYSTEMS:
        nlp = spacy.load(report[system]["model_path"])
        doc = nlp("omg Lady Gaga just landed in Tokyo !!")
        assert [t.text for t in doc][:3] == ["omg", "Lady", "Gaga"]
        assert nlp.tokenizer.__class__.__name__ == "TwitterTokenizer"


def test_markdown_table(bench_run):
    _, out, proc = bench_run
    md = (out / "benchmark-tiny-quick.md").read_text(encoding="utf8")
    header = next(line for line in md.splitlines() if line.startswith("| System |"))
    assert header.startswith("| System | Dev F1 | Test F1 | Words/s (1 thread) | Speed vs spacy ner (1 thread) | "
                             "Words/s (default: ")
    assert ("| RSS growth predicting (held) | RSS growth vs spacy ner | RSS growth (untrimmed) | Train time | "
            "Peak RSS | Model size |") in header
    for system in SYSTEMS:
        assert f"| {system} |" in md
    row = next(line for line in md.splitlines() if line.startswith("| spacy_ner |"))
    assert row.count("1.00x") >= 2 and " MiB |" in row
    assert len(row.split("|")) == len(header.split("|"))
    assert "cores" in md.splitlines()[2] and "default (" in md.splitlines()[2]
    assert "Load: other processes kept" in md


def test_missing_inputs_fail_clearly(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--corpus", "nope", "--corpus-dir", str(tmp_path / "nope"),
         "--raw", str(tmp_path / "raw.txt"), "--out", str(tmp_path / "m")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "Corpus files not found" in proc.stdout and "train.spacy" in proc.stdout


def test_helpers_and_missing_raw(tmp_path):
    """Speed sizes, directory names; a missing raw file is a clear error."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    assert benchmark.resolve_sizes([1000, 10000, 0], 34074) == [1000, 10000, 34074]
    assert benchmark.resolve_sizes([200, 1000], 50) == [50]
    assert benchmark.system_dirname("twitter_bilstm_ner:fast") == "twitter_bilstm_ner-fast"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in ("train", "dev", "test"):
        (corpus / f"{split}.spacy").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--corpus", "x", "--corpus-dir", str(corpus),
         "--raw", str(tmp_path / "raw.txt"), "--out", str(tmp_path / "m")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and "Raw tweets file not found" in proc.stdout


def _benchmark_module():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import benchmark
    finally:
        sys.path.pop(0)
    return benchmark


def test_thread_options(monkeypatch):
    benchmark = _benchmark_module()
    assert benchmark.parse_args(["--corpus", "x"]).threads == ["1", "default"]
    assert benchmark.parse_args(["--corpus", "x", "--threads", "4", "Default"]).threads == ["4", "default"]
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--corpus", "x", "--threads", "0"])
    assert benchmark.setting_threads("default") is None and benchmark.setting_threads("2") == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert benchmark.child_env(1, clear=True)["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in benchmark.child_env(None, clear=True)  # torch's own default
    assert benchmark.child_env(None)["OMP_NUM_THREADS"] == "3"  # training: inherited


def test_ratios_against_spacy_ner():
    benchmark = _benchmark_module()
    results = {
        "spacy_ner": {"words_per_second": 100.0, "words_per_second_at": {"50": 100.0},
                      "words_per_second_by_threads": {"1": 100.0, "default": 200.0},
                      "rss_growth_mb": 10.0, "rss_growth_mb_by_threads": {"1": 10.0, "default": 0.5}},
        "ours": {"words_per_second": 50.0, "words_per_second_at": {"50": 50.0},
                 "words_per_second_by_threads": {"1": 50.0, "default": 300.0},
                 "rss_growth_mb": 25.0, "rss_growth_mb_by_threads": {"1": 25.0, "default": 5.0}},
    }
    benchmark.add_ratios(results)
    ours = results["ours"]
    assert ours["speed_ratio"] == 0.5 and ours["speed_ratio_at"] == {"50": 0.5}
    assert ours["speed_ratio_by_threads"] == {"1": 0.5, "default": 1.5}
    assert ours["rss_growth_ratio"] == 2.5
    assert ours["rss_growth_ratio_by_threads"] == {"1": 2.5, "default": None}  # spaCy grew < 1 MiB
    del results["spacy_ner"]
    benchmark.add_ratios(results)
    assert ours["speed_ratio"] is None and ours["rss_growth_ratio"] is None


def test_rss_and_load_probes():
    benchmark = _benchmark_module()
    before = benchmark._rss_mib()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert benchmark._rss_mib() - before > 50
    del block
    load = benchmark.LoadProbe().read()
    assert load["other_cpu_cores"] >= 0 and len(load["loadavg_before"]) == 3


def test_distilled_train_time_includes_the_teacher_pass(tmp_path):
    """A reused distilled student's train time is its own training plus the teacher pass that
    labelled its tweets; an unfinished pass is refused, a missing one ignored (as --reuse), and a distilled config is never trained
    by the benchmark itself (it needs the teacher's labels)."""
    bench = _benchmark_module()
    folder = tmp_path / "wnut16-distilled"
    folder.mkdir()
    (folder / "train_log.jsonl").write_text(json.dumps({"seconds": 100.0}) + "\n", encoding="utf8")
    summary = tmp_path / "teach-summary.json"
    summary.write_text(json.dumps({"complete": True, "counts": {"seconds": 40.5, "annotated": 7}}), encoding="utf8")
    system = "twitter_bilstm_ner:distilled"
    args = argparse.Namespace(configs_dir=ROOT / "configs", teacher_pass=[f"{system}={summary}"])
    entry = bench.reuse_entry(system, folder, args)
    assert entry["student_seconds"] == 100.0 and entry["teach_seconds"] == 40.5
    assert entry["train_seconds"] == pytest.approx(140.5) and entry["teach_tweets"] == 7
    # a resumed pass: its earlier runs' time counts too
    summary.write_text(json.dumps({"complete": True, "counts": {"seconds": 40.5, "seconds_all_runs": 90.0,
                                                                 "shards_reused": 3, "annotated": 7}}), encoding="utf8")
    assert bench.reuse_entry(system, folder, args)["train_seconds"] == pytest.approx(190.0)
    summary.write_text(json.dumps({"complete": False, "counts": {"seconds": 1.0}}), encoding="utf8")
    with pytest.raises(bench.UsageError, match="not complete"):
        bench.reuse_entry(system, folder, args)
    assert bench.teacher_passes(argparse.Namespace(teacher_pass=[f"{system}={tmp_path / 'nope.json'}"])) == {}
    with pytest.raises(bench.UsageError, match="SYSTEM=FILE"):
        bench.teacher_passes(argparse.Namespace(teacher_pass=[system]))
    plan = argparse.Namespace(reused={})
    assert "spacy project run distill" in bench.skip_reason(system, plan, args)
    assert bench.skip_reason("twitter_bilstm_ner:fast", plan, args) is None

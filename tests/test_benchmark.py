"""scripts/benchmark.py end to end in quick mode on a tiny templated corpus (a subprocess with a
timeout): the JSON report's keys and types, speed_ratio, loadable models, the Markdown table."""
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
        "--quick", "--max-steps", "6", "--eval-frequency", "3", "--threads", "1", "--batch-size", "16",
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


def test_models_load(bench_run):
    import spacy

    import spacy_twitter_ner.crf_baseline  # noqa: F401

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
    assert "| System | Dev F1 | Test F1 | Words/s | Speed vs spacy ner |" in md
    for system in SYSTEMS:
        assert f"| {system} |" in md
    assert "1.00x" in md
    assert "cores" in md.splitlines()[2]


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

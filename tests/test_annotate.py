"""``spacy-twitter-ner annotate``: many files in, one output partition per input partition, the
same records as ``nlp.pipe``, counts that reconcile, resume, and a worker killed mid-job."""
import glob
import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import spacy

from spacy_twitter_ner.cli import annotate as cli
from spacy_twitter_ner.cli.tag import doc_to_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
RAW_TWEETS = os.path.join(ROOT, "..", "shared", "data", "raw_tweets", "tweets.txt")


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_helpers):
    nlp, _, _, _ = tiny_helpers.train_tiny(epochs=8)
    path = tmp_path_factory.mktemp("annotate") / "model"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="session")
def nlp(model_dir):
    return spacy.load(model_dir)


@pytest.fixture(scope="session")
def tweets(tiny_helpers):
    """Real raw tweets when the shared data is there, else template tweets; one line each."""
    if os.path.exists(RAW_TWEETS):
        with open(RAW_TWEETS, "rb") as f:
            lines = f.read().decode("utf-8").split("\n")
        lines = [line.rstrip("\r") for line in lines if "\r" not in line.rstrip("\r")]
    else:
        lines = [t for t, _ in tiny_helpers.tiny_texts(4000, seed=3)]
    return lines[:4000]


def expected_entities(nlp, texts):
    return [doc_to_json(t, d)["entities"] for t, d in zip(texts, nlp.pipe(texts, batch_size=64))]


def same_entities(got, want):
    """Same spans and labels; the same scores up to float noise (a batch's padding differs with
    the partitioning)."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert [(e["text"], e["label"], e["start"], e["end"]) for e in g] == \
            [(e["text"], e["label"], e["start"], e["end"]) for e in w]
        assert [e["score"] for e in g] == pytest.approx([e["score"] for e in w], abs=1e-4)


def read_parts(outdir, stem, ext=".jsonl"):
    files = sorted(glob.glob(os.path.join(str(outdir), f"{stem}.part-*{ext}")))
    records = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            records.extend(json.loads(line) for line in f)
    return files, records


def write_text(path, lines, compress=False):
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if compress:
        data = gzip.compress(data)
    with open(path, "wb") as f:
        f.write(data)


def jsonl_lines(texts, start_id=0):
    return [json.dumps({"id": start_id + i, "text": t, "user": {"name": f"u{i}"}}, ensure_ascii=False)
            for i, t in enumerate(texts)]


def run_main(*args):
    return cli.main([str(a) for a in args])


def summary(outdir):
    with open(os.path.join(str(outdir), "_SUCCESS.json"), encoding="utf-8") as f:
        return json.load(f)


def check_reconciles(s):
    for f in s["files"]:
        assert f["records_in"] == f["records_out"] + f["skipped"], f
    t = s["totals"]
    assert t["records_in"] == t["records_out"] + t["skipped"]


# -- partitions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"a\n", b"a", b"a\nb\nc\nd", b"a\r\nb\r\n\r\nc\r\nd\r\n",
                                  b"\n\n\n\n\n\n", b"x\n" * 1000 + b"tail"])
@pytest.mark.parametrize("size", [1, 2, 3, 7, 5000])
@pytest.mark.parametrize("compress", [False, True])
def test_partitions_cover_every_line_once(tmp_path, data, size, compress):
    from spacy_twitter_ner.batch import readers

    path = tmp_path / ("t.txt.gz" if compress else "t.txt")
    path.write_bytes(gzip.compress(data) if compress else data)
    parts = readers.plan_file(str(path), readers.TEXT, "t", size, "text")
    want = data.decode().split("\n")
    want = [line.rstrip("\r") for line in (want[:-1] if data.endswith(b"\n") or not data else want)]
    got, keys = [], []
    for i, part in enumerate(parts):
        assert part.name == f"t.part-{i:05d}" and 0 <= part.count <= size
        chunk = readers.read_partition(part, "text", readers.STOP)
        got += chunk.texts
        keys += chunk.keys
    assert got == want and keys == list(range(1, len(want) + 1))
    assert len(parts) == max(1, -(-len(want) // size))


# -- in-process (--workers 0) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_inputs(tmp_path_factory, tweets):
    """Plain text (with an empty line), JSON Lines, both gzipped: 400 tweets in 4 files."""
    d = tmp_path_factory.mktemp("mixed")
    texts = {
        "a": tweets[:100] + ["", "Lady Gaga is in Paris tonight 😀"],
        "b": tweets[100:200],
        "c": tweets[200:300],
        "d": tweets[300:400],
    }
    write_text(d / "a.txt", texts["a"])
    write_text(d / "b.jsonl", jsonl_lines(texts["b"]))
    write_text(d / "c.txt.gz", texts["c"], compress=True)
    write_text(d / "d.jsonl.gz", jsonl_lines(texts["d"], 1000), compress=True)
    return d, texts


def test_in_process_equals_nlp_pipe(mixed_inputs, model_dir, nlp, tmp_path, capsys):
    d, texts = mixed_inputs
    out = tmp_path / "out"
    rc = run_main(model_dir, d / "a.txt", d / "*.jsonl", d / "c.txt.gz",
                  d / "d.jsonl.gz", "-o", out, "--workers", 0, "--partition-size", 30)
    assert rc == 0
    for stem, want_texts in texts.items():
        files, records = read_parts(out, stem)
        assert len(files) == -(-len(want_texts) // 30)
        assert [os.path.basename(f) for f in files][0] == f"{stem}.part-00000.jsonl"
        assert [r["text"] for r in records] == want_texts
        same_entities([r["entities"] for r in records], expected_entities(nlp, want_texts))
        if stem in ("a", "c"):  # plain text: text, entities, line number
            assert [r["line"] for r in records] == list(range(1, len(want_texts) + 1))
            assert set(records[0]) == {"text", "entities", "line"}
        else:  # JSON Lines: every original field kept
            first_id = 0 if stem == "b" else 1000
            assert [r["id"] for r in records] == list(range(first_id, first_id + len(want_texts)))
            assert records[0]["user"] == {"name": "u0"}
    s = summary(out)
    check_reconciles(s)
    assert s["totals"]["records_in"] == sum(map(len, texts.values()))
    assert s["totals"]["skipped"] == 0
    assert s["totals"]["words"] > 0
    captured = capsys.readouterr().out
    assert "words/s" in captured
    assert not glob.glob(str(out / ".*tmp*"))


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, tweets):
    d = tmp_path_factory.mktemp("bad")
    good = jsonl_lines(tweets[:20])
    lines = (good[:3] + ['{"id": 3, "text": "broken'] + good[3:6] + ['{"id": 4}', ""]
             + good[6:9] + ['{"text": 17}', "[1, 2]", '{"text": null}'] + good[9:])
    write_text(d / "bad.jsonl", lines)
    with open(d / "bad.txt", "wb") as f:
        f.write(b"fine tweet\nbad \xff byte\nanother fine tweet\n")
    return d, tweets[:20]


def test_skip_mode_counts_reconcile(bad_inputs, model_dir, nlp, tmp_path, capsys):
    d, good_texts = bad_inputs
    out = tmp_path / "out"
    rc = run_main(model_dir, d, "-o", out, "--workers", 0, "--on-error", "skip", "--partition-size", 7)
    assert rc == 0
    err = capsys.readouterr().err
    jsonl = os.path.join(str(d), "bad.jsonl")
    assert f"{jsonl}:4: malformed JSON: Unterminated string" in err
    assert f"{jsonl}:8: no 'text' field" in err
    assert f"{jsonl}:13: field 'text' is a number, not a string" in err
    assert f"{jsonl}:14: expected a JSON object, got an array" in err
    assert f"{jsonl}:15: field 'text' is null, not a string" in err
    assert "bad.txt:2: not valid UTF-8" in err
    assert "Traceback" not in err
    s = summary(out)
    check_reconciles(s)
    files = {os.path.basename(f["input"]): f for f in s["files"]}
    assert files["bad.jsonl"]["records_in"] == 25
    assert files["bad.jsonl"]["skipped"] == 5
    assert files["bad.jsonl"]["records_out"] == 20
    assert files["bad.jsonl"]["blank_lines"] == 1
    assert [e["line"] for e in files["bad.jsonl"]["errors"]] == [4, 8, 13, 14, 15]
    assert (files["bad.txt"]["records_in"], files["bad.txt"]["skipped"]) == (3, 1)
    # bad.jsonl and bad.txt share a stem: their outputs are told apart by the extension
    _, jsonl_records = read_parts(out, "bad_jsonl")
    assert [r["text"] for r in jsonl_records] == good_texts
    same_entities([r["entities"] for r in jsonl_records], expected_entities(nlp, good_texts))
    _, text_records = read_parts(out, "bad_txt")
    assert [(r["line"], r["text"]) for r in text_records] == [(1, "fine tweet"), (3, "another fine tweet")]


def test_stop_mode_names_file_and_line(bad_inputs, model_dir, tmp_path, capsys):
    d, _ = bad_inputs
    out = tmp_path / "out"
    rc = run_main(model_dir, d / "bad.jsonl", "-o", out, "--workers", 0)
    assert rc == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"error: {os.path.join(str(d), 'bad.jsonl')}:4: malformed JSON: Unterminated string" in err
    assert "--on-error skip" in err
    assert not os.path.exists(out / "_SUCCESS.json")


@pytest.mark.parametrize("make_args, message", [
    (lambda d, m: [m, d / "missing.txt"], "missing.txt does not exist"),
    (lambda d, m: [m, d / "*.nothing"], "no files match"),
    (lambda d, m: [d / "no-model", d / "a.txt"], "model"),
    (lambda d, m: [m, d / "broken.txt.gz"], "damaged or truncated gzip"),
])
def test_fatal_input_errors(make_args, message, tmp_path, model_dir, capsys):
    write_text(tmp_path / "a.txt", ["hello"])
    (tmp_path / "broken.txt.gz").write_bytes(gzip.compress(b"x\n" * 1000)[:30])
    rc = run_main(*make_args(tmp_path, model_dir), "-o", tmp_path / "out", "--workers", 0)
    assert rc == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_parquet_in_and_out(tmp_path, model_dir, nlp, tweets):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = tweets[:90]
    table = pa.table({"tweet_id": list(range(90)), "body": texts})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=20)
    want = expected_entities(nlp, texts)
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / f"out-{fmt}"
        rc = run_main(model_dir, tmp_path / "t.parquet", "-o", out, "--workers", 0, "--format", fmt,
                      "--text-field", "body", "--partition-size", 40)
        assert rc == 0
        if fmt == "parquet":
            files = sorted(glob.glob(str(out / "t.part-*.parquet")))
            assert len(files) == 3  # row groups of 20 rows -> partitions of 40, 40 and 10 rows
            rows = [r for f in files for r in pq.read_table(f).to_pylist()]
        else:
            _, rows = read_parts(out, "t")
        assert [r["tweet_id"] for r in rows] == list(range(90))
        same_entities([r["entities"] for r in rows], want)


def test_resume_recomputes_only_missing_partition(mixed_inputs, model_dir, tmp_path, capsys):
    d, _ = mixed_inputs
    out = tmp_path / "out"
    args = (model_dir, d, "-o", out, "--workers", 0, "--partition-size", 40)
    assert run_main(*args) == 0
    first = summary(out)
    outputs = sorted(glob.glob(str(out / "*.part-*.jsonl")))
    content = {p: open(p, "rb").read() for p in outputs}
    stamps = {p: os.stat(p).st_mtime_ns for p in outputs}
    victim = str(out / "b.part-00001.jsonl")
    os.unlink(victim)
    capsys.readouterr()
    time.sleep(0.02)
    assert run_main(*args) == 0
    printed = capsys.readouterr().out
    assert f"resuming: {len(outputs) - 1} of {len(outputs)} partitions" in printed
    assert sorted(glob.glob(str(out / "*.part-*.jsonl"))) == outputs
    for p in outputs:
        assert open(p, "rb").read() == content[p]
        assert (os.stat(p).st_mtime_ns == stamps[p]) == (p != victim)
    second = summary(out)
    assert second["totals"] == dict(first["totals"], partitions_resumed=len(outputs) - 1)
    assert second["this_run"]["partitions"] == 1
    # a different partition size would mix two jobs' partitions: refused
    assert run_main(model_dir, d, "-o", out, "--workers", 0, "--partition-size", 50) == 1
    assert "was not made by this job" in capsys.readouterr().err


# -- Dask ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory, tweets):
    """3,000 raw tweets in three files (plain, JSON Lines, gzip)."""
    d = tmp_path_factory.mktemp("big")
    parts = {"x": tweets[:1000], "y": tweets[1000:2000], "z": tweets[2000:3000]}
    write_text(d / "x.txt", parts["x"])
    write_text(d / "y.jsonl", jsonl_lines(parts["y"]))
    write_text(d / "z.txt.gz", parts["z"], compress=True)
    return d, parts


def check_complete(out, parts, nlp):
    for stem, texts in parts.items():
        _, records = read_parts(out, stem)
        assert [r["text"] for r in records] == texts  # every record once, in order
        same_entities([r["entities"] for r in records], expected_entities(nlp, texts))


def part_pids(out):
    pids = set()
    for p in glob.glob(os.path.join(str(out), "_parts", "*.json")):
        with open(p) as f:
            pids.add(json.load(f)["result"]["pid"])
    return pids


@pytest.mark.slow
def test_local_cluster_two_workers(big_inputs, model_dir, nlp, tmp_path):
    pytest.importorskip("distributed")
    d, parts = big_inputs
    out = tmp_path / "out"
    rc = run_main(model_dir, d, "-o", out, "--workers", 2, "--partition-size", 250, "-q")
    assert rc == 0
    check_complete(out, parts, nlp)
    assert len(part_pids(out)) == 2  # both worker processes did some of the work
    assert os.getpid() not in part_pids(out)
    s = summary(out)
    check_reconciles(s)
    assert s["workers"] == 2 and s["totals"]["partitions"] == 12


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed")
    from distributed import Client

    from spacy_twitter_ner.batch.dask_runner import local_cluster

    cluster = local_cluster(2)
    client = Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


def annotate_subprocess(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "spacy_twitter_ner", "annotate", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=ROOT,
    )


@pytest.mark.slow
def test_worker_killed_mid_job(cluster, tweets, model_dir, nlp, tmp_path):
    from spacy_twitter_ner.batch.tasks import process_info

    cluster, client = cluster
    d = tmp_path / "in"
    d.mkdir()
    parts = {"k1": tweets[:2000], "k2": tweets[2000:4000]}
    for stem, texts in parts.items():
        write_text(d / f"{stem}.txt", texts)
    out = tmp_path / "out"
    n_parts = 40
    proc = annotate_subprocess(model_dir, d, "-o", out, "--scheduler", cluster.scheduler_address,
                               "--partition-size", 100, "-q")
    victim, done_at_kill = None, None
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline:
        done = glob.glob(str(out / "*.part-*.jsonl"))
        busy = [w for w, keys in client.processing().items() if keys] if len(done) >= 2 else []
        if busy:  # a worker with a partition in flight
            victim = client.run(os.getpid, workers=busy[:1])[busy[0]]
            done_at_kill = len(glob.glob(str(out / "*.part-*.jsonl")))
            os.kill(victim, signal.SIGKILL)
            break
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=240)
    assert victim is not None, "the job ended before a worker could be killed"
    assert done_at_kill < n_parts, "the job ended before a worker could be killed"
    assert proc.returncode == 0, stderr.decode()
    files = glob.glob(str(out / "*.part-*.jsonl"))
    assert len(files) == n_parts
    assert proc.pid not in part_pids(out)  # the cluster's workers did the work
    assert not glob.glob(str(out / ".*tmp*"))
    check_complete(out, parts, nlp)
    s = summary(out)
    check_reconciles(s)
    assert s["totals"]["records_out"] == 4000
    # the nanny restarted the killed worker; each live worker loaded the pipeline once
    client.wait_for_workers(2, timeout=60)
    deadline = time.time() + 60
    while time.time() < deadline:
        infos = client.run(process_info)
        if len(infos) == 2 and all(i["loads"] for i in infos.values()):
            break
        time.sleep(0.2)
    assert victim not in {i["pid"] for i in infos.values()}, infos
    assert all(list(i["loads"].values()) == [1] for i in infos.values()), infos
    assert all(i["torch_threads"] == 1 for i in infos.values()), infos


@pytest.mark.slow
def test_stop_mode_on_dask_names_file_and_line(cluster, bad_inputs, model_dir, tmp_path):
    cluster, _ = cluster
    d, _ = bad_inputs
    proc = annotate_subprocess(model_dir, d / "bad.jsonl", "-o", tmp_path / "out",
                               "--scheduler", cluster.scheduler_address)
    _, stderr = proc.communicate(timeout=120)
    err = stderr.decode()
    assert proc.returncode == 1
    assert f"{os.path.join(str(d), 'bad.jsonl')}:4: malformed JSON: Unterminated string" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_model_workers_cannot_load_is_one_line(cluster, mixed_inputs, tmp_path):
    cluster, _ = cluster
    d, _ = mixed_inputs
    bad_model = tmp_path / "model"
    bad_model.mkdir()
    (bad_model / "config.cfg").write_text("[nlp]\n")
    proc = annotate_subprocess(bad_model, d / "a.txt", "-o", tmp_path / "out",
                               "--scheduler", cluster.scheduler_address)
    _, stderr = proc.communicate(timeout=120)
    err = stderr.decode()
    assert proc.returncode == 1
    assert "could not load the pipeline" in err and "visible on every worker" in err
    assert err.count("\n") == 1 and "Traceback" not in err

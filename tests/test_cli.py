"""``python -m spacy_twitter_ner``: JSON Lines out, one object per input line, clear errors."""
import io
import json
import os
import subprocess
import sys

import pytest

from spacy_twitter_ner.cli import tag as cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

LINES = [
    "Lady Gaga is in Paris tonight",
    "",
    "omg Tom Brady just landed in Tokyo !!",
    "   ",
    "@fan saw Adele at Madison Square Garden http://t.co/q 😀",
    "nothing here",
    "Boston loves Barack Obama",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_helpers):
    nlp, _, _, _ = tiny_helpers.train_tiny(epochs=8)
    path = tmp_path_factory.mktemp("cli") / "model"
    nlp.to_disk(path)
    return path


def run_cli(*args, stdin=b"", timeout=120):
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_twitter_ner", *map(str, args)],
        input=stdin, capture_output=True, env=ENV, cwd=ROOT, timeout=timeout,
    )
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", "replace")


def run_main(monkeypatch, *args, stdin=b""):
    """``cli.main`` in this process, with bytes on stdin; returns (rc, stdout text)."""
    fake_in = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    fake_out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake_in)
    monkeypatch.setattr(sys, "stdout", fake_out)
    rc = cli.main([str(a) for a in args])
    fake_out.flush()
    return rc, fake_out.buffer.getvalue().decode("utf-8")


def parse(out):
    assert out.endswith("\n") or out == ""
    return [json.loads(line) for line in out.splitlines()]


def check_records(records, lines):
    assert [r["text"] for r in records] == lines
    for r in records:
        assert set(r) == {"text", "entities"}
        for ent in r["entities"]:
            assert set(ent) == {"text", "label", "start", "end", "score"}
            assert r["text"][ent["start"]:ent["end"]] == ent["text"]
            assert ent["label"] in ("person", "geo-loc")
            assert 0.0 <= ent["score"] <= 1.0
        starts = [e["start"] for e in r["entities"]]
        assert starts == sorted(starts)


def assert_clean_error(rc, err, *needles):
    assert rc == 1, err
    assert "Traceback" not in err
    assert err.startswith("spacy-twitter-ner: error:")
    for needle in needles:
        assert str(needle) in err, err


def test_help():
    rc, out, err = run_cli("--help")
    assert rc == 0
    assert "MODEL" in out and "--output" in out and "--batch-size" in out and "--n-process" in out
    assert cli.main(["--help"]) == 0


def test_usage_error_exit_code():
    assert cli.main([]) == 2
    assert cli.main(["model", "--batch-size", "0"]) == 2


def test_file_input_to_stdout(model_dir, tmp_path):
    src = tmp_path / "tweets.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    rc, out, err = run_cli(model_dir, src, "--batch-size", "2")
    assert rc == 0, err
    assert "Traceback" not in err
    records = parse(out)
    check_records(records, LINES)
    first = records[0]["entities"]
    assert [(e["text"], e["label"], e["start"], e["end"]) for e in first] == [
        ("Lady Gaga", "person", 0, 9), ("Paris", "geo-loc", 16, 21)]
    assert records[1] == {"text": "", "entities": []}
    assert records[3] == {"text": "   ", "entities": []}
    assert any(e["text"] == "Madison Square Garden" for e in records[4]["entities"])


def test_stdin_and_output_file(model_dir, tmp_path, monkeypatch):
    data = ("\r\n".join(LINES)).encode("utf-8")  # CRLF, no final newline
    dest = tmp_path / "out.jsonl"
    rc, out, err = run_cli(model_dir, "--output", dest, "--quiet", stdin=data)
    assert rc == 0, err
    assert out == ""
    records = parse(dest.read_text(encoding="utf-8"))
    check_records(records, LINES)
    # '-' is stdin too, and agrees with the file output
    rc, out = run_main(monkeypatch, model_dir, "-", stdin=data)
    assert rc == 0
    assert parse(out) == records


def test_empty_input_and_only_empty_lines(model_dir, monkeypatch):
    rc, out = run_main(monkeypatch, model_dir, stdin=b"")
    assert rc == 0
    assert out == ""
    rc, out = run_main(monkeypatch, model_dir, stdin=b"\n\n\r\n")
    assert rc == 0
    assert parse(out) == [{"text": "", "entities": []}] * 3


def test_in_process_main_matches_and_odd_lines(model_dir, tmp_path):
    lines = LINES + ["\u2028inside\u2029", "a\x00b\tc", "\ufeffnot a bom here", "x" * 1_100_000]
    src = tmp_path / "odd.txt"
    # a BOM at the start of the file is dropped; later ones are text
    src.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8"))
    dest = tmp_path / "odd.jsonl"
    assert cli.main([str(model_dir), str(src), "-o", str(dest), "-q", "-b", "3"]) == 0
    records = parse(dest.read_text(encoding="utf-8"))
    check_records(records, lines)


def test_missing_model():
    rc, out, err = run_cli("/nonexistent/model/dir", stdin=b"hello\n")
    assert_clean_error(rc, err, "/nonexistent/model/dir", "not found")
    assert out == ""


def test_model_that_fails_to_load(model_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    model = broken / "twitter_bilstm_ner" / "model"
    model.write_bytes(model.read_bytes()[:100])
    rc, out, err = run_cli(broken, stdin=b"hello\n")
    assert_clean_error(rc, err, str(broken), "could not load")
    assert out == ""
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    rc, _, err = run_cli(empty, stdin=b"hello\n")
    assert_clean_error(rc, err, str(empty))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    rc, _, err = run_cli(a_file, stdin=b"hello\n")
    assert_clean_error(rc, err, str(a_file))


def test_missing_input(model_dir, tmp_path):
    missing = tmp_path / "nope.txt"
    rc, out, err = run_cli(model_dir, missing)
    assert_clean_error(rc, err, str(missing), "does not exist")
    assert out == ""
    rc, out, err = run_cli(model_dir, tmp_path)
    assert_clean_error(rc, err, str(tmp_path), "directory")


def test_input_not_utf8(model_dir, tmp_path):
    src = tmp_path / "latin1.txt"
    src.write_bytes("Lady Gaga\nParis\ncaf\u00e9 in Paris\n".encode("latin-1"))
    rc, out, err = run_cli(model_dir, src)
    assert_clean_error(rc, err, str(src), "line 3", "UTF-8")
    assert out == ""
    rc, out, err = run_cli(model_dir, stdin=b"ok\n\xff\xfe\n")
    assert_clean_error(rc, err, "<stdin>", "line 2", "UTF-8")


def test_output_not_writable(model_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Lady Gaga in Paris\n", encoding="utf-8")
    missing_dir = tmp_path / "no" / "such" / "dir" / "out.jsonl"
    rc, out, err = run_cli(model_dir, src, "--output", missing_dir)
    assert_clean_error(rc, err, str(missing_dir), "does not exist")
    rc, out, err = run_cli(model_dir, src, "--output", tmp_path)
    assert_clean_error(rc, err, str(tmp_path), "directory")
    under_file = src / "out.jsonl"
    rc, out, err = run_cli(model_dir, src, "--output", under_file)
    assert_clean_error(rc, err, str(under_file))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_output_dir_read_only(model_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("Lady Gaga in Paris\n", encoding="utf-8")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, out, err = run_cli(model_dir, src, "--output", ro / "out.jsonl")
        assert_clean_error(rc, err, str(ro / "out.jsonl"), "not writable")
    finally:
        ro.chmod(0o755)


def test_check_output_in_process(tmp_path):
    with pytest.raises(cli.CLIError, match="does not exist"):
        cli.check_output(str(tmp_path / "missing" / "x.jsonl"))
    with pytest.raises(cli.CLIError, match="directory"):
        cli.check_output(str(tmp_path))
    cli.check_output(str(tmp_path / "fine.jsonl"))
    cli.check_output("-")


def test_decode_lines_in_process():
    import io

    assert cli.decode_lines(io.BytesIO(b"a\r\nb\n\nc"), "x") == ["a", "b", "", "c"]
    assert cli.decode_lines(io.BytesIO(b"\xef\xbb\xbfa\nb\r"), "x") == ["a", "b"]
    assert cli.decode_lines(io.BytesIO(b""), "x") == []
    with pytest.raises(cli.CLIError, match="x: line 2 is not valid UTF-8"):
        cli.decode_lines(io.BytesIO(b"a\n\xc3(\n"), "x")


def test_n_process(model_dir, tmp_path, monkeypatch):
    src = tmp_path / "tweets.txt"
    lines = LINES * 3
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rc, out, err = run_cli(model_dir, src, "--n-process", "2", "--batch-size", "4", timeout=300)
    assert rc == 0, err
    multi = parse(out)
    rc, out = run_main(monkeypatch, model_dir, src)
    assert rc == 0
    single = parse(out)
    assert [r["text"] for r in multi] == lines
    assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in multi] == [
        [(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in single]


def test_progress_bar_only_for_long_input_on_a_tty(monkeypatch):
    monkeypatch.setattr(cli, "_isatty", lambda stream: True)
    bar = cli._progress(cli.PROGRESS_MIN_LINES * 2, quiet=False)
    assert bar is not None
    bar.close()
    assert cli._progress(cli.PROGRESS_MIN_LINES * 2, quiet=True) is None
    assert cli._progress(5, quiet=False) is None
    monkeypatch.setattr(cli, "_isatty", lambda stream: False)
    assert cli._progress(cli.PROGRESS_MIN_LINES * 2, quiet=False) is None


def test_console_script_installed():
    import shutil

    script = shutil.which("spacy-twitter-ner", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("console script not installed in this environment")
    proc = subprocess.run([script, "--help"], capture_output=True, env=ENV, timeout=60)
    assert proc.returncode == 0 and b"MODEL" in proc.stdout


def test_subcommand_dispatch_keeps_plain_tag_usage(capsys):
    """`spacy-twitter-ner MODEL` and `spacy-twitter-ner tag MODEL` are the same command."""
    from spacy_twitter_ner.cli import main as dispatch

    assert dispatch(["tag", "--help"]) == 0
    assert "Tag named entities" in capsys.readouterr().out
    assert dispatch(["no-such-model-dir"]) == 1
    assert "not found" in capsys.readouterr().err

"""scripts/selftrain_report.py: the self-training summary comes from the files the project's commands
write, and the results block renders it; scripts/train.py records the wall time of a training."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf8")


def _scores(f: float) -> dict:
    return {"ents_p": f + 0.05, "ents_r": f - 0.05, "ents_f": f, "speed": 1000.0}


@pytest.fixture()
def root(tmp_path):
    for config, dev, test, bias in (("accurate", 0.47, 0.44, -1.0), ("accurate-selftrained", 0.48, 0.45, -0.75)):
        _write(tmp_path / "metrics" / f"wnut16-{config}-dev.json", _scores(dev))
        _write(tmp_path / "metrics" / f"wnut16-{config}-test.json", _scores(test))
        _write(tmp_path / "metrics" / f"wnut16-{config}-bias.json", {"chosen": bias})
    log = tmp_path / "training" / "wnut16-accurate" / "train_log.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text('{"step": 150, "seconds": 100}\n{"step": 300, "seconds": 542}\n', encoding="utf8")
    _write(tmp_path / "training" / "wnut16-accurate-selftrained" / "train_log.jsonl", {"seconds": 1353})
    _write(tmp_path / "training" / "wnut16-accurate-selftrained" / "train_time.json", {"train_seconds": 1375.3})
    _write(tmp_path / "assets" / "silver" / "wnut16" / "teach-summary.json",
           {"complete": True, "counts": {"annotated": 25000, "words": 373889, "seconds": 155.6, "seconds_all_runs": 155.6}})
    return tmp_path


def test_report_reads_each_step(root):
    report = load_script("selftrain_report").report("wnut16", root)
    # the teacher has no train_time.json: the log's last record; the student's wall time wins over its log
    assert report["teacher"]["train_seconds"] == 542.0 and report["student"]["train_seconds"] == 1375.3
    assert report["teacher"]["test_f"] == 0.44 and report["student"]["dev_f"] == 0.48
    assert report["student"]["outside_bias"] == -0.75 and report["teach"]["annotated"] == 25000
    assert report["total_seconds"] == round(542.0 + 155.6 + 1375.3, 1)


def test_missing_input_is_named(root):
    (root / "metrics" / "wnut16-accurate-selftrained-test.json").unlink()
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "selftrain_report.py"), "wnut16", "--root", str(root)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "wnut16-accurate-selftrained-test.json" in result.stdout + result.stderr


def test_results_block_shows_the_report(root):
    out = root / "metrics" / "selftrain-wnut16.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "selftrain_report.py"), "wnut16", "--root", str(root)],
                   check=True, capture_output=True)
    assert json.loads(out.read_text())["corpus"] == "wnut16"
    text = load_script("results_table").render(root / "metrics")
    row = next(line for line in text.splitlines() if line.startswith("| wnut16 | 47.0 / 44.0"))
    assert "**48.0 / 45.0**" in row and "25,000" in row
    assert f"= {(542.0 + 155.6 + 1375.3) / 60:.1f} |" in row


def test_train_script_records_wall_time(tmp_path, monkeypatch):
    train = load_script("train")
    out = tmp_path / "training" / "x"
    out.mkdir(parents=True)
    monkeypatch.setattr(train, "build", lambda argv=None: ["python", "-m", "spacy", "train", "c.cfg", "--output", str(out)])
    monkeypatch.setattr(train.subprocess, "run", lambda cmd: subprocess.CompletedProcess(cmd, 0))
    assert train.main([]) == 0
    record = json.loads((out / train.TRAIN_TIME).read_text())
    assert record["train_seconds"] >= 0 and record["command"][-1] == str(out)
    (out / train.TRAIN_TIME).unlink()
    monkeypatch.setattr(train.subprocess, "run", lambda cmd: subprocess.CompletedProcess(cmd, 1))
    assert train.main([]) == 1 and not (out / train.TRAIN_TIME).exists()

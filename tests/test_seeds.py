"""scripts/seeds.py: argument handling, reuse of the model `train` made, and the mean/spread summary.

The `spacy train`/`spacy evaluate` calls are recorded instead of run (training is covered by
test_component's learning tests); each fake evaluation writes the metrics file it was asked for.
"""
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest
from thinc.api import Config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def seeds(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("seeds_script", ROOT / "scripts" / "seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []
    scores = {}

    def fake_run(cmd):
        calls.append(cmd)
        if cmd[2:4] == ["spacy", "evaluate"]:
            out = Path(cmd[cmd.index("--output") + 1])
            model = cmd[4]
            f = scores.setdefault(model, 0.1 * (len(scores) + 1))
            out.write_text(json.dumps({"ents_f": f + (0.01 if out.name.endswith("-dev.json") else 0.0)}))

    monkeypatch.setattr(module, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    return module, calls, tmp_path


def _main(module, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["seeds.py", *args])
    return module.main()


def test_seeds_after_positionals_and_overrides_reach_spacy_train(seeds, monkeypatch):
    module, calls, tmp = seeds
    assert _main(module, monkeypatch, "tiny", "fast", "--seeds", "1", "2", "--training.max_epochs", "3") == 0
    trains = [c for c in calls if c[2:4] == ["spacy", "train"]]
    assert [c[c.index("--system.seed") + 1] for c in trains] == ["1", "2"]
    for cmd in trains:
        assert cmd[-2:] == ["--training.max_epochs", "3"]
        assert "corpus/tiny/train.spacy" in cmd
    summary = json.loads((tmp / "metrics" / "tiny-fast-seeds.json").read_text())
    assert summary["seeds"] == [1, 2]
    assert summary["test_f_mean"] == pytest.approx(statistics.mean(summary["test_f"]))
    assert summary["test_f_std"] == pytest.approx(statistics.stdev(summary["test_f"]))
    assert summary["test_f"][0] != summary["test_f"][1]


def test_existing_metrics_are_not_retrained(seeds, monkeypatch):
    module, calls, tmp = seeds
    for split, f in (("dev", 0.5), ("test", 0.4)):
        (tmp / "metrics" / f"tiny-fast-seed0-{split}.json").write_text(json.dumps({"ents_f": f}))
    _main(module, monkeypatch, "tiny", "fast", "--seeds", "0")
    assert calls == []
    assert json.loads((tmp / "metrics" / "tiny-fast-seeds.json").read_text())["test_f"] == [0.4]


def _trained(tmp: Path, seed: int) -> Path:
    model = tmp / "training" / "tiny-fast" / "model-best"
    model.mkdir(parents=True)
    Config({"system": {"seed": seed}, "paths": {"train": None}}).to_disk(model / "config.cfg")
    return model.parent


def test_reuse_scores_the_model_trained_with_that_seed_only(seeds, monkeypatch):
    module, calls, tmp = seeds
    train_dir = _trained(tmp, seed=0)
    assert module.reusable_model(train_dir, 0) == train_dir / "model-best"
    assert module.reusable_model(train_dir, 1) is None
    assert module.reusable_model(tmp / "nowhere", 0) is None
    _main(module, monkeypatch, "tiny", "fast", "--seeds", "0", "1", "--reuse", str(train_dir))
    trains = [c for c in calls if c[2:4] == ["spacy", "train"]]
    evaluated = [c[4] for c in calls if c[2:4] == ["spacy", "evaluate"]]
    assert [c[c.index("--system.seed") + 1] for c in trains] == ["1"]
    assert evaluated[:2] == [str(train_dir / "model-best")] * 2
    assert evaluated[2:] == [str(Path("training") / "tiny-fast-seed1" / "model-best")] * 2

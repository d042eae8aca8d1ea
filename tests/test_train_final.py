"""scripts/train_final.py: the final fit on train + dev with the epochs and outside_bias the
train-only run chose on dev. `spacy train`, `spacy evaluate` and the ensemble are faked (they
write what the real ones would), so the test checks the choices, the command lines, what is kept
and what is never read."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import srsly
from thinc.api import Config

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
train_final = load_script("train_final")
results_table = load_script("results_table")


def log(path: Path, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(path, [{"epoch": e, "step": s, "score": f} for e, s, f in scores])


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "accurate.cfg", tmp_path / "configs" / "accurate.cfg")
    corpus = tmp_path / "corpus" / "c"
    corpus.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (corpus / f"{split}.spacy").write_bytes(split.encode())
    log(tmp_path / "training" / "c-accurate" / "train_log.jsonl",
        [(0, 0, 0.0), (2, 150, 0.40), (4, 300, 0.47), (6, 450, 0.47), (8, 600, 0.45)])
    (tmp_path / "metrics").mkdir()
    srsly.write_json(tmp_path / "metrics" / "c-accurate-bias.json", {"chosen": -0.5})
    srsly.write_json(tmp_path / "metrics" / "c-accurate-ensemble-bias.json", {"chosen": 0.25})
    srsly.write_json(tmp_path / "metrics" / "c-accurate-test.json", {"ents_f": 0.40})
    return tmp_path


class FakeRun:
    """Stands in for subprocess.run: records each command and writes its outputs."""

    def __init__(self):
        self.calls = []

    def __call__(self, cmd):
        cmd = [str(c) for c in cmd]
        self.calls.append(cmd)
        if cmd[1:4] == ["-m", "spacy", "train"]:
            out = Path(cmd[cmd.index("--output") + 1])
            for name in ("model-best", "model-last"):
                (out / name).mkdir(parents=True, exist_ok=True)
                Config({"components": {"twitter_bilstm_ner": {"outside_bias": 0.0}}}).to_disk(out / name / "config.cfg")
        elif cmd[1:4] == ["-m", "spacy", "evaluate"]:
            model = Path(cmd[4])
            bias = Config().from_disk(model / "config.cfg")["components"]["twitter_bilstm_ner"]["outside_bias"]
            srsly.write_json(cmd[cmd.index("--output") + 1], {"ents_f": 0.5 + bias / 100, "ents_p": 0.6, "ents_r": 0.4})
        elif cmd[1:4] == ["-m", "spacy_twitter_ner", "ensemble"]:
            out = Path(cmd[4])
            out.mkdir(parents=True, exist_ok=True)
            Config({"components": {"twitter_bilstm_ner": {"outside_bias": 0.0}}}).to_disk(out / "config.cfg")
        return SimpleNamespace(returncode=0)

    def trains(self):
        return [c for c in self.calls if c[1:4] == ["-m", "spacy", "train"]]

    def evaluated(self):
        return [c[5] for c in self.calls if c[1:4] == ["-m", "spacy", "evaluate"]]


def test_the_epochs_are_those_of_the_best_dev_evaluation(tmp_path):
    path = tmp_path / "train_log.jsonl"
    log(path, [(0, 0, 0.0), (1, 150, 0.5), (3, 300, 0.6), (4, 450, 0.6), (5, 600, 0.55)])
    chosen = train_final.chosen_epochs(path)
    assert (chosen["epochs"], chosen["best_step"], chosen["best_epoch"]) == (4, 300, 3)  # the first of the equal best
    log(path, [(0, 0, 0.0)])
    with pytest.raises(ValueError, match="no dev evaluation after step 0"):
        train_final.chosen_epochs(path)
    with pytest.raises(ValueError, match="nope.jsonl does not exist: run `spacy project run train`"):
        train_final.chosen_epochs(tmp_path / "nope.jsonl")


def test_each_seed_trains_on_train_and_dev_with_the_dev_choices_and_is_scored_on_test_only(project):
    run = FakeRun()
    assert train_final.main(["c", "--seeds", "0", "1"], run=run) == 0
    trains = run.trains()
    assert len(trains) == 2
    for seed, cmd in zip((0, 1), trains):
        assert cmd[cmd.index("--paths.train") + 1] == str(Path("corpus/c/train+dev"))
        assert cmd[cmd.index("--training.max_epochs") + 1] == "5"  # best at epoch 4 (the first of the two 0.47s)
        assert cmd[cmd.index("--system.seed") + 1] == str(seed)
    assert sorted(p.name for p in (project / "corpus" / "c" / "train+dev").iterdir()) == ["dev.spacy", "train.spacy"]
    assert (project / "corpus" / "c" / "train+dev" / "dev.spacy").read_bytes() == b"dev"
    # only test is scored, never dev
    assert set(run.evaluated()) == {str(Path("corpus/c/test.spacy"))}
    for out in ("c-accurate-final", "c-accurate-final-seed1"):
        model = project / "training" / out
        assert not (model / "model-best").exists() and not (model / "model-last").exists()
        cfg = Config().from_disk(model / "model-final" / "config.cfg")
        assert cfg["components"]["twitter_bilstm_ner"]["outside_bias"] == -0.5
    ensemble = Config().from_disk(project / "training" / "c-accurate-final-ensemble" / "model-final" / "config.cfg")
    assert ensemble["components"]["twitter_bilstm_ner"]["outside_bias"] == 0.25
    summary = srsly.read_json(project / "metrics" / "c-accurate-final.json")
    assert summary["epochs"] == 5 and summary["outside_bias"] == -0.5
    assert summary["seeds"]["0"]["test"]["f"] == pytest.approx(0.495)
    assert summary["ensemble"]["test"]["f"] == pytest.approx(0.5025)
    assert summary["ensemble"]["members"] == [str(Path("training/c-accurate-final/model-final")),
                                              str(Path("training/c-accurate-final-seed1/model-final"))]
    assert summary["train_only_test_f"] == {"seed0": 0.40, "ensemble": None}
    assert (project / "metrics" / "c-accurate-final-seed1-test.json").is_file()

    # a rerun reuses the seeds; a new bias on dev retrains them
    again = FakeRun()
    assert train_final.main(["c", "--seeds", "0", "1"], run=again) == 0
    assert again.trains() == [] and not any("ensemble" in c for c in again.calls)
    assert srsly.read_json(project / "metrics" / "c-accurate-final.json")["ensemble"]["test"]["f"] == pytest.approx(0.5025)
    # a run of one of those seeds keeps the ensemble's record
    assert train_final.main(["c", "--seeds", "0"], run=FakeRun()) == 0
    assert srsly.read_json(project / "metrics" / "c-accurate-final.json")["ensemble"]["test"]["f"] == pytest.approx(0.5025)
    srsly.write_json(project / "metrics" / "c-accurate-bias.json", {"chosen": 0.0})
    third = FakeRun()
    assert train_final.main(["c", "--seeds", "0"], run=third) == 0
    assert len(third.trains()) == 1
    # so does an edited config
    unchanged = FakeRun()
    assert train_final.main(["c", "--seeds", "0"], run=unchanged) == 0 and unchanged.trains() == []
    with open(project / "configs" / "accurate.cfg", "a", encoding="utf8") as f:
        f.write("\n")
    fourth = FakeRun()
    assert train_final.main(["c", "--seeds", "0"], run=fourth) == 0
    assert len(fourth.trains()) == 1


def printed(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())  # wasabi wraps long messages


def test_missing_choices_are_named(project, capsys):
    (project / "metrics" / "c-accurate-ensemble-bias.json").unlink()
    assert train_final.main(["c", "--seeds", "0", "1"], run=FakeRun()) == 1
    assert "c-accurate-ensemble-bias.json does not exist: run `spacy project run tune`" in printed(capsys)
    (project / "metrics" / "c-accurate-bias.json").unlink()
    assert train_final.main(["c"], run=FakeRun()) == 1
    assert "c-accurate-bias.json does not exist" in printed(capsys)
    with pytest.raises(SystemExit):
        train_final.main(["c", "--seeds", "0", "0"], run=FakeRun())


def test_the_readme_table_shows_train_only_against_train_and_dev(project):
    assert train_final.main(["c", "--seeds", "0", "1"], run=FakeRun()) == 0
    metrics = project / "metrics"
    assert results_table.final_rows(metrics) == []  # "c" is not one of the project's corpora
    data = srsly.read_json(metrics / "c-accurate-final.json")
    data["corpus"] = "wnut16"
    srsly.write_json(metrics / "wnut16-accurate-final.json", data)
    srsly.write_json(metrics / "wnut16-accurate-ensemble-test.json", {"ents_f": 0.46})
    data["train_only_test_f"]["ensemble"] = 0.46
    srsly.write_json(metrics / "wnut16-accurate-final.json", data)
    (row,) = results_table.final_rows(metrics)
    assert row.startswith("| wnut16 | `accurate` | 5 (best dev at epoch 4, step 300) | -0.5 | 40.0 | **49.5** | 46.0 | **50.3** (2 seeds) |")
    peers = "\n".join(results_table.peer_rows(metrics))
    assert "accurate (fine-tuned MiniLM + Brown clusters + gazetteers), trained on train + dev (`train-final`), seed 0 | - | 49.5 | - |" in peers
    assert "trained on train + dev (`train-final`), ensemble of seeds | - | 50.3 | - |" in peers
    assert "Final fit on train + dev" in results_table.render(metrics)

"""scripts/seeds.py: argument handling, reuse of the model `train` made, and the mean/spread summary;
scripts/commands.py, the one builder of the `spacy train`/`spacy evaluate` command lines (seeds.py,
train.py, i.e. project.yml's `train`, and benchmark.py), and scripts/train.py.

The `spacy train`/`spacy evaluate` calls are recorded instead of run (training is covered by
test_component's learning tests); each fake evaluation writes the metrics file it was asked for.
"""
import json
import statistics
import sys
from pathlib import Path

import pytest
from thinc.api import Config

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]

# A config that uses all three optional paths, one that declares them but uses none (as
# configs/seed.cfg does with vectors) and one that does not declare them (spaCy's own ner config).
USES_ALL = """
[paths]
train = null
dev = null
train_log = null
lexicons = null
vectors = null

[components]

[components.ner]
gazetteer_dir = ${paths.lexicons}

[training]

[training.logger]
output_file = ${paths.train_log}

[initialize]
vectors = ${paths.vectors}
"""
DECLARES_ONLY = """
[paths]
train = null
dev = null
train_log = null
lexicons = null
vectors = null

[initialize]
vectors = null
"""
DECLARES_NONE = """
[paths]
train = null
dev = null

[initialize]
vectors = null
"""


def _load(name: str):
    return load_script(name)


@pytest.fixture(scope="module")
def commands():
    return _load("commands")


def _write_config(folder: Path, name: str, text: str) -> Path:
    path = folder / "configs" / f"{name}.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf8")
    return path


@pytest.fixture()
def seeds(monkeypatch, tmp_path):
    module = _load("seeds")
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
    _write_config(tmp_path, "fast", USES_ALL)
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


def test_a_reused_model_with_a_tuned_bias_is_scored_as_trained(seeds, monkeypatch):
    module, calls, tmp = seeds
    train_dir = _trained(tmp, seed=0)
    config = Config().from_disk(train_dir / "model-best" / "config.cfg", interpolate=False)
    config["components"] = {"twitter_bilstm_ner": {"factory": "twitter_bilstm_ner", "outside_bias": -0.5}}
    config.to_disk(train_dir / "model-best" / "config.cfg")
    (train_dir / "model-best" / "weights").write_text("w")
    _main(module, monkeypatch, "tiny", "fast", "--seeds", "0", "--reuse", str(train_dir))
    copy = Path("training") / "tiny-fast-seed0" / "model-best"
    evaluated = [c[4] for c in calls if c[2:4] == ["spacy", "evaluate"]]
    assert evaluated == [str(copy)] * 2  # the copy, not the tuned model
    saved = Config().from_disk(copy / "config.cfg", interpolate=False)
    assert saved["components"]["twitter_bilstm_ner"]["outside_bias"] == 0.0
    assert (copy / "weights").read_text() == "w"
    assert Config().from_disk(train_dir / "model-best" / "config.cfg", interpolate=False)[
        "components"]["twitter_bilstm_ner"]["outside_bias"] == -0.5  # the reused model is untouched
    assert json.loads((Path("metrics") / "tiny-fast-seeds.json").read_text())["models"] == [str(copy)]
    # a later run scores nothing again and still lists the copy
    calls.clear()
    _main(module, monkeypatch, "tiny", "fast", "--seeds", "0", "--reuse", str(train_dir))
    assert not calls and json.loads((Path("metrics") / "tiny-fast-seeds.json").read_text())["models"] == [str(copy)]


def test_seed_runs_use_the_shared_command_lines(seeds, monkeypatch):
    module, calls, tmp = seeds
    _main(module, monkeypatch, "tiny", "fast", "--seeds", "3", "--gpu-id", "-1")
    train, dev_eval, test_eval = calls
    out = Path("training") / "tiny-fast-seed3"
    assert train == [sys.executable, "-m", "spacy", "train", str(Path("configs") / "fast.cfg"),
                     "--output", str(out), "--paths.train", "corpus/tiny/train.spacy",
                     "--paths.dev", "corpus/tiny/dev.spacy", "--paths.train_log", str(out / "train_log.jsonl"),
                     "--paths.vectors", "assets/vectors/tiny-minilm-256", "--paths.lexicons", "assets/lexicons",
                     "--system.seed", "3", "--gpu-id", "-1"]
    assert dev_eval == [sys.executable, "-m", "spacy", "evaluate", str(out / "model-best"), "corpus/tiny/dev.spacy",
                        "--output", str(Path("metrics") / "tiny-fast-seed3-dev.json"), "--gold-preproc", "--gpu-id", "-1"]
    assert test_eval[5] == "corpus/tiny/test.spacy" and "--gold-preproc" in test_eval


def test_seed_config_without_vectors_gets_no_vectors(seeds, monkeypatch):
    module, calls, tmp = seeds
    _write_config(tmp, "plain", DECLARES_ONLY)
    _main(module, monkeypatch, "tiny", "plain", "--seeds", "0")
    train = calls[0]
    assert "--paths.vectors" not in train and "--paths.lexicons" not in train and "--paths.train_log" not in train


# ------------------------------------------------------------------------------------------
# scripts/commands.py
# ------------------------------------------------------------------------------------------


def test_optional_paths_follow_the_config(commands, tmp_path):
    kwargs = dict(vectors="v", lexicons="lex", train_log="log.jsonl")
    expected = {"uses": ["--paths.train_log", "--paths.vectors", "--paths.lexicons"], "declares": [], "none": []}
    for name, text in (("uses", USES_ALL), ("declares", DECLARES_ONLY), ("none", DECLARES_NONE)):
        config = _write_config(tmp_path, name, text)
        cmd = commands.train_command(config, tmp_path / "out", "t.spacy", "d.spacy", **kwargs)
        assert [a for a in cmd if a.startswith("--paths.") and a not in ("--paths.train", "--paths.dev")] == \
            expected[name], name
        assert cmd[:7] == [sys.executable, "-m", "spacy", "train", str(config), "--output", str(tmp_path / "out")]
        assert cmd[7:11] == ["--paths.train", "t.spacy", "--paths.dev", "d.spacy"]
    used = commands.train_command(_write_config(tmp_path, "uses", USES_ALL), "o", "t", "d", **kwargs)
    assert used[used.index("--paths.vectors") + 1] == "v" and used[used.index("--paths.lexicons") + 1] == "lex"
    # not given: not passed, whatever the config declares
    bare = commands.train_command(_write_config(tmp_path, "uses", USES_ALL), "o", "t", "d")
    assert not any(a in bare for a in ("--paths.vectors", "--paths.lexicons", "--paths.train_log"))


def test_the_label_does_not_matter_only_the_config(commands, tmp_path):
    """The same system name with a config that uses vectors or not: the config decides."""
    for text, has_vectors in ((USES_ALL, True), (DECLARES_ONLY, False)):
        config = _write_config(tmp_path, "twitter_bilstm_ner", text)
        cmd = commands.train_command(config, "o", "t", "d", vectors="v", lexicons="l")
        assert ("--paths.vectors" in cmd) is has_vectors


def test_project_configs(commands):
    """The shipped configs: fast and default load the static vectors, the tutorial's does not;
    all write a training log."""
    for name, vectors in (("fast", True), ("default", True), ("seed", False)):
        used = commands.used_paths(ROOT / "configs" / f"{name}.cfg")
        assert ("vectors" in used) is vectors, name
        assert "train_log" in used, name


def test_seed_gpu_and_overrides_pass_through(commands, tmp_path):
    config = _write_config(tmp_path, "uses", USES_ALL)
    cmd = commands.train_command(config, "o", "t", "d", seed=7, gpu_id=0,
                                 overrides=["--training.max_epochs", "3", "--nlp.batch_size", "8"])
    assert cmd[-8:] == ["--system.seed", "7", "--gpu-id", "0", "--training.max_epochs", "3", "--nlp.batch_size", "8"]
    no_seed = commands.train_command(config, "o", "t", "d")
    assert "--system.seed" not in no_seed and no_seed[-2:] == ["--gpu-id", "-1"]


def test_missing_config_is_a_clear_error(commands, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.cfg"):
        commands.train_command(tmp_path / "nope.cfg", "o", "t", "d")


def test_evaluate_command(commands):
    assert commands.evaluate_command("m/model-best", "corpus/x/test.spacy", "metrics/x.json", gpu_id=1) == [
        sys.executable, "-m", "spacy", "evaluate", "m/model-best", "corpus/x/test.spacy",
        "--output", "metrics/x.json", "--gold-preproc", "--gpu-id", "1"]


def test_project_paths(commands):
    p = commands.project_paths("wnut17", "fast")
    assert (p.config, p.train, p.dev, p.test) == (
        Path("configs/fast.cfg"), Path("corpus/wnut17/train.spacy"), Path("corpus/wnut17/dev.spacy"),
        Path("corpus/wnut17/test.spacy"))
    assert (p.vectors, p.lexicons) == (Path("assets/vectors/wnut17-minilm-256"), Path("assets/lexicons"))
    assert (p.output, p.model, p.train_log) == (
        Path("training/wnut17-fast"), Path("training/wnut17-fast/model-best"),
        Path("training/wnut17-fast/train_log.jsonl"))
    assert (p.dev_metrics, p.test_metrics, p.seeds_metrics) == (
        Path("metrics/wnut17-fast-dev.json"), Path("metrics/wnut17-fast-test.json"),
        Path("metrics/wnut17-fast-seeds.json"))
    s = commands.project_paths("wnut17", "fast", suffix="-seed2")
    assert s.config == p.config and s.output == Path("training/wnut17-fast-seed2")
    assert s.test_metrics == Path("metrics/wnut17-fast-seed2-test.json") and s.seeds_metrics == p.seeds_metrics


def test_train_script_builds_the_project_train_line(monkeypatch, tmp_path):
    """scripts/train.py (project.yml's `train`): the same line the project wrote inline before,
    overrides last; a missing config stops it before spacy."""
    train = _load("train")
    monkeypatch.chdir(tmp_path)
    _write_config(tmp_path, "fast", USES_ALL)
    cmd = train.build(["wnut16", "fast", "--seed", "1", "--gpu-id", "-1", "--training.max_epochs", "3"])
    out = Path("training") / "wnut16-fast"
    assert cmd == [sys.executable, "-m", "spacy", "train", str(Path("configs") / "fast.cfg"), "--output", str(out),
                   "--paths.train", "corpus/wnut16/train.spacy", "--paths.dev", "corpus/wnut16/dev.spacy",
                   "--paths.train_log", str(out / "train_log.jsonl"),
                   "--paths.vectors", "assets/vectors/wnut16-minilm-256", "--paths.lexicons", "assets/lexicons",
                   "--system.seed", "1", "--gpu-id", "-1", "--training.max_epochs", "3"]
    with pytest.raises(SystemExit):
        train.build(["wnut16", "nope"])


def test_silver_is_passed_only_after_a_finished_teacher_pass(commands, tmp_path):
    """configs/default.cfg can distil: the project passes assets/silver/<corpus> once a teacher
    pass finished there, and trains on gold alone before (no error); an explicit override wins."""
    import json

    paths = commands.project_paths("mine", "default", root=tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "default.cfg").write_text((ROOT / "configs" / "default.cfg").read_text())
    assert "silver" in commands.used_paths(paths.config)
    assert "--paths.silver" not in commands.project_train_command(paths)
    paths.silver.mkdir(parents=True)
    summary = paths.silver / commands.TEACH_SUMMARY
    summary.write_text(json.dumps({"complete": False}))
    assert "--paths.silver" not in commands.project_train_command(paths)  # unfinished
    summary.write_text(json.dumps({"complete": True}))
    cmd = commands.project_train_command(paths)
    assert cmd[cmd.index("--paths.silver") + 1] == str(paths.silver)
    mine = commands.project_train_command(paths, overrides=["--paths.silver", "elsewhere"])
    assert mine.count("--paths.silver") == 1 and mine[-1] == "elsewhere"
    # a config without [paths] silver never gets it
    fast = commands.project_paths("mine", "fast", root=tmp_path)
    (tmp_path / "configs" / "fast.cfg").write_text((ROOT / "configs" / "fast.cfg").read_text())
    assert "--paths.silver" not in commands.project_train_command(fast)


def test_reuse_takes_several_directories_each_matched_to_its_seed(seeds, monkeypatch):
    module, calls, tmp = seeds
    train_dir = _trained(tmp, seed=0)
    other = tmp / "training" / "levers" / "tiny-edit-seed2" / "model-best"
    other.mkdir(parents=True)
    Config({"system": {"seed": 2}, "paths": {"train": None}}).to_disk(other / "config.cfg")
    assert module.reusable_model([train_dir, other.parent], 2) == other
    assert module.reusable_model([train_dir, other.parent], 1) is None
    _main(module, monkeypatch, "tiny", "fast", "--seeds", "0", "1", "2", "--reuse", str(train_dir), str(other.parent))
    trains = [c for c in calls if c[2:4] == ["spacy", "train"]]
    evaluated = [c[4] for c in calls if c[2:4] == ["spacy", "evaluate"]]
    assert [c[c.index("--system.seed") + 1] for c in trains] == ["1"]  # only the seed no directory has
    assert evaluated[:2] == [str(train_dir / "model-best")] * 2
    assert evaluated[-2:] == [str(other)] * 2
    summary = json.loads((tmp / "metrics" / "tiny-fast-seeds.json").read_text())
    assert summary["models"][0] == str(train_dir / "model-best") and summary["models"][2] == str(other)

"""scripts/levers.py: candidate edits of the accurate profile (configs/levers.json), one training
per candidate, dev F1 as trained and tuned written to metrics/levers-<corpus>.json beside the
profile's own; and its README table (scripts/results_table.py). `spacy train` and the bias tuning
are faked: the fake model's dev score says which edits its config had, so the test checks that
each candidate's config really carried its edit and nothing else."""
import json
import subprocess
from pathlib import Path

import pytest
from thinc.api import Config

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("components", "twitter_bilstm_ner", "model", "features")

levers = load_script("levers")
results_table = load_script("results_table")
commands = load_script("commands")


def flat(cfg, prefix=""):
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def test_each_shipped_candidate_edits_only_its_own_keys_of_the_profile():
    base = Config().from_disk(ROOT / "configs" / "accurate.cfg", interpolate=False)
    found = levers.read_levers(ROOT / "configs" / "levers.json")
    assert found
    before = flat(base)
    for name, lever in found.items():
        cfg = levers.apply_lever(base, lever, name)
        # it survives the round trip to disk that the script makes
        after = flat(Config().from_str(cfg.to_str(interpolate=False), interpolate=False))
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        assert changed == set(lever.get("set", {})) | set(lever.get("extend", {})), name
        for key, items in lever.get("extend", {}).items():
            assert after[key][: len(before[key])] == before[key] and set(items) <= set(after[key])
    assert flat(base) == before  # the base is untouched


def test_bad_candidates_are_named(tmp_path):
    base = Config().from_disk(ROOT / "configs" / "accurate.cfg", interpolate=False)
    with pytest.raises(ValueError, match="'x'.*no section 'components.nope'"):
        levers.apply_lever(base, {"set": {"components.nope.width": 3}}, "x")
    with pytest.raises(ValueError, match="'y'.*dropout is not a list"):
        levers.apply_lever(base, {"extend": {".".join(FEATURES) + ".dropout": [1]}}, "y")
    path = tmp_path / "levers.json"
    path.write_text(json.dumps({"a": {"help": "h", "sett": {}}}))
    with pytest.raises(ValueError, match=r"levers.json: candidate 'a' has unknown keys \['sett'\]"):
        levers.read_levers(path)
    path.write_text(json.dumps({"a": {"help": "nothing"}}))
    with pytest.raises(ValueError, match="'a' changes nothing"):
        levers.read_levers(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        levers.read_levers(path)


LEVERS = {
    "lists": {"help": "more lists", "extend": {".".join(FEATURES) + ".gazetteer_lists": ["bigdict"]}},
    "lr": {"help": "faster MiniLM", "set": {".".join(FEATURES) + ".pretrained.learn_rate_scale": 0.03}},
}


def fake_f(cfg: Config) -> float:
    feats = cfg
    for key in FEATURES:
        feats = feats[key]
    return 0.40 + 0.02 * ("bigdict" in feats["gazetteer_lists"]) + 0.03 * (feats["pretrained"]["learn_rate_scale"] == 0.03)


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "accurate.cfg").write_text((ROOT / "configs" / "accurate.cfg").read_text())
    (tmp_path / "configs" / "levers.json").write_text(json.dumps(LEVERS))
    corpus = tmp_path / "corpus" / "tiny"
    corpus.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (corpus / f"{split}.spacy").write_bytes(b"")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "tiny-accurate-bias.json").write_text(json.dumps({
        "chosen": -0.5, "dev_f": 0.41,
        "grid": [{"bias": -0.5, "p": 0.5, "r": 0.35, "f": 0.41}, {"bias": 0.0, "p": 0.45, "r": 0.36, "f": 0.40}]}))
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        assert "test" not in " ".join(cmd)  # test is never used
        config = Config().from_disk(cmd[cmd.index("train") + 1], interpolate=False)
        out = Path(cmd[cmd.index("--output") + 1]) / "model-best"
        out.mkdir(parents=True, exist_ok=True)
        f = fake_f(config)
        (out / "meta.json").write_text(json.dumps({"performance": {"ents_f": f, "ents_p": f, "ents_r": f}}))
        return subprocess.CompletedProcess(cmd, 0)

    def fake_tune(model, dev, grid, component=None):
        assert Path(dev).name == "dev.spacy" and -1.0 in grid
        f = json.loads((Path(model) / "meta.json").read_text())["performance"]["ents_f"]
        return {"chosen": -0.25, "dev_f": f + 0.01, "grid": [{"bias": -0.25, "p": f, "r": f, "f": f + 0.01},
                                                             {"bias": 0.0, "p": f, "r": f, "f": f}]}

    monkeypatch.setattr(levers.subprocess, "run", fake_run)
    monkeypatch.setattr(levers, "tune", fake_tune)
    return tmp_path, calls


def test_run_trains_each_candidate_once_and_compares_with_the_profile(project):
    root, calls = project
    levers.run(["tiny"])
    assert len(calls) == 2
    saved = json.loads((root / "metrics" / "levers-tiny.json").read_text())
    assert saved["baseline"]["dev"]["f"] == 0.40 and saved["baseline"]["dev_tuned"] == {"bias": -0.5, "f": 0.41}
    assert saved["candidates"]["lists"]["dev"]["f"] == pytest.approx(0.42)
    assert saved["candidates"]["lr"]["dev"]["f"] == pytest.approx(0.43)
    assert saved["candidates"]["lr"]["dev_tuned"] == {"bias": -0.25, "f": pytest.approx(0.44)}
    assert saved["candidates"]["lists"]["edit"]["extend"] == LEVERS["lists"]["extend"]
    assert (root / "training" / "levers" / "tiny-lr" / "config.cfg").is_file()
    # a second run trains nothing (a new help text is taken); a changed edit is trained again; --only picks
    LEVERS["lists"]["help"] = "more name lists"
    (root / "configs" / "levers.json").write_text(json.dumps(LEVERS))
    levers.run(["tiny"])
    assert len(calls) == 2
    assert json.loads((root / "metrics" / "levers-tiny.json").read_text())["candidates"]["lists"]["help"] == "more name lists"
    LEVERS["lr"]["set"][".".join(FEATURES) + ".pretrained.learn_rate_scale"] = 0.02
    (root / "configs" / "levers.json").write_text(json.dumps(LEVERS))
    levers.run(["tiny", "--only", "lr"])
    assert len(calls) == 3
    saved = json.loads((root / "metrics" / "levers-tiny.json").read_text())
    assert saved["candidates"]["lr"]["dev"]["f"] == pytest.approx(0.40)
    assert set(saved["candidates"]) == {"lists", "lr"}
    LEVERS["lr"]["set"][".".join(FEATURES) + ".pretrained.learn_rate_scale"] = 0.03


def test_run_needs_the_profiles_own_tuned_model(project, capsys):
    root, calls = project
    (root / "metrics" / "tiny-accurate-bias.json").unlink()
    with pytest.raises(SystemExit):
        levers.run(["tiny"])
    assert "metrics/tiny-accurate-bias.json does not exist" in capsys.readouterr().err and not calls
    with pytest.raises(SystemExit):
        levers.run(["tiny", "--only", "nope"])
    assert "--only ['nope']: not in" in capsys.readouterr().err


def test_another_seed_compares_with_that_seeds_model_and_keeps_seed_0(project, capsys):
    root, calls = project
    levers.run(["tiny", "--only", "lr"])
    seed0 = (root / "metrics" / "levers-tiny.json").read_text()
    with pytest.raises(SystemExit):  # the `seeds` run's model is not there yet
        levers.run(["tiny", "--only", "lr", "--seed", "1"])
    assert "training/tiny-accurate-seed1/model-best does not exist" in capsys.readouterr().err
    assert len(calls) == 1
    seed_model = root / "training" / "tiny-accurate-seed1" / "model-best"
    seed_model.mkdir(parents=True)
    (seed_model / "config.cfg").write_text("")
    (seed_model / "meta.json").write_text(json.dumps({"performance": {"ents_f": 0.38}}))
    levers.run(["tiny", "--only", "lr", "--seed", "1"])
    assert len(calls) == 2 and calls[-1][calls[-1].index("--system.seed") + 1] == "1"
    assert (root / "training" / "levers" / "tiny-lr-seed1" / "config.cfg").is_file()
    saved = json.loads((root / "metrics" / "levers-tiny-seed1.json").read_text())
    assert saved["settings"]["seed"] == 1
    # the baseline is the seed-1 model, tuned on dev here (the fake tune adds 0.01) and kept
    assert saved["baseline"]["dev"]["f"] == 0.38 and saved["baseline"]["dev_tuned"] == {"bias": -0.25, "f": pytest.approx(0.39)}
    assert json.loads((root / "metrics" / "tiny-accurate-seed1-bias.json").read_text())["chosen"] == -0.25
    assert saved["candidates"]["lr"]["dev_tuned"]["f"] == pytest.approx(0.44)
    assert (root / "metrics" / "levers-tiny.json").read_text() == seed0  # seed 0's results untouched
    with pytest.raises(SystemExit):
        levers.run(["tiny", "--seed", "-1"])
    assert "--seed -1" in capsys.readouterr().err


def test_levers_table_in_the_results(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "levers-wnut16.json").write_text(json.dumps({
        "settings": {"seed": 0},
        "baseline": {"dev": {"f": 0.4566}, "dev_tuned": {"bias": -1.0, "f": 0.4707}},
        "candidates": {"lr": {"help": "faster MiniLM", "dev": {"f": 0.47}, "dev_tuned": {"bias": -0.5, "f": 0.4851}}},
    }))
    (metrics / "wnut16-accurate-seeds.json").write_text(json.dumps({
        "corpus": "wnut16", "config": "accurate", "seeds": [0, 1, 2], "dev_f": [0.479, 0.453, 0.464],
        "test_f": [0.457, 0.446, 0.447], "test_f_mean": 0.45, "test_f_std": 0.006}))
    rows = results_table.lever_rows(metrics)
    assert rows == ["| wnut16 | the profile (`accurate`), its seed-0 model (its seeds 0, 1, 2 in the `seeds` run: dev 45.3 to "
                    "47.9 untuned) | 45.7 | 47.1 (-1.0) | - | 0 |",
                    "| wnut16 | `lr`: faster MiniLM | 47.0 | 48.5 (-0.5) | +1.4 | 0 |"]
    assert "Candidate changes to the accurate profile" in results_table.render(metrics)


def test_levers_table_has_a_row_per_seed_and_a_mean_over_seeds(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    for seed, (ref, cand) in {0: (0.60, 0.61), 1: (0.58, 0.56)}.items():
        suffix = f"-seed{seed}" if seed else ""
        (metrics / f"levers-wnut17{suffix}.json").write_text(json.dumps({
            "settings": {"seed": seed},
            "baseline": {"dev": {"f": ref}, "dev_tuned": {"bias": 0.0, "f": ref}},
            "candidates": {"avg": {"help": "averages", "dev": {"f": cand}, "dev_tuned": {"bias": 0.0, "f": cand}}}}))
    (metrics / "levers-wnut16-course.json").write_text(json.dumps({
        "settings": {"seed": 0}, "baseline": {"dev": {"f": 0.64}, "dev_tuned": {"bias": 0.0, "f": 0.64}},
        "candidates": {"avg": {"help": "averages", "dev": {"f": 0.65}, "dev_tuned": {"bias": 0.0, "f": 0.65}}}}))
    rows = results_table.lever_rows(metrics)
    assert rows == [
        "| wnut16-course | the profile (`accurate`), its seed-0 model | 64.0 | 64.0 (0.0) | - | 0 |",
        "| wnut16-course | `avg`: averages | 65.0 | 65.0 (0.0) | +1.0 | 0 |",
        "| wnut17 | the profile (`accurate`), its seed-0 model | 60.0 | 60.0 (0.0) | - | 0 |",
        "| wnut17 | `avg`: averages | 61.0 | 61.0 (0.0) | +1.0 | 0 |",
        "| wnut17 | the profile (`accurate`), its seed-1 model (the `seeds` run's) | 58.0 | 58.0 (0.0) | - | 1 |",
        "| wnut17 | `avg`: averages | 56.0 | 56.0 (0.0) | -2.0 | 1 |",
        "| wnut17 | `avg`, mean over its seeds | - | - | **-0.5** | 0, 1 |",
    ]


def test_results_against_another_version_of_the_profile_are_kept_apart(project, capsys):
    """Once the profile changes (it adopted a candidate, say), new results are not mixed with the
    old ones, which are kept under the old profile's digest, not overwritten."""
    root, calls = project
    levers.run(["tiny", "--only", "lr"])
    first = json.loads((root / "metrics" / "levers-tiny.json").read_text())
    old_digest = first["settings"]["config_sha256"]
    assert old_digest == commands.config_digest(root / "configs" / "accurate.cfg")
    cfg = root / "configs" / "accurate.cfg"
    cfg.write_text("# a comment changes nothing\n" + cfg.read_text())
    levers.run(["tiny", "--only", "lr"])  # same settings: skipped, nothing archived
    assert len(calls) == 1 and not list((root / "metrics").glob("levers-tiny-profile-*.json"))
    cfg.write_text(cfg.read_text().replace("use_averages = true", "use_averages = false"))
    levers.run(["tiny", "--only", "lists"])
    assert len(calls) == 2
    archived = root / "metrics" / f"levers-tiny-profile-{old_digest[:12]}.json"
    assert json.loads(archived.read_text()) == first
    assert f"kept as {archived.relative_to(root)}" in capsys.readouterr().out.replace("\n", " ")
    now = json.loads((root / "metrics" / "levers-tiny.json").read_text())
    assert set(now["candidates"]) == {"lists"} and now["settings"]["config_sha256"] != old_digest
    assert [seed for seed, _ in results_table.lever_files(root / "metrics", "tiny")] == [0]  # the table reads today's only


def test_a_candidate_the_profile_already_has_is_not_trained(project, capsys):
    root, calls = project
    (root / "configs" / "levers.json").write_text(json.dumps({
        "adopted": {"help": "already in", "set": {"training.optimizer.use_averages": True}}, **LEVERS}))
    levers.run(["tiny", "--only", "adopted"])
    assert not calls and "adopted: configs/accurate.cfg already has this edit" in capsys.readouterr().out.replace("\n", " ")
    assert not (root / "metrics" / "levers-tiny.json").exists()
    levers.run(["tiny"])
    assert len(calls) == 2
    assert set(json.loads((root / "metrics" / "levers-tiny.json").read_text())["candidates"]) == {"lists", "lr"}


def test_levers_table_marks_files_made_against_an_older_profile(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "levers-wnut16.json").write_text(json.dumps({
        "settings": {"seed": 0, "config_sha256": "ab" * 32},
        "baseline": {"dev": {"f": 0.4566}, "dev_tuned": {"bias": -1.0, "f": 0.4707}},
        "candidates": {"lr": {"help": "faster MiniLM", "dev": {"f": 0.47}, "dev_tuned": {"bias": -0.5, "f": 0.4851}}},
    }))
    (metrics / "wnut16-accurate-seeds.json").write_text(json.dumps({
        "seeds": [0, 1, 2], "dev_f": [0.479, 0.453, 0.464], "test_f": [0.457, 0.446, 0.447]}))
    assert results_table.lever_rows(metrics, "cd" * 32)[0] == (
        "| wnut16 | the profile (`accurate`) as it was then (config sha256 abababababab, not today's), its seed-0 "
        "model | 45.7 | 47.1 (-1.0) | - | 0 |")
    assert results_table.lever_rows(metrics, "ab" * 32)[0].startswith(
        "| wnut16 | the profile (`accurate`), its seed-0 model (its seeds 0, 1, 2")
    (metrics / "wnut16-accurate-seeds.json").unlink()
    profile = tmp_path / "accurate.cfg"
    profile.write_text((ROOT / "configs" / "accurate.cfg").read_text())
    assert "as it was then" in results_table.render(metrics, profile)

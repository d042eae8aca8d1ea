"""scripts/ablation.py: each knowledge source switched off in the config, one training per variant,
dev F1 of each written to metrics/ablation-<corpus>.json; and its README table
(scripts/results_table.py). `spacy train` is faked: it writes a model-best whose dev score says
which sources its config had, so the test checks that each variant really lost its source."""
import json
import subprocess
from pathlib import Path

import pytest
from thinc.api import Config

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]


ablation = load_script("ablation")
results_table = load_script("results_table")
# What each source is worth in the fake trainer (dev F1 points out of 1).
WORTH = {"transformer": 0.05, "spacy_pipeline": 0.08, "clusters": -0.01, "gazetteer": 0.02}


def test_accurate_frozen_is_accurate_md_without_en_core_web_md():
    md = Config().from_disk(ROOT / "configs" / "accurate-md.cfg", interpolate=False)
    accurate = Config().from_disk(ROOT / "configs" / "accurate-frozen.cfg", interpolate=False)
    assert ablation.without(md, ["spacy_pipeline"]) == accurate


def test_variants_of_the_accurate_profile_remove_exactly_one_source():
    base = Config().from_disk(ROOT / "configs" / "accurate-md.cfg", interpolate=False)
    todo = ablation.variants(base, ablation.SOURCES)
    assert list(todo) == ["all", "-transformer", "-spacy_pipeline", "-clusters", "-gazetteer"]
    for name, removed in todo.items():
        cfg = ablation.without(base, removed)
        have = {s for s in ablation.SOURCES if ablation.has_source(cfg, s)}
        assert have == set(ablation.SOURCES) - set(removed), name
        # nothing else changes
        rest = Config().from_str(cfg.to_str(), interpolate=False)
        assert rest["training"] == base["training"] and rest["components"]["twitter_bilstm_ner"]["model"]["encoder"] == \
            base["components"]["twitter_bilstm_ner"]["model"]["encoder"]
    assert ablation.has_source(base, "transformer")  # the base is untouched


def test_removing_every_knowledge_block_drops_the_list():
    base = Config().from_disk(ROOT / "configs" / "accurate-md.cfg", interpolate=False)
    cfg = ablation.without(base, ["spacy_pipeline", "clusters"])
    assert "knowledge" not in cfg["components"]["twitter_bilstm_ner"]["model"]["features"]
    with pytest.raises(ValueError, match="no clusters"):
        ablation.without(cfg, ["clusters"])
    with pytest.raises(ValueError, match="does not use"):
        ablation.variants(cfg, ["clusters"])


@pytest.fixture()
def project(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "accurate-md.cfg").write_text((ROOT / "configs" / "accurate-md.cfg").read_text())
    corpus = tmp_path / "corpus" / "tiny"
    corpus.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (corpus / f"{split}.spacy").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_run(cmd, *args, **kwargs):
        calls.append(cmd)
        config = Config().from_disk(cmd[cmd.index("train") + 1], interpolate=False)
        assert "test" not in " ".join(cmd)  # test is never used
        out = Path(cmd[cmd.index("--output") + 1]) / "model-best"
        out.mkdir(parents=True, exist_ok=True)
        f = 0.3 + sum(w for s, w in WORTH.items() if ablation.has_source(config, s))
        (out / "meta.json").write_text(json.dumps({"performance": {"ents_f": f, "ents_p": f, "ents_r": f}}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(ablation.subprocess, "run", fake_run)
    return tmp_path, calls


def test_run_writes_each_variants_dev_f1_and_resumes(project):
    root, calls = project
    results = ablation.run(["tiny", "--max-epochs", "2"])
    assert len(calls) == 5 and all(c[c.index("--training.max_epochs") + 1] == "2" for c in calls)
    saved = json.loads((root / "metrics" / "ablation-tiny.json").read_text())
    assert set(saved["variants"]) == set(results["variants"]) == {"all", *(f"-{s}" for s in WORTH)}
    full = saved["variants"]["all"]["dev"]["f"]
    assert full == pytest.approx(0.3 + sum(WORTH.values()))
    for source, worth in WORTH.items():
        assert saved["variants"][f"-{source}"]["dev"]["f"] == pytest.approx(full - worth)
        assert saved["variants"][f"-{source}"]["removed"] == [source]
    assert saved["settings"]["max_epochs"] == 2 and saved["split"] == "dev"
    # a second run trains nothing; other settings start again
    ablation.run(["tiny", "--max-epochs", "2"])
    assert len(calls) == 5
    ablation.run(["tiny", "--max-epochs", "3", "--sources", "clusters"])
    assert len(calls) == 7
    assert set(json.loads((root / "metrics" / "ablation-tiny.json").read_text())["variants"]) == {"all", "-clusters"}


def test_run_rejects_a_missing_corpus(project, capsys):
    with pytest.raises(SystemExit):
        ablation.run(["nope"])
    assert "corpus/nope/train.spacy does not exist" in capsys.readouterr().err


def test_ablation_table_in_the_results(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "ablation-wnut16.json").write_text(json.dumps({
        "settings": {"max_epochs": 8, "seed": 0},
        "variants": {"all": {"dev": {"f": 0.45}}, "-transformer": {"dev": {"f": 0.43}},
                     "-spacy_pipeline": {"dev": {"f": 0.40}}, "-clusters": {"dev": {"f": 0.456}}},
    }))
    rows = results_table.ablation_rows(metrics)
    assert rows == ["| wnut16 | 45.0 | -2.0 | -5.0 | +0.6 | - | 8 | 0 |"]
    assert "dev F1, all sources" in results_table.render(metrics)

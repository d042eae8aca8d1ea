"""scripts/distill_recipes.py: each student recipe is configs/distilled.cfg with exactly its
settings (clusters on/off, word dropout, soft or hard targets), and the recipe that
configs/distilled.cfg holds is one of them."""
from pathlib import Path

import pytest
from spacy.util import load_model_from_config
from thinc.api import Config

from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
recipes = load_script("distill_recipes")

BASE = Config().from_disk(ROOT / "configs" / "distilled.cfg", interpolate=False)


def _features(cfg):
    node = cfg
    for key in recipes.FEATURES:
        node = node[key]
    return node


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_each_recipe_has_exactly_its_settings(name):
    settings = recipes.RECIPES[name]
    cfg = recipes.recipe_config(BASE, settings)
    feats = _features(cfg)
    has_clusters = "clusters" in (feats.get("knowledge") or {}).get("*", {})
    assert has_clusters == settings["clusters"]
    assert feats["word_dropout"] == settings["word_dropout"]
    assert cfg["corpora"]["train"]["soft"] == settings["soft"]
    assert cfg["training"]["max_steps"] == settings["max_steps"]
    assert cfg["components"]["twitter_bilstm_ner"]["model"]["encoder"]["hidden"] == settings["hidden"]
    assert cfg["training"]["optimizer"]["use_averages"] == settings.get("averages", False)
    assert feats.get("word_dropout_knowledge", False) == settings.get("knowledge_dropout", False)
    assert feats["pretrained"].get("subwords", False) == settings.get("subwords", False)
    assert feats["pretrained"].get("subword_dropout", 0.0) == settings.get("subword_dropout", 0.0)
    # everything else is the base config's
    rest = Config().from_str(cfg.to_str(), interpolate=False)
    base = Config().from_str(BASE.to_str(), interpolate=False)
    for c in (rest, base):
        _features(c).pop("knowledge", None)
        _features(c).pop("word_dropout", None)
        _features(c).pop("word_dropout_knowledge", None)
        _features(c)["pretrained"].pop("subwords", None)
        _features(c)["pretrained"].pop("subword_dropout", None)
        c["corpora"]["train"].pop("soft")
        c["training"].pop("max_steps")
        c["components"]["twitter_bilstm_ner"]["model"]["encoder"].pop("hidden")
        c["training"]["optimizer"].pop("use_averages")
    assert rest == base


def test_recipes_round_trip_and_build():
    """Switching clusters off then on again gives the clusters recipe back, and the result is a
    config spaCy can build (the block is a valid LexemeClusters.v1)."""
    off = recipes.recipe_config(BASE, recipes.RECIPES["no-clusters"])
    assert "knowledge" not in _features(off)
    on = recipes.recipe_config(off, recipes.RECIPES["clusters"])
    assert on == recipes.recipe_config(BASE, recipes.RECIPES["clusters"])
    cfg = Config().from_str(on.to_str(), interpolate=False)
    cfg["paths"]["lexicons"] = None
    _features(cfg)["gazetteer_lists"] = []
    nlp = load_model_from_config(cfg, auto_fill=True, validate=True)
    assert "twitter_bilstm_ner" in nlp.pipe_names


def test_configs_distilled_is_one_of_the_recipes():
    feats = _features(BASE)
    settings = {
        "clusters": "clusters" in (feats.get("knowledge") or {}).get("*", {}),
        "word_dropout": feats.get("word_dropout", 0.0),
        "soft": BASE["corpora"]["train"]["soft"],
        "max_steps": BASE["training"]["max_steps"],
        "hidden": BASE["components"]["twitter_bilstm_ner"]["model"]["encoder"]["hidden"],
        "averages": BASE["training"]["optimizer"]["use_averages"],
        "knowledge_dropout": feats.get("word_dropout_knowledge", False),
        "subwords": feats["pretrained"].get("subwords", False),
        "subword_dropout": feats["pretrained"].get("subword_dropout", False),
    }
    matches = [n for n, s in recipes.RECIPES.items()
               if {k: s.get(k, False) for k in settings} == settings and s["vectors"] in ("all", "sub")]
    assert matches, f"configs/distilled.cfg ({settings}) is none of the recipes"
    assert recipes.recipe_config(BASE, recipes.RECIPES[matches[0]]) == BASE


def test_other_seeds_never_overwrite_seed_zero():
    """Seed 0 keeps the plain names; another seed's runs and summary get their own."""
    from commands import project_paths

    assert recipes.seed_suffix(0) == ""
    plain = project_paths("wnut17", "distilled", suffix=f"-averaged{recipes.seed_suffix(0)}")
    seeded = project_paths("wnut17", "distilled", suffix=f"-averaged{recipes.seed_suffix(1)}")
    assert plain.output.name == "wnut17-distilled-averaged"
    assert seeded.output.name == "wnut17-distilled-averaged-seed1"
    assert seeded.dev_metrics.name == "wnut17-distilled-averaged-seed1-dev.json"

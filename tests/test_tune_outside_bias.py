"""scripts/tune_outside_bias.py: the grid, the choice on dev, and the bias written to the saved
pipeline's config."""
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import tune_outside_bias  # noqa: E402


def test_grid_includes_zero_and_rejects_bad_ranges():
    assert tune_outside_bias.bias_grid(0.5, 1.0, 0.25) == [0.0, 0.5, 0.75, 1.0]
    assert tune_outside_bias.bias_grid(-1.0, 1.0, 1.0) == [-1.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        tune_outside_bias.bias_grid(1.0, 0.0, 0.5)
    with pytest.raises(ValueError):
        tune_outside_bias.bias_grid(0.0, 1.0, 0.0)


def test_choose_best_f_then_nearest_zero():
    rows = [{"bias": -1.0, "f": 0.5}, {"bias": 0.0, "f": 0.6}, {"bias": 1.0, "f": 0.7}, {"bias": 2.0, "f": 0.7}]
    assert tune_outside_bias.choose(rows)["bias"] == 1.0
    assert tune_outside_bias.choose(rows[:2])["bias"] == 0.0


def test_tune_writes_the_dev_best_bias(trained, tmp_path):
    nlp, exs = trained
    model = tmp_path / "model"
    nlp.to_disk(model)
    dev = tmp_path / "dev.spacy"
    DocBin(docs=[eg.reference for eg in exs[:30]]).to_disk(dev)
    out = tmp_path / "bias.json"
    assert tune_outside_bias.main([str(model), str(dev), "--out", str(out), "--write", "--grid", "-2", "2", "1"]) == 0
    result = srsly.read_json(out)
    assert [r["bias"] for r in result["grid"]] == [-2.0, -1.0, 0.0, 1.0, 2.0]
    best = max(r["f"] for r in result["grid"])
    assert result["dev_f"] == best
    assert result["chosen"] in [r["bias"] for r in result["grid"] if r["f"] == best]
    # the grid's F1 at 0 is what spaCy's evaluation of the unchanged pipeline gives
    ner = nlp.get_pipe("twitter_bilstm_ner")
    assert ner.outside_bias == 0.0
    from spacy.training import Example
    from spacy.tokens import Doc
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in eg.reference]), eg.reference) for eg in exs[:30]]
    assert result["dev_f_at_0"] == pytest.approx(nlp.evaluate(examples)["ents_f"])
    assert spacy.load(model).get_pipe("twitter_bilstm_ner").outside_bias == result["chosen"]


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tune_outside_bias.main([str(tmp_path / "nope"), str(tmp_path / "dev.spacy")])
    assert "MODEL" in capsys.readouterr().err

"""Pictures (training curves, tag heat map, displaCy HTML) and the CurveLogger that feeds them."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from spacy_twitter_ner import visualize
from spacy_twitter_ner.visualize import displacy_html, plot_curves, plot_heatmap

from conftest import tiny_corpus, twitter_nlp

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
TWEET = "RT @nyknicks: Carmelo Anthony is heading to Madison Square Garden tonight http://t.co/xyz #NBA"


def _scores(f_person, f_geo):
    per_type = {"person": {"p": f_person, "r": f_person / 2, "f": f_person * 0.7},
                "geo-loc": {"p": f_geo, "r": f_geo, "f": f_geo}}
    return {"ents_p": (f_person + f_geo) / 2, "ents_r": f_person, "ents_f": f_geo, "ents_per_type": per_type}


def _plain(text: str) -> str:
    """wasabi's message without colours and line wrapping."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def _assert_png(path: Path, min_size: int = 10_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert len(data) > min_size, f"{path} is only {len(data)} bytes"


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    nlp, _ = trained
    path = tmp_path_factory.mktemp("viz") / "model"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def docbin_path(tmp_path_factory):
    nlp = twitter_nlp()
    path = tmp_path_factory.mktemp("viz") / "test.spacy"
    docs = [eg.reference for eg in tiny_corpus(nlp, n=15, seed=7)]
    docs.append(nlp.make_doc("no entities here at all"))  # never sampled
    DocBin(docs=docs).to_disk(path)
    return path


def test_plot_curves_from_handwritten_log(tmp_path):
    log = tmp_path / "log.jsonl"
    records = [
        {"epoch": 0, "step": 0, "score": 0.0, "dev": _scores(0.0, 0.0), "train": _scores(0.0, 0.1)},
        {"epoch": 1, "step": 200, "score": 0.4, "dev": _scores(0.3, 0.5), "train": _scores(0.5, 0.6)},
        {"epoch": 2, "step": 400, "score": 0.6, "dev": _scores(0.5, 0.7), "train": _scores(0.8, 0.9)},
    ]
    # a type only seen later, and a null micro score (spaCy writes None when nothing is predicted)
    records[2]["dev"]["ents_per_type"]["company"] = {"p": 0.2, "r": 0.1, "f": 0.13}
    records[0]["dev"]["ents_p"] = None
    srsly.write_jsonl(log, records)
    out = plot_curves(log, tmp_path / "sub" / "curves.png")
    assert out == tmp_path / "sub" / "curves.png"
    _assert_png(out)


def test_plot_curves_empty_log_is_an_error(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("", encoding="utf8")
    with pytest.raises(ValueError, match="no evaluations"):
        plot_curves(log, tmp_path / "curves.png")


def test_plot_heatmap(trained, tmp_path):
    nlp, _ = trained
    out = plot_heatmap(nlp, TWEET, tmp_path / "heatmap.png")
    _assert_png(out)


def test_displacy_html_gold_and_predicted_rows(trained, docbin_path, tmp_path):
    nlp, _ = trained
    out = displacy_html(nlp, docbin_path, tmp_path / "page.html", n=6, seed=1)
    page = out.read_text(encoding="utf8")
    assert page.startswith("<!DOCTYPE html>")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", page, flags=re.S)
    assert len(rows) == 6
    assert "6 tweets, gold (left) and predicted (right)" in page
    n_pred_marked = 0
    for gold, pred in rows:
        assert 'class="entities"' in gold and 'class="entities"' in pred
        assert "<mark" in gold  # only tweets with gold entities are sampled
        assert "person" in gold and "geo-loc" in gold
        n_pred_marked += "<mark" in pred
    assert n_pred_marked >= 4  # the trained model finds entities in most of them
    assert "no entities here at all" not in page
    # more asked for than available: all tweets with entities
    page = displacy_html(nlp, docbin_path, tmp_path / "all.html", n=100).read_text(encoding="utf8")
    assert len(re.findall(r"<tr><td>", page)) == 15


def test_cli_success(model_dir, docbin_path, tmp_path, capsys):
    assert visualize.main(["heatmap", str(model_dir), TWEET, str(tmp_path / "h.png")]) == 0
    _assert_png(tmp_path / "h.png")
    assert visualize.main(["displacy", str(model_dir), str(docbin_path), str(tmp_path / "d.html"), "--n", "3"]) == 0
    assert len(re.findall(r"<tr><td>", (tmp_path / "d.html").read_text(encoding="utf8"))) == 3


def test_cli_missing_log_subprocess(tmp_path):
    missing = tmp_path / "nope" / "train_log.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "spacy_twitter_ner.visualize", "curves", str(missing), str(tmp_path / "c.png")],
        capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp_path,
    )
    assert result.returncode == 1
    assert f"no training log at {missing}" in _plain(result.stdout + result.stderr)
    assert "Traceback" not in result.stderr


def test_cli_missing_model(tmp_path, capsys):
    missing = tmp_path / "no-model"
    assert visualize.main(["heatmap", str(missing), "hi", str(tmp_path / "h.png")]) == 1
    out = _plain(capsys.readouterr().out)
    assert str(missing) in out
    assert not (tmp_path / "h.png").exists()


def test_cli_missing_docbin(model_dir, tmp_path, capsys):
    missing = tmp_path / "test.spacy"
    assert visualize.main(["displacy", str(model_dir), str(missing), str(tmp_path / "d.html")]) == 1
    assert f"no corpus file at {missing}" in _plain(capsys.readouterr().out)
    assert not (tmp_path / "d.html").exists()


# ---------------------------------------------------------------------------------------------
# CurveLogger through `spacy train`

TINY_OVERRIDES = {
    "components.twitter_bilstm_ner.model.features.width": 16,
    "components.twitter_bilstm_ner.model.features.word_dim": 16,
    "components.twitter_bilstm_ner.model.encoder.hidden": 16,
    "training.max_epochs": 3,
    "training.eval_frequency": 5,
    "training.batcher.size": 4,
    "training.logger.train_sample": 10,
}


def test_curve_logger_through_spacy_train(tmp_path):
    config = spacy.util.load_config(ROOT / "configs" / "seed.cfg", interpolate=False)
    for dotted, value in TINY_OVERRIDES.items():
        section = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            section = section[key]
        assert leaf in section, dotted
        section[leaf] = value
    config["training"]["logger"]["output_file"] = "${paths.train_log}"
    config["training"]["logger"]["train_path"] = "${paths.train}"
    config_path = tmp_path / "tiny.cfg"
    config.to_disk(config_path)

    nlp = twitter_nlp()
    train = [eg.reference for eg in tiny_corpus(nlp, n=20, seed=0)]
    dev = [eg.reference for eg in tiny_corpus(nlp, n=8, seed=1)]
    DocBin(docs=train).to_disk(tmp_path / "train.spacy")
    DocBin(docs=dev).to_disk(tmp_path / "dev.spacy")
    log = tmp_path / "logs" / "train_log.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "train", str(config_path), "--output", str(tmp_path / "out"),
         "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy"),
         "--paths.train_log", str(log)],
        capture_output=True, text=True, timeout=240, env=ENV, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in log.read_text(encoding="utf8").splitlines()]
    # 20 tweets in batches of 4 = 5 steps an epoch, 3 epochs; evaluated every 5 steps from step 0
    assert [r["step"] for r in records] == [0, 5, 10]
    for r in records:
        assert set(r) >= {"epoch", "step", "seconds", "words", "losses", "score", "dev", "train"}
        assert 0.0 <= (r["dev"]["ents_f"] or 0.0) <= 1.0
        assert r["dev"]["ents_f"] == pytest.approx(r["score"])  # score weights: ents_f only
        assert set(r["train"]) == {"ents_p", "ents_r", "ents_f", "ents_per_type"}
    last = records[-1]
    assert set(last["train"]["ents_per_type"]) == {"person", "geo-loc"}
    assert set(last["train"]["ents_per_type"]["person"]) == {"p", "r", "f"}
    # the log can be plotted
    _assert_png(plot_curves(log, tmp_path / "curves.png"))

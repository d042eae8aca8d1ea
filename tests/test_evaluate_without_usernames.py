"""Scoring without WNUT17-style user-name entities removes them from both sides."""
import spacy
from spacy.tokens import Doc, DocBin

from conftest import load_script


def _script():
    return load_script("evaluate_without_usernames")


def test_username_entities_are_removed_from_gold_and_prediction():
    script = _script()
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["@", "Calfreezy", "meets", "Obama", "in", "Paris", "@joe"],
              ents=["O", "B-person", "O", "B-person", "O", "B-location", "B-person"])
    tokens = script.username_tokens(doc)
    assert tokens == {1, 6}
    reduced, n = script.without(doc, tokens)
    assert n == 2
    assert [e.text for e in reduced.ents] == ["Obama", "Paris"]
    assert [e.text for e in doc.ents] == ["Calfreezy", "Obama", "Paris", "@joe"]


def test_evaluate_scores_both_ways(tmp_path, trained):
    script = _script()
    nlp, _ = trained
    model = tmp_path / "model"
    nlp.to_disk(model)
    gold = Doc(nlp.vocab, words=["@", "Adele", "saw", "Lady", "Gaga", "in", "Paris"],
               ents=["O", "B-person", "O", "B-person", "I-person", "O", "B-geo-loc"])
    DocBin(docs=[gold]).to_disk(tmp_path / "test.spacy")
    result = script.evaluate(model, tmp_path / "test.spacy")
    assert result["removed_gold_entities"] == 1
    assert result["gold_entities"] == 3
    assert 0.0 <= result["without_usernames"]["ents_f"] <= 1.0

"""scripts/recall_by_vectors.py: entity recall split by static-vector coverage."""
import pytest

from conftest import load_script

script = load_script("recall_by_vectors")


def test_one_group_is_spacys_recall_and_groups_reconcile(trained):
    nlp, examples = trained
    gold = [eg.reference for eg in examples]
    expected = nlp.evaluate(examples)["ents_r"]
    assert expected > 0  # the tiny model finds entities: the comparison means something
    everything = script.recall_by_coverage(nlp, gold, lambda text: True)
    assert everything["some_token_without_vector"]["entities"] == 0
    assert everything["all_tokens_have_vectors"]["recall"] == pytest.approx(expected)
    split = script.recall_by_coverage(nlp, gold, lambda text: text[:1].lower() < "m")
    total = sum(len(d.ents) for d in gold)
    assert all(g["entities"] > 0 for g in split.values())
    assert sum(g["entities"] for g in split.values()) == total
    assert sum(g["found"] for g in split.values()) == everything["all_tokens_have_vectors"]["found"]


def test_vector_lookup_uses_the_normalised_lower_case_key():
    import numpy
    import spacy

    nlp = spacy.blank("en")
    nlp.vocab.set_vector("paris", numpy.ones(3, dtype="f"))
    has_vector = script.vector_lookup(nlp)
    assert has_vector("Paris") and has_vector("PARIS")
    assert not has_vector("London")


def test_missing_inputs_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        script.main(["nope", "training/none/model-best"])
    assert "corpus/nope/test.spacy does not exist" in capsys.readouterr().err

"""The CRF baseline (spacy_twitter_ner.baselines.crf): it learns a tiny templated corpus,
round-trips through disk and reports a corrupted model file clearly."""
import pytest
import spacy
import torch
from spacy.tokens import Doc

pytest.importorskip("sklearn_crfsuite")

import spacy_twitter_ner.baselines.crf  # noqa: F401  (registers the "twitter_crf_ner" factory)
from spacy_twitter_ner.baselines.crf import (
    doc_bio_tags,
    doc_features,
    evaluate_docs,
    predict_docs,
    set_bio_ents,
    train_crf,
)

TWITTER_CONFIG = {"nlp": {"tokenizer": {"@tokenizers": "spacy_twitter_ner.TwitterTokenizer.v1"}}}


def twitter_nlp():
    return spacy.blank("en", config=TWITTER_CONFIG)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tiny_helpers):
    nlp = twitter_nlp()
    return nlp, tiny_helpers.tiny_corpus(nlp, n=60, seed=0)


@pytest.fixture(scope="module")
def crf_nlp(tiny):
    nlp, exs = tiny
    nlp = twitter_nlp()
    nlp.add_pipe("twitter_crf_ner", config={"max_iterations": 50})
    nlp.initialize(lambda: exs)
    return nlp, exs


def test_features_window_and_flags():
    feats = doc_features(["@bob", "saw", "Paris", "#live", "http://t.co/x"])
    assert feats[0]["BOS"] and feats[-1]["EOS"]
    assert feats[0]["is_mention"] and feats[3]["is_hashtag"] and feats[4]["is_url"]
    assert feats[2]["is_title"] and feats[2]["lower"] == "paris" and feats[2]["suffix3"] == "ris"
    assert feats[2]["-1:lower"] == "saw" and feats[2]["+1:lower"] == "#live"
    assert feats[2]["-2:lower"] == "@bob" and feats[2]["+2:is_url"]
    assert feats[0]["-1:PAD"] and feats[0]["-2:PAD"] and feats[-1]["+2:PAD"]
    assert feats[2]["shape"] == "Xxxxx"


def test_invalid_i_is_repaired_as_b():
    doc = Doc(spacy.blank("en").vocab, words=["a", "Paris", "France", "b"])
    set_bio_ents(doc, ["O", "I-geo-loc", "I-geo-loc", "O"])
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris France", "geo-loc")]
    set_bio_ents(doc, ["O", "B-person", "I-geo-loc", "O"])
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris", "person"), ("France", "geo-loc")]
    assert doc_bio_tags(doc) == ["O", "B-person", "B-geo-loc", "O"]


def test_train_crf_learns_tiny_corpus(tiny):
    nlp, exs = tiny
    gold = [eg.reference for eg in exs]
    crf = train_crf(gold, max_iterations=50)
    assert evaluate_docs(crf, gold)["ents_f"] >= 0.9
    words = Doc(nlp.vocab, words=[t.text for t in gold[0]])
    pred = predict_docs(crf, [words])[0]
    assert [(e.start, e.end, e.label_) for e in pred.ents] == [
        (e.start, e.end, e.label_) for e in gold[0].ents
    ]


def test_component_through_nlp_pipe(crf_nlp):
    nlp, exs = crf_nlp
    assert set(nlp.get_pipe("twitter_crf_ner").labels) == {"person", "geo-loc"}
    assert nlp.evaluate(exs)["ents_f"] >= 0.9
    docs = list(nlp.pipe(["omg Lady Gaga just landed in Tokyo !!", ""]))
    assert ("Lady Gaga", "person") in [(e.text, e.label_) for e in docs[0].ents]
    assert len(docs[1]) == 0


def test_save_load_round_trip(crf_nlp, tmp_path):
    nlp, exs = crf_nlp
    nlp.to_disk(tmp_path / "model")
    assert (tmp_path / "model" / "twitter_crf_ner" / "model.pkl").is_file()
    nlp2 = spacy.load(tmp_path / "model")
    texts = [eg.reference.text for eg in exs[:10]]
    ents1 = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    ents2 = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp2.pipe(texts)]
    assert ents1 == ents2
    assert nlp2.evaluate(exs)["ents_f"] == nlp.evaluate(exs)["ents_f"]
    # bytes round trip too
    ner3 = twitter_nlp().add_pipe("twitter_crf_ner")
    ner3.from_bytes(nlp.get_pipe("twitter_crf_ner").to_bytes())
    assert ner3.labels == nlp.get_pipe("twitter_crf_ner").labels


def test_corrupted_model_file_error(crf_nlp, tmp_path):
    nlp, _ = crf_nlp
    nlp.to_disk(tmp_path / "model")
    model_file = tmp_path / "model" / "twitter_crf_ner" / "model.pkl"
    model_file.write_bytes(b"this is not a pickle")
    with pytest.raises(ValueError, match="model.pkl"):
        spacy.load(tmp_path / "model")
    model_file.unlink()
    with pytest.raises(ValueError, match="model.pkl"):
        spacy.load(tmp_path / "model")


def test_untrained_component_raises():
    nlp = twitter_nlp()
    nlp.add_pipe("twitter_crf_ner")
    with pytest.raises(ValueError, match="not trained"):
        nlp("hello world")

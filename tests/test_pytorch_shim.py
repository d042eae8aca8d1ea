"""The optimizer's parameter averages reach the torch weights (``use_averages = true``)."""
import random

import numpy
import torch
from thinc.api import Adam, fix_random_seed

from spacy_twitter_ner.models.pytorch_shim import AveragingPyTorchShim, averaging_pytorch_wrapper

from conftest import small_model_config, tiny_corpus, twitter_nlp


def _train_linear(steps: int = 5):
    fix_random_seed(0)
    model = averaging_pytorch_wrapper(torch.nn.Linear(3, 2))
    X = numpy.ones((4, 3), dtype="f")
    model.initialize(X=X)
    optimizer = Adam(0.1, use_averages=True)
    for _ in range(steps):
        Y, backprop = model.begin_update(X)
        backprop(numpy.ones_like(Y))
        model.finish_update(optimizer)
    return model, optimizer


def test_use_params_swaps_in_the_averages_and_restores_the_weights():
    model, optimizer = _train_linear()
    shim = model.shims[0]
    assert isinstance(shim, AveragingPyTorchShim)
    raw = shim._model.weight.detach().clone()
    average = optimizer.averages[(shim.id, "weight")]
    assert not numpy.allclose(raw.numpy(), average)
    X = numpy.ones((1, 3), dtype="f")
    with model.use_params(optimizer.averages):
        numpy.testing.assert_allclose(shim._model.weight.detach().numpy(), average, rtol=1e-6)
        averaged_out = model.predict(X)
    assert torch.equal(shim._model.weight.detach(), raw)
    assert not numpy.allclose(model.predict(X), averaged_out)


def test_use_params_without_averages_changes_nothing():
    model, _ = _train_linear()
    raw = model.shims[0]._model.weight.detach().clone()
    with model.use_params({}):
        assert torch.equal(model.shims[0]._model.weight.detach(), raw)


def test_pipeline_use_params_reaches_every_torch_parameter():
    """spaCy evaluates and saves under ``nlp.use_params(optimizer.averages)``: every torch
    parameter of the component (features and BiLSTM) must then hold its average."""
    fix_random_seed(0)
    nlp = twitter_nlp()
    nlp.add_pipe("twitter_bilstm_ner", config=small_model_config())
    examples = tiny_corpus(nlp, n=24)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01, use_averages=True)
    order = list(examples)
    for _ in range(3):
        random.Random(0).shuffle(order)
        for i in range(0, len(order), 8):
            nlp.update(order[i:i + 8], sgd=optimizer)
    shims = [s for node in nlp.get_pipe("twitter_bilstm_ner").model.walk() for s in node.shims]
    assert len(shims) >= 2 and all(isinstance(s, AveragingPyTorchShim) for s in shims)
    averaged = [(s, name, p) for s in shims for name, p in s._model.named_parameters() if (s.id, name) in optimizer.averages]
    assert averaged and any(not numpy.allclose(p.detach().numpy(), optimizer.averages[(s.id, n)]) for s, n, p in averaged)
    texts = [e.text for e in examples]
    before = [[(e.text, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    with nlp.use_params(optimizer.averages):
        for shim, name, param in averaged:
            numpy.testing.assert_allclose(param.detach().numpy(), optimizer.averages[(shim.id, name)], rtol=1e-5)
    # restored afterwards: the raw weights predict as before
    assert [[(e.text, e.label_) for e in d.ents] for d in nlp.pipe(texts)] == before

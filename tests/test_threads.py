"""Thread-safe prediction: a trained, saved and loaded pipeline (dropout 0.3 in its features and
encoder) called from 8 threads at once gives exactly the entities, scores and tag probabilities
it gives sequentially.

The bug this guards against: thinc's PyTorchShim.predict runs eval() / forward / train() on the
one torch module all threads share, so dropout that followed the module's mode switched on for
one thread when another finished its call. Dropout now follows the explicit ``is_train``
argument; the last tests show that prediction ignores the module's mode, and that the check
would catch mode-dependent dropout."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from torch.nn import functional as F

from spacy_twitter_ner.models import torch_modules

NAME = "twitter_bilstm_ner"
N_THREADS = 8
RAW_TWEETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "raw_tweets" / "tweets.txt"  # ../shared beside the repo
N_TEXTS = 400


def load_texts():
    if RAW_TWEETS.exists():
        with RAW_TWEETS.open(encoding="utf8", errors="replace") as f:
            lines = [line.rstrip("\n") for _, line in zip(range(N_TEXTS), f)]
        if len(lines) >= 100:
            return lines
    from conftest import tiny_texts

    texts = [t for t, _ in tiny_texts(N_TEXTS, seed=7)]
    return [t if i % 3 else t.upper() + " lol @someone" for i, t in enumerate(texts)]


@pytest.fixture(scope="module")
def texts():
    return load_texts()


@pytest.fixture(scope="module", params=[False, True], ids=["float32", "int8-lstm"])
def nlp(request, tmp_path_factory, tiny_helpers):
    """The shipped fast configs predict with an int8 LSTM copy (``quantize = true``), built
    lazily by the first prediction: both ways are served from threads."""
    config = tiny_helpers.small_model_config(dropout=0.3)
    config["model"]["encoder"]["dropout"] = 0.3
    config["model"]["encoder"]["quantize"] = request.param
    trained, *_ = tiny_helpers.train_tiny(config, epochs=8, drop=0.1)
    path = tmp_path_factory.mktemp("threads") / "pipeline"
    trained.to_disk(path)
    loaded = spacy.load(path)
    model = loaded.get_pipe(NAME).model
    assert model.get_ref("features").get_ref("embed").shims[0]._model.dropout == 0.3
    assert model.get_ref("encoder").shims[0]._model.dropout == 0.3
    return loaded


def signature(doc):
    return [(e.text, e.label_, e.start, e.end, e._.score) for e in doc.ents]


def torch_modules_of(model):
    return [shim._model for node in model.walk() for shim in node.shims]


def run_threads(fn, n=N_THREADS):
    """``fn(k)`` in ``n`` threads that start together; the results in thread order."""
    barrier = threading.Barrier(n)

    def start(k):
        barrier.wait(timeout=60)
        return fn(k)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(start, range(n)))


def test_nlp_from_8_threads_equals_sequential(nlp, texts):
    sequential = [signature(nlp(t)) for t in texts]
    assert sum(len(s) for s in sequential) > 0, "the model finds no entities: the test would prove nothing"

    def work(k):
        # every thread tags every text, each starting elsewhere, so that calls overlap
        order = [(k * len(texts) // N_THREADS + i) % len(texts) for i in range(len(texts))]
        return {i: signature(nlp(texts[i])) for i in order}

    for k, got in enumerate(run_threads(work)):
        mismatches = [i for i in range(len(texts)) if got[i] != sequential[i]]
        assert not mismatches, (k, [(texts[i], got[i], sequential[i]) for i in mismatches[:3]])


def test_pipe_from_several_threads_equals_sequential(nlp, texts):
    sequential = [signature(d) for d in nlp.pipe(texts, batch_size=16)]

    def work(k):
        return [signature(d) for d in nlp.pipe(texts, batch_size=16)]

    for got in run_threads(work, n=4):
        assert got == sequential


def test_tag_probabilities_from_threads_equal_sequential(nlp, texts):
    ner = nlp.get_pipe(NAME)
    chunks = [texts[i:i + 25] for i in range(0, len(texts), 25)]
    sequential = [ner.tag_probabilities([nlp.make_doc(t) for t in chunk]) for chunk in chunks]

    def work(k):
        return [ner.tag_probabilities([nlp.make_doc(t) for t in chunk]) for chunk in chunks[k:] + chunks[:k]]

    for k, got in enumerate(run_threads(work)):
        got = got[len(chunks) - k:] + got[:len(chunks) - k]  # back to chunk order
        for a, b in zip(got, sequential):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                numpy.testing.assert_array_equal(x, y)


# -- prediction ignores the torch modules' train/eval mode ------------------------------------------


def _flip_to_train_during_forward(modules):
    """Forward pre-hooks that put every module in train mode when one of its first parts runs:
    what another thread's PyTorchShim.predict does when it finishes (eval ... train())."""
    handles = []

    def hook(*_):
        for m in modules:
            m.train()

    for m in modules:
        first = m.char_conv if isinstance(m, torch_modules.TokenFeaturizer) else m.layers[0]
        handles.append(first.register_forward_pre_hook(hook))
    return handles


def _predict(ner, docs):
    return [(path.copy(), probs.copy()) for path, probs in ner.predict(docs)]


def _assert_same(a, b):
    for (pa, qa), (pb, qb) in zip(a, b):
        numpy.testing.assert_array_equal(pa, pb)
        numpy.testing.assert_array_equal(qa, qb)


def _differs(a, b):
    return any(not numpy.array_equal(qa, qb) for (_, qa), (_, qb) in zip(a, b))


class ModeDependentDropout:
    """``torch.nn.functional`` with dropout following the modules' mode instead of the
    ``training`` argument: the behaviour before the fix, for the control below."""

    def __init__(self, modules):
        self.modules = modules

    def dropout(self, x, p=0.5, training=False, inplace=False):
        return F.dropout(x, p, training=any(m.training for m in self.modules))

    def __getattr__(self, name):
        return getattr(F, name)


def test_predict_ignores_a_switch_to_train_mode_mid_forward(nlp, texts, monkeypatch):
    ner = nlp.get_pipe(NAME)
    modules = torch_modules_of(ner.model)
    assert {type(m) for m in modules} == {torch_modules.TokenFeaturizer, torch_modules.BiLSTM}
    docs = [nlp.make_doc(t) for t in texts[:40]]
    reference = _predict(ner, docs)
    handles = _flip_to_train_during_forward(modules)
    try:
        for m in modules:
            m.train()
        _assert_same(_predict(ner, docs), reference)
        # control: the same flips with mode-dependent dropout change the output, so this
        # check would have caught the old behaviour
        monkeypatch.setattr(torch_modules, "F", ModeDependentDropout(modules))
        torch.manual_seed(0)
        assert _differs(_predict(ner, docs), reference)
    finally:
        for h in handles:
            h.remove()
        monkeypatch.undo()
        for m in modules:
            m.train()
    _assert_same(_predict(ner, docs), reference)


def test_predict_while_another_thread_flips_the_modules(nlp, texts):
    """A thread that keeps switching the shared modules between train and eval (as concurrent
    PyTorchShim.predict calls do) never changes what this thread predicts."""
    ner = nlp.get_pipe(NAME)
    modules = torch_modules_of(ner.model)
    docs = [nlp.make_doc(t) for t in texts[:60]]
    reference = _predict(ner, docs)
    stop = threading.Event()
    flips = [0]

    def flipper():
        while not stop.is_set():
            for m in modules:
                m.train()
            flips[0] += 1
            for m in modules:
                m.eval()
            for m in modules:
                m.train()
            time.sleep(0)  # hand the GIL to the predicting thread: spinning made this test take 85 s, not 1

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    try:
        for _ in range(15):
            _assert_same(_predict(ner, docs), reference)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert flips[0] >= 15  # on average at least one flip per prediction


def test_loaded_pipeline_predicts_with_the_configured_lstm(nlp, texts):
    """``quantize`` survives to_disk/load, and prediction then runs the int8 copy."""
    encoder = nlp.get_pipe(NAME).model.get_ref("encoder").shims[0]._model
    list(nlp.pipe(texts[:10]))
    assert bool(encoder._int8) == encoder.quantize
    assert nlp.config["components"][NAME]["model"]["encoder"]["quantize"] == encoder.quantize

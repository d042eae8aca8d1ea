"""``spacy_twitter_ner.BiLSTMEncoder.v1`` (spacy_twitter_ner.models.encoder): Ragged in and out,
empty docs, padding never leaks between docs of a batch, gradients, configs from strings."""
import numpy
import pytest
from spacy.util import registry
from thinc.api import Config, Ragged

from spacy_twitter_ner.models.encoder import ENCODER, build_bilstm_encoder

HIDDEN = 10

ENCODER_CFG = """
[model]
@architectures = "spacy_twitter_ner.BiLSTMEncoder.v1"
nI = 8
hidden = 5
depth = 2
dropout = 0.0
"""


def ragged(lengths, width=8, seed=0):
    data = numpy.random.RandomState(seed).normal(size=(sum(lengths), width)).astype("float32")
    return Ragged(data, numpy.asarray(lengths, dtype="int32"))


@pytest.fixture(scope="module")
def pipeline(tiny_helpers):
    nlp = tiny_helpers.twitter_nlp()
    cfg = tiny_helpers.small_model_config(width=24, dropout=0.2)
    cfg["model"]["encoder"].update(nI=24, hidden=HIDDEN, dropout=0.2)
    nlp.add_pipe("twitter_bilstm_ner", config=cfg)
    exs = tiny_helpers.tiny_corpus(nlp)
    nlp.initialize(lambda: exs)
    return nlp


def test_encoder_from_config_string():
    encoder = registry.resolve(Config().from_str(ENCODER_CFG))["model"]
    assert encoder.name == ENCODER
    assert encoder.get_dim("nO") == 10 and encoder.get_dim("nI") == 8
    X = ragged([3, 0, 2])
    encoder.initialize(X=X)
    out = encoder.predict(X)
    assert isinstance(out, Ragged)
    assert out.data.shape == (5, 10) and list(out.lengths) == [3, 0, 2]


def test_encoder_output_shape_in_the_pipeline(pipeline):
    model = pipeline.get_pipe("twitter_bilstm_ner").model
    features, encoder = model.get_ref("features"), model.get_ref("encoder")
    docs = [pipeline.make_doc("Tom Brady is in Boston tonight"), pipeline.make_doc(""), pipeline.make_doc("Adele")]
    out = encoder.predict(features.predict(docs))
    assert isinstance(out, Ragged)
    assert out.data.shape == (7, 2 * HIDDEN)
    assert list(out.lengths) == [6, 0, 1]


def test_padding_does_not_leak(pipeline):
    model = pipeline.get_pipe("twitter_bilstm_ner").model
    features, encoder = model.get_ref("features"), model.get_ref("encoder")
    short = pipeline.make_doc("Adele loves Paris")
    longer = [
        pipeline.make_doc("omg Carmelo Anthony just landed in Madison Square Garden !! @fan http://t.co/q"),
        pipeline.make_doc("can't wait for Lady Gaga in New York #live tonight with everyone"),
    ]

    def encode(docs):
        return encoder.predict(features.predict(docs))

    alone = encode([short]).data
    for batch, pos in (([short] + longer, 0), (longer + [short], 2), ([longer[0], short, longer[1]], 1)):
        out = encode(batch)
        start = int(sum(out.lengths[:pos]))
        numpy.testing.assert_allclose(out.data[start:start + len(short)], alone, atol=1e-5)


def test_predict_is_deterministic_and_training_uses_dropout():
    encoder = build_bilstm_encoder(nI=8, hidden=6, depth=2, dropout=0.3)
    X = ragged([4, 2])
    encoder.initialize(X=X)
    numpy.testing.assert_array_equal(encoder.predict(X).data, encoder.predict(X).data)
    a, _ = encoder.begin_update(X)
    b, _ = encoder.begin_update(X)
    assert not numpy.array_equal(a.data, b.data)


def test_backprop_gives_input_shaped_gradients():
    encoder = build_bilstm_encoder(nI=8, hidden=6, depth=1, dropout=0.0)
    X = ragged([4, 0, 3])
    encoder.initialize(X=X)
    Y, backprop = encoder.begin_update(X)
    dX = backprop(Ragged(numpy.ones_like(Y.data), Y.lengths))
    assert isinstance(dX, Ragged)
    assert dX.data.shape == X.data.shape and list(dX.lengths) == [4, 0, 3]
    assert numpy.abs(dX.data).sum() > 0

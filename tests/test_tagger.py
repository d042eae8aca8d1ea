"""``spacy_twitter_ner.BiLSTMTagger.v1`` (spacy_twitter_ner.models.tagger): chain(features,
encoder, decoder) giving TagScores/CRFScores, its refs and initialisation, padding, configs from
strings, and every architecture registered."""
import numpy
import pytest
from spacy.tokens import Doc
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config

from spacy_twitter_ner.models.crf import CRF
from spacy_twitter_ner.models.scores import CRFScores, TagScores
from spacy_twitter_ner.models.softmax import SOFTMAX
from spacy_twitter_ner.models.tagger import TAGGER

ARCHITECTURES = ("BiLSTMTagger", "TokenFeatures", "BiLSTMEncoder", "SoftmaxDecoder", "CRFDecoder",
                 "EnsembleTagger", "StaticVectors", "TransformerFeatures")

TAGGER_CFG = """
[model]
@architectures = "spacy_twitter_ner.BiLSTMTagger.v1"

[model.features]
@architectures = "spacy_twitter_ner.TokenFeatures.v1"
width = 12
word_dim = 6
lower = true
min_freq = 1
max_words = null
char_dim = 4
char_filters = 5
char_window = 3
max_chars = 10
n_chars = 64
shape_dim = 3
dropout = 0.0

[model.encoder]
@architectures = "spacy_twitter_ner.BiLSTMEncoder.v1"
nI = ${model.features.width}
hidden = 7
depth = 1
dropout = 0.0

[model.decoder]
@architectures = "spacy_twitter_ner.%s.v1"
nO = %s
"""


@pytest.fixture(scope="module")
def pipeline(tiny_helpers):
    """An initialized (untrained) small CRF pipeline, dropout on."""
    nlp = tiny_helpers.twitter_nlp()
    cfg = tiny_helpers.small_model_config(width=24, dropout=0.2)
    cfg["model"]["encoder"].update(nI=24, hidden=10, dropout=0.2)
    nlp.add_pipe("twitter_bilstm_ner", config=cfg)
    exs = tiny_helpers.tiny_corpus(nlp)
    nlp.initialize(lambda: exs)
    return nlp


@pytest.fixture(scope="module")
def model(pipeline):
    return pipeline.get_pipe("twitter_bilstm_ner").model


def test_all_architectures_registered():
    for name in ARCHITECTURES:
        assert registry.architectures.get(f"spacy_twitter_ner.{name}.v1")


def test_refs(model):
    assert model.name == TAGGER
    features, encoder, decoder = (model.get_ref(n) for n in ("features", "encoder", "decoder"))
    assert model.layers == [features, encoder, decoder]
    assert model.get_ref("output") is decoder.get_ref("output")
    assert decoder.get_ref("head").name == CRF


def test_tagger_output(pipeline, model):
    ner = pipeline.get_pipe("twitter_bilstm_ner")
    docs = [pipeline.make_doc("Tom Brady is in Boston"), pipeline.make_doc("")]
    out = model.predict(docs)
    assert isinstance(out, CRFScores)
    assert out.emissions.data.shape == (5, len(ner.tags))
    assert list(out.emissions.lengths) == [5, 0]
    n = len(ner.tags)
    assert out.transitions.shape == (n, n) and out.start.shape == (n,) and out.end.shape == (n,)


def test_padding_does_not_leak_into_the_scores(pipeline, model):
    short = pipeline.make_doc("Adele loves Paris")
    longer = [
        pipeline.make_doc("omg Carmelo Anthony just landed in Madison Square Garden !! @fan http://t.co/q"),
        pipeline.make_doc("can't wait for Lady Gaga in New York #live tonight with everyone"),
    ]
    alone = model.predict([short])
    for batch, pos in (([short] + longer, 0), (longer + [short], 2), ([longer[0], short, longer[1]], 1)):
        scores = model.predict(batch)
        start = int(sum(scores.emissions.lengths[:pos]))
        numpy.testing.assert_allclose(scores.emissions.data[start:start + len(short)], alone.emissions.data, atol=1e-5)
        paths, probs = scores.decode()
        numpy.testing.assert_array_equal(paths[pos], alone.decode()[0][0])
        numpy.testing.assert_allclose(probs[pos], alone.decode()[1][0], atol=1e-5)


def test_predict_is_deterministic_with_dropout(pipeline, model):
    """Dropout is configured (0.2) but predict must be deterministic; training is not."""
    docs = [pipeline.make_doc("Lady Gaga is in Tokyo tonight")]
    numpy.testing.assert_array_equal(model.predict(docs).emissions.data, model.predict(docs).emissions.data)
    a, _ = model.begin_update(docs)
    b, _ = model.begin_update(docs)
    assert not numpy.array_equal(a.emissions.data, b.emissions.data)


@pytest.mark.parametrize("decoder", ["CRFDecoder", "SoftmaxDecoder"])
def test_tagger_from_config_string(decoder):
    model = registry.resolve(Config().from_str(TAGGER_CFG % (decoder, 5)))["model"]
    assert model.name == TAGGER
    for ref in ("features", "encoder", "decoder", "output"):
        assert model.has_ref(ref)
    assert model.get_ref("decoder").get_ref("head").name == (CRF if decoder == "CRFDecoder" else SOFTMAX)
    vocab = Vocab()
    docs = [Doc(vocab, words=["Hello", "@you", "Paris"]), Doc(vocab, words=[])]
    model.initialize(X=docs)
    out = model.predict(docs)
    assert type(out) is (CRFScores if decoder == "CRFDecoder" else TagScores)
    assert out.emissions.data.shape == (3, 5)
    assert list(out.emissions.lengths) == [3, 0]
    paths, probs = out.decode()
    assert [len(p) for p in paths] == [3, 0] and probs[0].shape == (3, 5)


def test_initialize_sizes_the_decoder_from_the_tags():
    model = registry.resolve(Config().from_str(TAGGER_CFG % ("CRFDecoder", "null")))["model"]
    vocab = Vocab()
    docs = [Doc(vocab, words=["Hello", "Paris"])]
    model.initialize(X=docs, Y=["O", "B-x", "I-x", "B-y", "I-y", "B-z", "I-z"])
    assert model.get_ref("output").get_dim("nO") == 7
    head = model.get_ref("decoder").get_ref("head")
    assert head.get_param("transitions").shape == (7, 7)
    assert model.predict(docs).emissions.data.shape == (2, 7)
    with pytest.raises(ValueError, match="labels cannot change"):
        model.initialize(X=docs, Y=["O", "B-x", "I-x"])


def test_training_step_updates_every_part(tiny_helpers):
    """begin_update -> scores.loss -> backprop reaches the torch modules (features, encoder),
    the dense layer and the CRF parameters."""
    from thinc.api import Adam

    nlp = tiny_helpers.twitter_nlp()
    ner = nlp.add_pipe("twitter_bilstm_ner", config=tiny_helpers.small_model_config())
    exs = tiny_helpers.tiny_corpus(nlp, n=8, seed=3)
    nlp.initialize(lambda: exs)
    model = ner.model
    thinc_params = {(node.id, name): node.get_param(name).copy() for node in model.walk() for name in node.param_names}
    torch_params = {ref: [p.detach().clone() for p in torch_module(model, ref).parameters()] for ref in ("features", "encoder")}
    scores, backprop = model.begin_update([eg.predicted for eg in exs])
    loss, d_scores = scores.loss(ner.gold_tag_ids(exs))
    assert loss > 0
    backprop(d_scores)
    model.finish_update(Adam(0.01))
    changed = {node.name for node in model.walk() for name in node.param_names
               if not numpy.array_equal(thinc_params[(node.id, name)], node.get_param(name))}
    assert {CRF, "linear"} <= changed
    for ref, before in torch_params.items():
        after = list(torch_module(model, ref).parameters())
        assert any(not numpy.array_equal(a.numpy(), b.detach().numpy()) for a, b in zip(before, after)), ref


def torch_module(model, ref):
    layer = model.get_ref(ref)
    if ref == "features":
        layer = layer.get_ref("embed")
    return layer.shims[0]._model

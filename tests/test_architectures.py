"""The registered thinc architectures: shapes, padding, the word vocabulary and config building."""
import numpy
import pytest
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Config, Ragged

from spacy_twitter_ner.architectures import _lexical_table
from spacy_twitter_ner.features import PAD, PAD_ID, UNK, UNK_ID, SHAPE_ID, LexicalTable, build_vocab, word_key
from spacy_twitter_ner.tokenizer import URL, USR

WIDTH = 24
HIDDEN = 10


@pytest.fixture(scope="module")
def pipeline(tiny_helpers):
    """An initialized (untrained) small CRF pipeline over the tiny corpus."""
    nlp = tiny_helpers.twitter_nlp()
    cfg = tiny_helpers.small_model_config(width=WIDTH, dropout=0.2)
    cfg["model"]["encoder"].update(nI=WIDTH, hidden=HIDDEN, dropout=0.2)
    nlp.add_pipe("twitter_bilstm_ner", config=cfg)
    exs = tiny_helpers.tiny_corpus(nlp)
    nlp.initialize(lambda: exs)
    return nlp


@pytest.fixture(scope="module")
def model(pipeline):
    return pipeline.get_pipe("twitter_bilstm_ner").model


def test_features_shape_with_empty_doc(pipeline, model):
    features = model.get_ref("features")
    docs = [pipeline.make_doc("Lady Gaga in Paris"), pipeline.make_doc(""), pipeline.make_doc("@fan http://t.co/q")]
    out = features.predict(docs)
    assert isinstance(out, Ragged)
    assert list(out.lengths) == [len(d) for d in docs] == [4, 0, 2]
    assert out.data.shape == (6, WIDTH)
    assert numpy.isfinite(out.data).all()


def test_features_all_empty(pipeline, model):
    out = model.get_ref("features").predict([pipeline.make_doc(""), pipeline.make_doc("")])
    # thinc's Ragged stores empty data as (0, 0) but keeps the row shape in data_shape
    assert out.data.size == 0 and tuple(out.data_shape[1:]) == (WIDTH,)
    assert list(out.lengths) == [0, 0]


def test_encoder_output_shape(pipeline, model):
    features, encoder = model.get_ref("features"), model.get_ref("encoder")
    docs = [pipeline.make_doc("Tom Brady is in Boston tonight"), pipeline.make_doc(""), pipeline.make_doc("Adele")]
    out = encoder.predict(features.predict(docs))
    assert isinstance(out, Ragged)
    assert out.data.shape == (7, 2 * HIDDEN)
    assert list(out.lengths) == [6, 0, 1]


def test_tagger_output_shape(pipeline, model):
    ner = pipeline.get_pipe("twitter_bilstm_ner")
    docs = [pipeline.make_doc("Tom Brady is in Boston"), pipeline.make_doc("")]
    out = model.predict(docs)
    assert out.data.shape == (5, len(ner.tags))


def test_padding_does_not_leak(pipeline, model):
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
        # and the full tagger
        scores_alone = model.predict([short]).data
        scores = model.predict(batch)
        numpy.testing.assert_allclose(scores.data[start:start + len(short)], scores_alone, atol=1e-5)


def test_predict_is_eval_mode(pipeline, model):
    """Dropout is configured (0.2) but predict must be deterministic."""
    docs = [pipeline.make_doc("Lady Gaga is in Tokyo tonight")]
    numpy.testing.assert_array_equal(model.predict(docs).data, model.predict(docs).data)


def test_build_vocab_reserves_pad_and_unk():
    words = build_vocab(["b", "a", "b", PAD, UNK, "c", "c", "c"], min_freq=1, max_size=None)
    assert words[:2] == [PAD, UNK] and PAD_ID == 0 and UNK_ID == 1
    assert words[2:] == ["c", "b", "a"]
    assert build_vocab(["b", "a", "b"], min_freq=2, max_size=None) == [PAD, UNK, "b"]
    assert build_vocab(["b", "a", "b", "c", "c", "c"], min_freq=1, max_size=3) == [PAD, UNK, "c"]


def test_word_vocabulary_maps_mentions_urls_and_unknown(pipeline, model):
    features = model.get_ref("features")
    words = features.attrs["words"]
    assert words[PAD_ID] == PAD and words[UNK_ID] == UNK
    # the training data has "@fan" and "http://t.co/q": stored as <USR>/<URL>, never raw
    assert USR in words and URL in words
    assert "@fan" not in words and "http://t.co/q" not in words
    assert word_key("@someone", True) == USR
    assert word_key("https://example.com/X", True) == URL
    assert word_key("Paris", True) == "paris" and word_key("Paris", False) == "Paris"
    doc = Doc(pipeline.vocab, words=["@never_seen", "http://never.seen/x", "zzzunknownzzz", "paris", "<UNK>", "@"])
    ids, _, shapes, lengths = _lexical_table(features).featurize([doc])
    assert ids[0] == words.index(USR)
    assert ids[1] == words.index(URL)
    assert ids[2] == UNK_ID
    assert ids[3] == words.index("paris")
    assert ids[5] == UNK_ID  # a lone "@" is not a mention
    assert shapes[0] == SHAPE_ID["mention"] and shapes[1] == SHAPE_ID["url"]
    assert list(lengths) == [6]
    # a vocabulary without <USR>/<URL>: mentions and URLs are unknown words
    table = LexicalTable([PAD, UNK, "paris"], True, 20, 512)
    ids, _, _, _ = table.featurize([doc])
    assert list(ids[:3]) == [UNK_ID, UNK_ID, UNK_ID]
    assert ids[3] == 2


def test_tokenizer_and_pretokenized_docs_get_same_features(pipeline, model):
    features = model.get_ref("features")
    text = "@fan saw Lady Gaga at Paris http://t.co/q and https://www.example.com/a?b=1 @Another_One"
    tok_doc = pipeline.make_doc(text)
    assert [t.norm_ for t in tok_doc if t.text.startswith("@")] == [USR, USR]
    words_doc = Doc(pipeline.vocab, words=[t.text for t in tok_doc])
    assert [t.norm_ for t in words_doc if t.text.startswith("@")] != [USR, USR]  # spaCy's own norm
    a = _lexical_table(features).featurize([tok_doc])
    b = _lexical_table(features).featurize([words_doc])
    for x, y in zip(a, b):
        numpy.testing.assert_array_equal(x, y)
    numpy.testing.assert_array_equal(features.predict([tok_doc]).data, features.predict([words_doc]).data)
    numpy.testing.assert_array_equal(model.predict([tok_doc]).data, model.predict([words_doc]).data)


ENCODER_CFG = """
[model]
@architectures = "spacy_twitter_ner.BiLSTMEncoder.v1"
nI = 8
hidden = 5
depth = 2
dropout = 0.0
"""

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
nO = 5
"""


def test_encoder_from_config_string():
    encoder = registry.resolve(Config().from_str(ENCODER_CFG))["model"]
    assert encoder.get_dim("nO") == 10 and encoder.get_dim("nI") == 8
    X = Ragged(numpy.random.RandomState(0).normal(size=(5, 8)).astype("float32"), numpy.asarray([3, 0, 2], dtype="int32"))
    encoder.initialize(X=X)
    out = encoder.predict(X)
    assert out.data.shape == (5, 10)


@pytest.mark.parametrize("decoder", ["CRFDecoder", "SoftmaxDecoder"])
def test_tagger_from_config_string(decoder):
    from spacy.vocab import Vocab

    model = registry.resolve(Config().from_str(TAGGER_CFG % decoder))["model"]
    assert model.name == "twitter_bilstm_tagger"
    for ref in ("features", "encoder", "decoder"):
        assert model.has_ref(ref)
    assert model.get_ref("decoder").attrs["crf"] == (decoder == "CRFDecoder")
    vocab = Vocab()
    docs = [Doc(vocab, words=["Hello", "@you", "Paris"]), Doc(vocab, words=[])]
    model.initialize(X=docs)
    out = model.predict(docs)
    assert out.data.shape == (3, 5)
    assert list(out.lengths) == [3, 0]


def test_all_architectures_registered():
    for name in ("BiLSTMTagger", "TokenFeatures", "BiLSTMEncoder", "SoftmaxDecoder", "CRFDecoder"):
        assert registry.architectures.get(f"spacy_twitter_ner.{name}.v1")

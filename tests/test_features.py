"""``spacy_twitter_ner.TokenFeatures.v1`` (spacy_twitter_ner.models.features): one row per token,
empty docs, the word vocabulary built from every training doc, raw-text and pre-tokenised docs
alike, knowledge sub-layers, serialization, configs from strings."""
import numpy
import pytest
from spacy.tokens import Doc
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Ragged

from spacy_twitter_ner.models.features import EMBED, FEATURES, build_token_features, knowledge_layers
from spacy_twitter_ner.models.knowledge.gazetteer import GAZETTEER
from spacy_twitter_ner.models.lexical import PAD, PAD_ID, SHAPE_ID, UNK, UNK_ID, LexicalTable
from spacy_twitter_ner.tokenizer import URL, USR

WIDTH = 24
MAX_CHARS, N_CHARS = 20, 512  # small_model_config's


@pytest.fixture(scope="module")
def pipeline(tiny_helpers):
    """An initialized (untrained) small CRF pipeline over the tiny corpus, dropout on."""
    nlp = tiny_helpers.twitter_nlp()
    cfg = tiny_helpers.small_model_config(width=WIDTH, dropout=0.2)
    cfg["model"]["encoder"].update(nI=WIDTH, hidden=10, dropout=0.2)
    nlp.add_pipe("twitter_bilstm_ner", config=cfg)
    exs = tiny_helpers.tiny_corpus(nlp)
    nlp.initialize(lambda: exs)
    return nlp


@pytest.fixture(scope="module")
def features(pipeline):
    return pipeline.get_pipe("twitter_bilstm_ner").model.get_ref("features")


def table_of(features):
    embed = features.get_ref("embed")
    return LexicalTable(embed.attrs["words"], embed.attrs["lower"], MAX_CHARS, N_CHARS)


def test_layer_structure(features):
    assert features.name == FEATURES
    embed = features.get_ref("embed")
    assert embed.name == EMBED and features.layers[0] is embed
    assert knowledge_layers(features) == []
    assert features.get_dim("nO") == WIDTH


def test_features_shape_with_empty_doc(pipeline, features):
    docs = [pipeline.make_doc("Lady Gaga in Paris"), pipeline.make_doc(""), pipeline.make_doc("@fan http://t.co/q")]
    out = features.predict(docs)
    assert isinstance(out, Ragged)
    assert list(out.lengths) == [len(d) for d in docs] == [4, 0, 2]
    assert out.data.shape == (6, WIDTH)
    assert numpy.isfinite(out.data).all()


def test_features_all_empty(pipeline, features):
    out = features.predict([pipeline.make_doc(""), pipeline.make_doc("")])
    # thinc's Ragged stores empty data as (0, 0) but keeps the row shape in data_shape
    assert out.data.size == 0 and tuple(out.data_shape[1:]) == (WIDTH,)
    assert list(out.lengths) == [0, 0]
    assert features.predict([]).data.size == 0


def test_features_of_a_token_do_not_depend_on_the_batch(pipeline, features):
    short = pipeline.make_doc("Adele loves Paris")
    longer = pipeline.make_doc("omg Carmelo Anthony just landed in Madison Square Garden !! @fan http://t.co/q")
    alone = features.predict([short]).data
    out = features.predict([longer, short])
    numpy.testing.assert_allclose(out.data[len(longer):], alone, atol=1e-6)


def test_predict_is_deterministic_with_dropout(pipeline, features):
    docs = [pipeline.make_doc("Lady Gaga is in Tokyo tonight")]
    numpy.testing.assert_array_equal(features.predict(docs).data, features.predict(docs).data)
    a, _ = features.begin_update(docs)
    b, _ = features.begin_update(docs)
    assert not numpy.array_equal(a.data, b.data)  # dropout 0.2 in training


def test_word_vocabulary_maps_mentions_urls_and_unknown(pipeline, features):
    words = features.get_ref("embed").attrs["words"]
    assert words[PAD_ID] == PAD and words[UNK_ID] == UNK
    # the training data has "@fan" and "http://t.co/q": stored as <USR>/<URL>, never raw
    assert USR in words and URL in words
    assert "@fan" not in words and "http://t.co/q" not in words
    assert "paris" in words and "Paris" not in words  # lower = true
    doc = Doc(pipeline.vocab, words=["@never_seen", "http://never.seen/x", "zzzunknownzzz", "paris", "<UNK>", "@"])
    ids, _, shapes, lengths = table_of(features).featurize([doc])
    assert ids[0] == words.index(USR)
    assert ids[1] == words.index(URL)
    assert ids[2] == UNK_ID
    assert ids[3] == words.index("paris")
    assert ids[5] == UNK_ID  # a lone "@" is not a mention
    assert shapes[0] == SHAPE_ID["mention"] and shapes[1] == SHAPE_ID["url"]
    assert list(lengths) == [6]
    assert features.get_ref("embed").shims[0]._model.word_embed.num_embeddings == len(words)


def test_vocabulary_comes_from_every_training_doc(tiny_helpers):
    """The tagger initialises its encoder on a sample of docs; the features layer reads all."""
    nlp = tiny_helpers.twitter_nlp()
    ner = nlp.add_pipe("twitter_bilstm_ner", config=tiny_helpers.small_model_config())
    exs = tiny_helpers.tiny_corpus(nlp, n=40)
    from spacy.training import Example

    last = Example.from_dict(nlp.make_doc("Adele visits Zanzibarville"), {"entities": [(0, 5, "person"), (13, 26, "geo-loc")]})
    nlp.initialize(lambda: exs + [last])
    assert "zanzibarville" in ner.model.get_ref("features").get_ref("embed").attrs["words"]


def test_tokenizer_and_pretokenized_docs_get_same_features(pipeline, features):
    model = pipeline.get_pipe("twitter_bilstm_ner").model
    text = "@fan saw Lady Gaga at Paris http://t.co/q and https://www.example.com/a?b=1 @Another_One"
    tok_doc = pipeline.make_doc(text)
    assert [t.norm_ for t in tok_doc if t.text.startswith("@")] == [USR, USR]
    words_doc = Doc(pipeline.vocab, words=[t.text for t in tok_doc])
    assert [t.norm_ for t in words_doc if t.text.startswith("@")] != [USR, USR]  # spaCy's own norm
    a = table_of(features).featurize([tok_doc])
    b = table_of(features).featurize([words_doc])
    for x, y in zip(a, b):
        numpy.testing.assert_array_equal(x, y)
    numpy.testing.assert_array_equal(features.predict([tok_doc]).data, features.predict([words_doc]).data)
    numpy.testing.assert_array_equal(model.predict([tok_doc]).emissions.data, model.predict([words_doc]).emissions.data)


def test_vocabulary_and_weights_travel_in_the_bytes(pipeline, features, tiny_helpers):
    fresh = registry.resolve({"m": tiny_helpers.small_model_config(width=WIDTH, dropout=0.2)["model"]["features"]})["m"]
    fresh.from_bytes(features.to_bytes())
    assert fresh.get_ref("embed").attrs["words"] == features.get_ref("embed").attrs["words"]
    docs = [pipeline.make_doc("Lady Gaga in Paris @fan"), pipeline.make_doc("zzz unknown words")]
    numpy.testing.assert_array_equal(fresh.predict(docs).data, features.predict(docs).data)


def test_knowledge_sub_layers_in_order(tmp_path):
    (tmp_path / "people").write_text("lady gaga\n", encoding="utf8")
    pretrained = registry.resolve({"m": {"@architectures": "spacy_twitter_ner.StaticVectors.v1", "nO": 4}})["m"]
    extra = registry.resolve({"m": {"@architectures": "spacy_twitter_ner.StaticVectors.v1", "nO": 3}})["m"]
    model = build_token_features(
        width=16, word_dim=8, lower=True, min_freq=1, max_words=None, char_dim=4, char_filters=4,
        char_window=3, max_chars=10, n_chars=64, shape_dim=2, dropout=0.0, pretrained=pretrained,
        gazetteer_dir=str(tmp_path), gazetteer_lists=["people"], knowledge=[extra],
    )
    sources = knowledge_layers(model)
    assert sources[:2] == [pretrained, extra]
    assert sources[2].name == GAZETTEER and sources[2].get_dim("nO") == 2
    assert model.get_ref("embed").shims[0]._model.n_extra == 4 + 3 + 2


def test_word_dropout_knowledge_blanks_the_string_lookups_not_the_gazetteers(tmp_path):
    """``word_dropout_knowledge``: the featurizer's blanked columns are those of the string
    lookups (static vectors, Brown clusters), never the gazetteer flags; off by default."""
    from spacy_twitter_ner.models.knowledge.lexeme_clusters import build_lexeme_clusters

    (tmp_path / "people").write_text("lady gaga\n", encoding="utf8")
    clusters = build_lexeme_clusters(prefixes=[4], prob_buckets=3)
    kwargs = dict(width=16, word_dim=8, lower=True, min_freq=1, max_words=None, char_dim=4, char_filters=4,
                  char_window=3, max_chars=10, n_chars=64, shape_dim=2, dropout=0.0, word_dropout=0.1,
                  gazetteer_dir=str(tmp_path), gazetteer_lists=["people"])

    def blanked(**more):
        pretrained = registry.resolve({"m": {"@architectures": "spacy_twitter_ner.StaticVectors.v1", "nO": 4}})["m"]
        model = build_token_features(pretrained=pretrained, knowledge=[clusters], **kwargs, **more)
        module = model.get_ref("embed").shims[0]._model
        return None if module._lookup_extra is None else numpy.flatnonzero(module._lookup_extra).tolist()

    # columns: static vectors 0-3, clusters 4-(4+16+3), gazetteer flags after them
    assert blanked(word_dropout_knowledge=True) == list(range(4 + 16 + 3))
    assert blanked() is None


def test_gazetteer_rows_reach_the_featurizer(tmp_path):
    """The knowledge rows are the featurizer's ``extra`` input: a token in a list changes its
    features, everything else is the same."""
    (tmp_path / "people").write_text("lady gaga\n", encoding="utf8")
    kwargs = dict(width=16, word_dim=8, lower=True, min_freq=1, max_words=None, char_dim=4, char_filters=4,
                  char_window=3, max_chars=10, n_chars=64, shape_dim=2, dropout=0.0,
                  gazetteer_dir=str(tmp_path), gazetteer_lists=["people"])
    model = build_token_features(**kwargs)
    vocab = Vocab()
    docs = [Doc(vocab, words=["Lady", "Gaga", "and", "Adele"])]
    model.initialize(X=docs)
    gazetteer = knowledge_layers(model)[0]
    assert gazetteer.attrs["entries"] == {"people": ["lady gaga"]}
    with_lists = model.predict(docs).data
    (tmp_path / "people").write_text("adele\n", encoding="utf8")
    gazetteer.initialize(X=docs)  # the lists read again
    other = model.predict(docs).data
    assert not numpy.allclose(with_lists[:2], other[:2])
    assert not numpy.allclose(with_lists[3], other[3])
    numpy.testing.assert_allclose(with_lists[2], other[2], atol=1e-6)


FEATURES_CFG = """
[model]
@architectures = "spacy_twitter_ner.TokenFeatures.v1"
width = 12
word_dim = 6
lower = false
min_freq = 2
max_words = 10
char_dim = 4
char_filters = 5
char_window = 3
max_chars = 10
n_chars = 64
shape_dim = 3
dropout = 0.1
"""


def test_features_from_config_string():
    model = registry.resolve(Config().from_str(FEATURES_CFG))["model"]
    assert model.name == FEATURES and model.get_dim("nO") == 12
    vocab = Vocab()
    docs = [Doc(vocab, words=["Hello", "@you", "Paris", "Paris"]), Doc(vocab, words=[]), Doc(vocab, words=["hello"])]
    model.initialize(X=docs)
    # min_freq 2, cased: only "Paris" is seen twice
    assert model.get_ref("embed").attrs["words"] == [PAD, UNK, "Paris"]
    out = model.predict(docs)
    assert out.data.shape == (5, 12) and list(out.lengths) == [4, 0, 1]


def test_a_copied_layer_initialises_its_own_torch_module(pipeline, features):
    """initialize resizes the word embedding of the layer's own shim: a deep copy (or an
    unpickled pipeline) never reaches back into the original's module."""
    import copy

    embed = features.get_ref("embed")
    words = list(embed.attrs["words"])
    n_rows = embed.shims[0]._model.word_embed.num_embeddings
    docs = [pipeline.make_doc("Lady Gaga in Paris")]
    before = features.predict(docs).data.copy()
    clone = copy.deepcopy(features)
    clone.initialize(X=[Doc(pipeline.vocab, words=["only", "three", "words"])])
    assert clone.get_ref("embed").attrs["words"] == [PAD, UNK, "only", "three", "words"]
    assert clone.get_ref("embed").shims[0]._model.word_embed.num_embeddings == 5
    assert embed.attrs["words"] == words and embed.shims[0]._model.word_embed.num_embeddings == n_rows
    numpy.testing.assert_array_equal(features.predict(docs).data, before)
    assert clone.predict(docs).data.shape == before.shape

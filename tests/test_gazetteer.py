"""Gazetteer features (spacy_twitter_ner.models.knowledge.gazetteer): list loading, phrase flags,
and the lists travelling inside the model as a knowledge sub-layer of TokenFeatures.v1."""
import shutil

import numpy
import pytest
import spacy

from spacy_twitter_ner.models.features import knowledge_layers
from spacy_twitter_ner.models.knowledge.gazetteer import GAZETTEER, GazetteerMatcher, load_lists

from conftest import small_model_config, tiny_corpus, twitter_nlp


def _write_lists(folder, lists):
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in lists.items():
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf8")
    return folder


# ---------------------------------------------------------------------------------------------
# load_lists


def test_load_lists_lowercases_normalises_and_dedupes(tmp_path):
    folder = _write_lists(tmp_path / "lex", {
        "people": ["Lady Gaga", "lady  gaga", "LADY GAGA", "", "  ", "Adele", "\tTom\tBrady "],
        "sports.team": ["Knicks", "knicks"],
    })
    lists = load_lists(folder, ["people", "sports.team"])
    assert lists == {"people": ["lady gaga", "adele", "tom brady"], "sports.team": ["knicks"]}
    # only the named lists, in the order asked for
    assert list(load_lists(folder, ["sports.team"])) == ["sports.team"]


def test_load_lists_bad_bytes_do_not_crash(tmp_path):
    folder = tmp_path / "lex"
    folder.mkdir()
    (folder / "x").write_bytes(b"caf\xe9\nParis\n")
    assert load_lists(folder, ["x"])["x"][1] == "paris"


def test_load_lists_missing_folder_names_it(tmp_path):
    missing = tmp_path / "no" / "such" / "lexicons"
    with pytest.raises(ValueError, match="does not exist") as err:
        load_lists(missing, ["people"])
    assert str(missing) in str(err.value)


def test_load_lists_missing_file_names_it(tmp_path):
    folder = _write_lists(tmp_path / "lex", {"people": ["adele"]})
    with pytest.raises(ValueError, match="gazetteer_lists") as err:
        load_lists(folder, ["people", "venues"])
    assert str(folder / "venues") in str(err.value)


# ---------------------------------------------------------------------------------------------
# GazetteerMatcher.flags


def _cols(flags, i):
    """(begin column, continue column) of list i, as lists of ints."""
    return flags[:, 2 * i].astype(int).tolist(), flags[:, 2 * i + 1].astype(int).tolist()


def test_flags_shape_and_multiword():
    m = GazetteerMatcher({"loc": ["new york", "madison square garden"], "per": ["adele"]}, max_len=6)
    assert m.width == 4
    words = "Adele at Madison Square Garden in New York".split()
    flags = m.flags(words)
    assert flags.shape == (8, 4) and flags.dtype == numpy.float32
    assert _cols(flags, 0) == ([0, 0, 1, 0, 0, 0, 1, 0], [0, 0, 0, 1, 1, 0, 0, 1])
    assert _cols(flags, 1) == ([1, 0, 0, 0, 0, 0, 0, 0], [0] * 8)


def test_flags_are_case_insensitive_and_need_the_whole_phrase():
    m = GazetteerMatcher({"loc": ["new york city"]}, max_len=6)
    assert _cols(m.flags("NEW YORK CITY".split()), 0) == ([1, 0, 0], [0, 1, 1])
    # a prefix of a phrase is no match
    assert m.flags("new york".split()).sum() == 0
    assert m.flags("york city".split()).sum() == 0


def test_flags_overlapping_phrases():
    m = GazetteerMatcher({"a": ["new york", "new york city", "york"], "b": ["york city"]}, max_len=6)
    flags = m.flags("I love New York City".split())
    # list a: "new york" and "new york city" begin at New; "york" begins at York
    assert _cols(flags, 0) == ([0, 0, 1, 1, 0], [0, 0, 0, 1, 1])
    # list b: "york city" begins at York, continues at City
    assert _cols(flags, 1) == ([0, 0, 0, 1, 0], [0, 0, 0, 0, 1])


def test_same_phrase_in_two_lists_flags_both():
    m = GazetteerMatcher({"a": ["paris"], "b": ["paris"]}, max_len=3)
    assert m.flags(["Paris"]).tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_hashtags_match_mentions_never():
    m = GazetteerMatcher({"league": ["nba", "@nba", "<usr>", "nba finals"]}, max_len=6)
    flags = m.flags(["#NBA", "@nba", "@NBA", "#nba", "finals", "nba"])
    begins, conts = _cols(flags, 0)
    assert begins == [1, 0, 0, 1, 0, 1]  # hashtags and the bare word; mentions never
    assert conts == [0, 0, 0, 0, 1, 0]  # "#nba finals" is the phrase "nba finals"
    # URLs are not words either
    assert GazetteerMatcher({"x": ["<url>", "http://t.co/x"]}, 6).flags(["http://t.co/x"]).sum() == 0


def test_max_len_cut_off():
    lists = {"x": ["a b c", "a b", "d e f g"]}
    words = "a b c d e f g".split()
    short = GazetteerMatcher(lists, max_len=2)
    # only "a b" (2 words) is kept; the 3- and 4-word entries are dropped
    assert _cols(short.flags(words), 0) == ([1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0])
    long = GazetteerMatcher(lists, max_len=4)
    assert _cols(long.flags(words), 0) == ([1, 0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 1, 1, 1])
    # a phrase at the very end of the tweet still fits
    assert _cols(long.flags(["d", "e", "f", "g"]), 0) == ([1, 0, 0, 0], [0, 1, 1, 1])


def test_empty_inputs():
    m = GazetteerMatcher({"a": ["x"], "b": []}, max_len=6)
    flags = m.flags([])
    assert flags.shape == (0, 4)
    assert GazetteerMatcher({}, max_len=6).flags(["x"]).shape == (1, 0)


def test_batch_flags_equal_per_doc_flags_and_never_cross_docs():
    """The batch path (distinct strings once, Python only where a phrase may start) gives what
    ``flags`` gives doc by doc; a phrase split over two docs is no match."""
    import spacy

    nlp = spacy.blank("en")
    m = GazetteerMatcher({"loc": ["new york", "new york city", "york"], "team": ["ny knicks", "knicks"]}, max_len=6)
    texts = ["I love New York City", "ny knicks at New", "York city", "", "#Knicks win in new york"]
    docs = [nlp(t) for t in texts]
    want = numpy.concatenate([m.flags([t.text for t in doc]) for doc in docs if len(doc)])
    got = m.batch_flags(docs)
    assert got.shape == want.shape and got.tolist() == want.tolist()
    # "New" ends doc 1 and "York city" starts doc 2: no "new york" across them
    new_at_end_of_doc1 = len(docs[0]) + len(docs[1]) - 1
    assert docs[1][-1].text == "New" and got[new_at_end_of_doc1].sum() == 0
    assert got[:, 0].tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1]
    assert m.doc_flags(docs[2]).tolist() == m.flags(["York", "city"]).tolist()


# ---------------------------------------------------------------------------------------------
# inside the component


@pytest.fixture()
def lexicons(tmp_path):
    return _write_lists(tmp_path / "lexicons", {
        "people.person": ["Lady Gaga", "Barack Obama", "Tom Brady", "carmelo anthony"],
        "location.city": ["new york", "paris", "tokyo", "boston"],
    })


def _gazetteer_layer(ner):
    """The knowledge sub-layer of the features layer that holds the lists."""
    layers = [layer for layer in knowledge_layers(ner.model.get_ref("features")) if layer.name == GAZETTEER]
    assert len(layers) == 1
    return layers[0]


def _gazetteer_config(folder):
    return small_model_config(gazetteer_dir=str(folder), gazetteer_lists=["people.person", "location.city"],
                              gazetteer_max_len=4)


def test_add_pipe_with_gazetteer_merges_into_default_config(lexicons):
    nlp = twitter_nlp()
    ner = nlp.add_pipe("twitter_bilstm_ner", config={"model": {"features": {
        "gazetteer_dir": str(lexicons), "gazetteer_lists": ["people.person", "location.city"]}}})
    nlp.initialize(lambda: tiny_corpus(nlp, n=10))
    gazetteer = _gazetteer_layer(ner)
    assert gazetteer.attrs["entries"]["location.city"] == ["new york", "paris", "tokyo", "boston"]
    assert gazetteer.get_dim("nO") == 4
    assert ner.model.get_ref("features").get_ref("embed").shims[0]._model.n_extra == 4
    doc = nlp("Lady Gaga lands in New York")
    assert all(e.label_ in ("person", "geo-loc") for e in doc.ents)


def test_initialize_with_missing_list_names_it(tmp_path, lexicons):
    nlp = twitter_nlp()
    cfg = small_model_config(gazetteer_dir=str(lexicons), gazetteer_lists=["people.person", "venues"])
    nlp.add_pipe("twitter_bilstm_ner", config=cfg)
    with pytest.raises(ValueError) as err:
        nlp.initialize(lambda: tiny_corpus(nlp, n=10))
    assert str(lexicons / "venues") in str(err.value)


def test_lists_travel_inside_the_saved_model(tmp_path, lexicons):
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(0)
    nlp = twitter_nlp()
    nlp.add_pipe("twitter_bilstm_ner", config=_gazetteer_config(lexicons))
    examples = tiny_corpus(nlp, n=40)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(3):
        for i in range(0, len(examples), 8):
            nlp.update(examples[i:i + 8], sgd=optimizer, drop=0.0)
    texts = ["Lady Gaga is in Paris tonight", "omg Tom Brady just landed in Boston !!",
             "@fan saw Barack Obama at Tokyo http://t.co/q #live"]
    before = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]
    probs_before = nlp.get_pipe("twitter_bilstm_ner").tag_probabilities(nlp(texts[0]))[0]

    nlp.to_disk(tmp_path / "model")
    shutil.rmtree(lexicons)
    assert not lexicons.exists()

    loaded = spacy.load(tmp_path / "model")
    gazetteer = _gazetteer_layer(loaded.get_pipe("twitter_bilstm_ner"))
    assert gazetteer.attrs["entries"]["people.person"] == ["lady gaga", "barack obama", "tom brady",
                                                          "carmelo anthony"]
    after = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in loaded.pipe(texts)]
    assert after == before
    probs_after = loaded.get_pipe("twitter_bilstm_ner").tag_probabilities(loaded(texts[0]))[0]
    numpy.testing.assert_allclose(probs_after, probs_before, rtol=1e-5, atol=1e-6)
    # the flags are really computed on the loaded model's input
    matcher_input = [t.text for t in loaded.make_doc(texts[0])]
    flags = GazetteerMatcher(gazetteer.attrs["entries"], 4).flags(matcher_input)
    assert flags[:, 0].tolist()[:2] == [1.0, 0.0] and flags[:, 1].tolist()[:2] == [0.0, 1.0]
    numpy.testing.assert_array_equal(gazetteer.predict([loaded.make_doc(texts[0])]), flags)
    # and a pickled copy (no list folder either)
    import pickle

    copy = pickle.loads(pickle.dumps(loaded))
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in copy.pipe(texts)] == before
    numpy.testing.assert_array_equal(_gazetteer_layer(copy.get_pipe("twitter_bilstm_ner")).predict([copy.make_doc(texts[0])]), flags)


def test_uninitialized_lists_give_a_clear_error(lexicons):
    nlp = twitter_nlp()
    ner = nlp.add_pipe("twitter_bilstm_ner", config=_gazetteer_config(lexicons))
    with pytest.raises(ValueError, match="gazetteer lists have not been loaded"):
        _gazetteer_layer(ner).predict([nlp.make_doc("Lady Gaga")])


def test_lists_without_a_folder(tmp_path):
    nlp = twitter_nlp()
    nlp.add_pipe("twitter_bilstm_ner", config=small_model_config(gazetteer_lists=["people"]))
    with pytest.raises(ValueError, match="gazetteer_dir is not"):
        nlp.initialize(lambda: tiny_corpus(nlp, n=4))

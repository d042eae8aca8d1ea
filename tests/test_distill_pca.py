"""The distilled vectors do not depend on the sign LAPACK picks for each SVD component."""

import numpy

from conftest import load_script


def _distill():
    return load_script("distill_vectors")


def test_pca_components_have_a_fixed_sign(monkeypatch):
    distill = _distill()
    X = numpy.random.default_rng(0).normal(size=(40, 6)).astype("float32")
    reduced, mean, comps, ratio = distill.pca(X, 3)
    svd = numpy.linalg.svd

    def flipped_svd(a, full_matrices=True):
        u, s, vt = svd(a, full_matrices=full_matrices)
        return -u, s, -vt

    monkeypatch.setattr(distill.numpy.linalg, "svd", flipped_svd)
    reduced2, _, comps2, _ = distill.pca(X, 3)
    numpy.testing.assert_allclose(comps2, comps, atol=1e-6)
    numpy.testing.assert_allclose(reduced2, reduced, atol=1e-5)
    top = comps[numpy.arange(3), numpy.abs(comps).argmax(axis=1)]
    assert (top > 0).all()


def test_lexicon_words_are_frequent_lowercased_and_new(monkeypatch):
    """--lexicon-words: the most probable words of en_lexeme_prob, lower-cased (the best
    probability of any casing), none already in the vocabulary, no duplicates."""
    distill = _distill()
    table = {"The": -3.0, "the": -2.0, "Paris": -5.0, "paris": -9.0, "Cavani": -7.0, "@someone": -4.0, " ": -1.0}
    monkeypatch.setattr("spacy.util.load_language_data", lambda path: table)
    words = distill.lexicon_words(3, have=["the"])
    # "the" is known; "<USR>" (the mention's key) ranks at -4.0; Paris at -5.0 (its best casing)
    assert words == ["<USR>", "paris", "cavani"]
    assert distill.lexicon_words(0, have=[]) == []
    assert distill.lexicon_words(100, have=[]) == ["the", "<USR>", "paris", "cavani"]

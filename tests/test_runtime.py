"""Process-wide settings and memory release (spacy_twitter_ner.runtime), and the component's
``pipe``, which gives freed heap memory back while annotating a stream."""
import os

import numpy
import pytest
from spacy.util import raise_error

from spacy_twitter_ner import component, runtime
from spacy_twitter_ner.models.lexical import MAX_CACHED_ROWS, LexicalTable, char_ids


def test_trim_heap_returns_a_bool_and_does_not_crash():
    assert isinstance(runtime.trim_heap(), bool)
    assert isinstance(runtime.trim_heap(), bool)


def test_trim_heap_without_glibc(monkeypatch):
    monkeypatch.setattr(runtime, "_libc_malloc_trim", lambda: None)
    assert runtime.trim_heap() is False


def test_onednn_cache_default_and_the_users_choice(monkeypatch):
    name, value = runtime.ONEDNN_CACHE
    monkeypatch.delenv(name, raising=False)
    runtime.bound_onednn_cache()
    assert os.environ[name] == value == "0"
    monkeypatch.setenv(name, "16")
    runtime.bound_onednn_cache()
    assert os.environ[name] == "16"  # a user's setting is kept


@pytest.fixture()
def trims(monkeypatch):
    calls = []
    monkeypatch.setattr(component, "trim_heap", lambda: calls.append(1) or True)
    return calls


def test_pipe_trims_every_n_docs_and_at_the_end(trained, trims, monkeypatch):
    nlp, _ = trained
    monkeypatch.setattr(component, "TRIM_EVERY_DOCS", 10)
    texts = [f"@user{i} loves Paris and the New York Knicks" for i in range(25)]
    docs = list(nlp.pipe(texts, batch_size=4))
    assert len(docs) == 25
    # 4+4+4 -> 12 >= 10, again after 24, then the remaining 1 at the end
    assert len(trims) == 3
    # the same annotations as one doc at a time
    single = [nlp(t) for t in texts]
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == \
        [[(e.start, e.end, e.label_) for e in d.ents] for d in single]


def test_pipe_without_docs_does_not_trim(trained, trims):
    nlp, _ = trained
    assert list(nlp.pipe([])) == [] and trims == []


def test_pipe_errors_go_to_the_error_handler(trained, trims, monkeypatch):
    nlp, _ = trained
    ner = nlp.get_pipe("twitter_bilstm_ner")
    seen = []

    def broken(docs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ner, "predict", broken)
    with pytest.raises(RuntimeError, match="boom"):
        list(ner.pipe([nlp.make_doc("a b")]))
    ner.set_error_handler(lambda name, proc, docs, e: seen.append((name, len(docs), str(e))))
    try:
        assert list(ner.pipe([nlp.make_doc("a b"), nlp.make_doc("c")], batch_size=8)) == []
        assert seen == [("twitter_bilstm_ner", 2, "boom")]
    finally:
        ner.set_error_handler(raise_error)


def test_lexical_memo_is_compact_and_bounded(monkeypatch):
    import spacy
    from spacy.tokens import Doc

    table = LexicalTable(["<PAD>", "<UNK>", "paris"], lower=True, max_chars=6, n_chars=64)
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["Paris", "abcdefghij", "Paris"])
    words, chars, index, shapes, lengths = table.featurize_batch([doc])
    assert words.tolist() == [2, 1, 2]
    numpy.testing.assert_array_equal(chars[index[1]][: chars.shape[1]], char_ids("abcdefghij", 6, 64)[: chars.shape[1]])
    assert all(isinstance(row, int) for row in table._rows.values())  # one int per string
    monkeypatch.setattr("spacy_twitter_ner.models.lexical.MAX_CACHED_ROWS", 3)
    many = Doc(nlp.vocab, words=[f"w{i}" for i in range(10)])
    table.featurize_batch([many])
    assert len(table._rows) <= 3
    assert MAX_CACHED_ROWS > 1_000  # a batch's working set fits

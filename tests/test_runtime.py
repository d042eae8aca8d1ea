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
    assert os.environ[name] == value and 0 < int(value) < 1024  # bounded, below oneDNN's default
    monkeypatch.setenv(name, "16")
    runtime.bound_onednn_cache()
    assert os.environ[name] == "16"  # a user's setting is kept


@pytest.fixture()
def trims(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "trim_heap", lambda: calls.append(1) or True)
    monkeypatch.setattr(component, "HEAP", runtime.HeapTrimmer(10))
    monkeypatch.setattr(component, "TRIM_AFTER_STREAM_DOCS", 30)
    return calls


def test_heap_trimmer_counts_across_threads(trims):
    import threading

    trimmer = runtime.HeapTrimmer(100)
    threads = [threading.Thread(target=lambda: [trimmer.add(1) for _ in range(250)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trims) == 10  # 1,000 docs, one trim per 100, none lost to a race


def test_pipe_and_call_trim_every_n_docs(trained, trims):
    nlp, _ = trained
    texts = [f"@user{i} loves Paris and the New York Knicks" for i in range(25)]
    docs = list(nlp.pipe(texts, batch_size=4))
    assert len(docs) == 25
    # 4+4+4 -> 12 >= 10: trim, count 0; 4+4+4 -> trim; 1 left: no trim for it
    assert len(trims) == 2
    # one doc at a time counts too: the 1 left + 9 more reach 10
    single = [nlp(t) for t in texts[:8]]
    assert len(trims) == 2
    single.append(nlp(texts[8]))
    assert len(trims) == 3
    single += [nlp(t) for t in texts[9:]]
    # the same annotations either way
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == \
        [[(e.start, e.end, e.label_) for e in d.ents] for d in single]


def test_a_long_stream_trims_at_its_end(trained, trims):
    nlp, _ = trained
    list(nlp.pipe(["Paris"] * 29, batch_size=100))  # shorter than TRIM_AFTER_STREAM_DOCS (30)
    assert len(trims) == 1  # 29 >= 10 after its one batch
    list(nlp.pipe(["Paris"] * 5))
    assert len(trims) == 1
    list(nlp.pipe(["Paris"] * 30, batch_size=100))
    assert len(trims) == 3  # after the batch, and at the end of the stream
    assert component.HEAP._count == 0


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
    with pytest.raises(RuntimeError, match="boom"):
        ner(nlp.make_doc("a b"))
    ner.set_error_handler(lambda name, proc, docs, e: seen.append((name, len(docs), str(e))))
    try:
        assert list(ner.pipe([nlp.make_doc("a b"), nlp.make_doc("c")], batch_size=8)) == []
        doc = nlp.make_doc("d e")
        assert ner(doc) is doc and not doc.ents
        assert seen == [("twitter_bilstm_ner", 2, "boom"), ("twitter_bilstm_ner", 1, "boom")]
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
    table = LexicalTable(["<PAD>", "<UNK>", "paris"], lower=True, max_chars=6, n_chars=64)
    many = Doc(nlp.vocab, words=[f"w{i}" for i in range(10)])
    table.featurize_batch([many])
    assert len(table._rows) <= 2 * 3  # two generations of MAX_CACHED_ROWS
    assert MAX_CACHED_ROWS > 1_000  # a batch's working set fits

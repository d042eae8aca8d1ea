"""Lexical features from a token's text alone (spacy_twitter_ner.models.lexical): the word key
(``<USR>``/``<URL>`` normalisation), shapes, hashed characters, the vocabulary, the per-string
table."""
import numpy
import spacy
from spacy.tokens import Doc

from spacy_twitter_ner.models.lexical import (
    PAD,
    PAD_ID,
    SHAPE_ID,
    SHAPES,
    UNK,
    UNK_ID,
    LexicalTable,
    build_vocab,
    char_id_rows,
    char_ids,
    shape_class,
    word_key,
)
from spacy_twitter_ner.tokenizer import URL, USR


def test_build_vocab_reserves_pad_and_unk():
    words = build_vocab(["b", "a", "b", PAD, UNK, "c", "c", "c"], min_freq=1, max_size=None)
    assert words[:2] == [PAD, UNK] and PAD_ID == 0 and UNK_ID == 1
    assert words[2:] == ["c", "b", "a"]
    assert build_vocab(["b", "a", "b"], min_freq=2, max_size=None) == [PAD, UNK, "b"]
    assert build_vocab(["b", "a", "b", "c", "c", "c"], min_freq=1, max_size=3) == [PAD, UNK, "c"]
    assert build_vocab([], min_freq=1, max_size=None) == [PAD, UNK]
    # ties keep the order of first appearance
    assert build_vocab(["y", "x", "z", "x", "y", "z"], min_freq=1, max_size=None)[2:] == ["y", "x", "z"]


def test_word_key():
    assert word_key("@someone", True) == USR and word_key("@someone", False) == USR
    assert word_key("https://example.com/X", True) == URL
    assert word_key("http://t.co/q", False) == URL
    assert word_key("Paris", True) == "paris" and word_key("Paris", False) == "Paris"
    assert word_key("@", True) == "@"  # a lone "@" is not a mention


def test_shape_classes():
    cases = {
        "paris": "lower", "PARIS": "upper", "Paris": "title", "A": "title", "iPhone": "mixed",
        "2024": "digits", "a1b2": "alnum-digit", "@bob": "mention", "#nba": "hashtag",
        "http://t.co/x": "url", "!!": "punct", " ": "space", "😀": "other",
    }
    for text, name in cases.items():
        assert SHAPES[shape_class(text)] == name, text
    assert SHAPES[0] == "<pad>" and SHAPE_ID["<pad>"] == 0


def _char_ids_reference(text, max_chars, n_chars):
    """The definition, one character at a time."""
    if len(text) > max_chars:
        head = max_chars // 2
        text = text[:head] + text[len(text) - (max_chars - head):]
    out = numpy.zeros((max_chars,), dtype="int64")
    for i, c in enumerate(text):
        out[i] = 1 + ord(c) % (n_chars - 1)
    return out


def test_char_id_rows_equal_the_definition():
    texts = ["abc", "", "abcdefghijklmnop", "😀👍🏽x", "Müller’s", "\ud800lone", "#NBA", "a" * 7, "é" * 40]
    for max_chars, n_chars in ((6, 64), (20, 512), (7, 3)):
        rows = char_id_rows(texts, max_chars, n_chars)
        assert rows.shape == (len(texts), max_chars) and rows.dtype == numpy.int64
        for text, row in zip(texts, rows):
            numpy.testing.assert_array_equal(row, _char_ids_reference(text, max_chars, n_chars), err_msg=text)
            numpy.testing.assert_array_equal(char_ids(text, max_chars, n_chars), row)
    assert char_id_rows([], 6, 64).shape == (0, 6)
    assert not char_id_rows(["", ""], 6, 64).any()


def test_char_ids_hash_and_pad():
    ids = char_ids("abc", max_chars=6, n_chars=64)
    assert ids.shape == (6,) and ids.dtype == numpy.int64
    assert (ids[:3] > 0).all() and (ids[:3] < 64).all() and (ids[3:] == 0).all()
    # a long token keeps its first and last characters
    long = char_ids("abcdefghijklmnop", max_chars=6, n_chars=64)
    numpy.testing.assert_array_equal(long[:3], char_ids("abc", 6, 64)[:3])
    numpy.testing.assert_array_equal(long[3:], char_ids("nop", 6, 64)[:3])


def test_lexical_table_maps_mentions_urls_and_unknown():
    vocab = spacy.blank("en").vocab
    words = [PAD, UNK, "paris", USR, URL]
    table = LexicalTable(words, True, 20, 512)
    doc = Doc(vocab, words=["@never_seen", "http://never.seen/x", "zzzunknownzzz", "Paris", "<UNK>", "@"])
    ids, chars, shapes, lengths = table.featurize([doc])
    assert ids.tolist() == [3, 4, UNK_ID, 2, UNK_ID, UNK_ID]
    assert shapes[0] == SHAPE_ID["mention"] and shapes[1] == SHAPE_ID["url"] and shapes[3] == SHAPE_ID["title"]
    assert chars.shape[0] == 6 and lengths.tolist() == [6]
    # a vocabulary without <USR>/<URL>: mentions and URLs are unknown words
    ids = LexicalTable([PAD, UNK, "paris"], True, 20, 512).featurize([doc])[0]
    assert ids[:3].tolist() == [UNK_ID, UNK_ID, UNK_ID] and ids[3] == 2
    # a cased table
    assert LexicalTable([PAD, UNK, "paris"], False, 20, 512).featurize([doc])[0][3] == UNK_ID


def test_featurize_batch_runs_chars_once_per_distinct_string():
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab, words=["a", "bb", "a"]), Doc(vocab, words=[]), Doc(vocab, words=["bb", "ccc"])]
    table = LexicalTable([PAD, UNK, "a"], True, 20, 512)
    words, uniq_chars, index, shapes, lengths = table.featurize_batch(docs)
    assert lengths.tolist() == [3, 0, 2]
    assert words.tolist() == [2, UNK_ID, 2, UNK_ID, UNK_ID]
    assert uniq_chars.shape == (3, 3)  # 3 distinct strings, trimmed to the longest (3 chars)
    numpy.testing.assert_array_equal(uniq_chars[index], table.featurize(docs)[1])
    assert index[0] == index[2] and index[1] == index[3]
    for i, text in enumerate(["a", "bb", "a", "bb", "ccc"]):
        numpy.testing.assert_array_equal(uniq_chars[index[i]], char_ids(text, 20, 512)[:3])


def test_featurize_batch_without_tokens():
    vocab = spacy.blank("en").vocab
    words, chars, index, shapes, lengths = LexicalTable([PAD, UNK], True, 20, 512).featurize_batch(
        [Doc(vocab, words=[]), Doc(vocab, words=[])])
    assert words.shape == index.shape == shapes.shape == (0,)
    assert chars.shape == (0, 1) and lengths.tolist() == [0, 0]


def test_string_memo_is_bounded_and_keeps_frequent_strings():
    """Two generations of ``limit`` entries: memory stays bounded over an endless stream, and a
    string met in each generation (a frequent one) survives the turnover."""
    from spacy_twitter_ner.models.lexical import StringMemo

    memo = StringMemo(limit=3)
    memo[1] = "the"
    for key in range(100, 200):  # a stream of new strings, "the" met again now and then
        if memo.get(key) is None:
            memo[key] = str(key)
        if key % 2 == 0:
            assert memo.get(1) == "the"
        assert len(memo) <= 6
    assert memo.get(100) is None  # a string met once is forgotten
    assert memo.get(1) == "the" and memo.get(404, "default") == "default"
    memo.clear()
    assert len(memo) == 0 and memo.get(1) is None

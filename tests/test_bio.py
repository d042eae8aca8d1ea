"""The BIO tag set (spacy_twitter_ner.models.bio): tag layout, hard constraints by the number of
tags, gold tag ids (unknown gold -> -1) and spans from tags."""
import numpy
import pytest
import spacy
from spacy.tokens import Doc

from spacy_twitter_ner.models.bio import (
    FORBIDDEN,
    bio_constraints,
    bio_tags,
    doc_bio_tags,
    gold_tag_ids,
    tags_to_spans,
)


def allowed(prev: str, cur: str) -> bool:
    """BIO: ``I-X`` only after ``B-X`` or ``I-X``."""
    return not cur.startswith("I-") or (prev != "O" and prev[2:] == cur[2:])


def test_bio_tags_layout():
    assert bio_tags([]) == ["O"]
    assert bio_tags(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    # label order is kept (not sorted)
    assert bio_tags(["person", "geo-loc"]) == ["O", "B-person", "I-person", "B-geo-loc", "I-geo-loc"]


@pytest.mark.parametrize("labels", [[], ["PER"], ["PER", "LOC"], ["a", "b", "c", "d"]])
def test_constraints_follow_from_the_number_of_tags(labels):
    tags = bio_tags(labels)
    trans, start = bio_constraints(len(tags))
    assert trans.shape == (len(tags), len(tags)) and start.shape == (len(tags),)
    assert trans.dtype == numpy.float32 and start.dtype == numpy.float32
    for i, p in enumerate(tags):
        for j, c in enumerate(tags):
            assert trans[i, j] == (0.0 if allowed(p, c) else FORBIDDEN), (p, c)
    for j, c in enumerate(tags):
        assert start[j] == (FORBIDDEN if c.startswith("I-") else 0.0), c


@pytest.mark.parametrize("n_tags", [0, 2, 4, -1])
def test_constraints_reject_sizes_that_are_no_bio_tag_set(n_tags):
    with pytest.raises(ValueError, match="1 \\+ 2 \\* labels"):
        bio_constraints(n_tags)


def test_forbidden_is_large_negative_but_finite():
    assert FORBIDDEN <= -1e3 and numpy.isfinite(FORBIDDEN)


TAG_IDS = {t: i for i, t in enumerate(bio_tags(["person", "geo-loc"]))}


def test_gold_tag_ids_from_biluo():
    biluo = ["U-person", "O", "B-geo-loc", "I-geo-loc", "L-geo-loc", "O", "B-person", "L-person"]
    got = gold_tag_ids(biluo, TAG_IDS)
    assert got.dtype == numpy.int64
    want = ["B-person", "O", "B-geo-loc", "I-geo-loc", "I-geo-loc", "O", "B-person", "I-person"]
    assert got.tolist() == [TAG_IDS[t] for t in want]


def test_gold_tag_ids_unknown_and_missing_are_minus_one():
    # None: misaligned; "-": missing annotation; "" too; a label outside the label set
    biluo = [None, "O", "-", "U-person", "", "U-company", "B-company", "L-company", "O"]
    got = gold_tag_ids(biluo, TAG_IDS)
    assert got.tolist() == [-1, TAG_IDS["O"], -1, TAG_IDS["B-person"], -1, -1, -1, -1, TAG_IDS["O"]]


def test_gold_tag_ids_unknown_inside_an_entity_keeps_its_neighbours():
    got = gold_tag_ids(["B-person", None, "L-person"], TAG_IDS)
    assert got.tolist() == [TAG_IDS["B-person"], -1, TAG_IDS["I-person"]]


def test_gold_tag_ids_empty():
    got = gold_tag_ids([], TAG_IDS)
    assert got.shape == (0,) and got.dtype == numpy.int64


@pytest.fixture(scope="module")
def vocab():
    return spacy.blank("en").vocab


def test_tags_to_spans(vocab):
    doc = Doc(vocab, words="Lady Gaga is in New York City tonight".split())
    spans = tags_to_spans(doc, ["B-person", "I-person", "O", "O", "B-geo-loc", "I-geo-loc", "I-geo-loc", "O"])
    assert [(s.start, s.end, s.label_, s.text) for s in spans] == [
        (0, 2, "person", "Lady Gaga"), (4, 7, "geo-loc", "New York City")]
    # adjacent entities, entities at both ends
    spans = tags_to_spans(doc, ["B-person", "B-person", "O", "O", "O", "O", "B-geo-loc", "I-geo-loc"])
    assert [(s.start, s.end, s.label_) for s in spans] == [(0, 1, "person"), (1, 2, "person"), (6, 8, "geo-loc")]
    assert tags_to_spans(doc, ["O"] * 8) == []
    assert tags_to_spans(Doc(vocab, words=[]), []) == []


def test_doc_bio_tags_round_trip(vocab):
    doc = Doc(vocab, words="Lady Gaga is in New York".split())
    tags = ["B-person", "I-person", "O", "O", "B-geo-loc", "I-geo-loc"]
    doc.ents = tags_to_spans(doc, tags)
    assert doc_bio_tags(doc) == tags
    assert doc_bio_tags(Doc(vocab, words=["a", "b"])) == ["O", "O"]

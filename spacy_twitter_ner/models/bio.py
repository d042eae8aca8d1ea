"""The BIO tag set the taggers predict, and its hard constraints.

Tags are laid out as ``O, B-l1, I-l1, B-l2, I-l2, ...`` in label order, so the constraints
(an ``I-X`` only after ``B-X``/``I-X``, never first) follow from the number of tags alone: a
decoder needs no label strings to stay valid. Converting tags to and from spans is spaCy's job
(``iob_to_biluo``, ``biluo_tags_to_spans``, ``biluo_to_iob``).
"""
from typing import List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy.training import biluo_tags_to_spans, biluo_to_iob, iob_to_biluo

# A large negative score rather than -inf: keeps log-sum-exp free of NaNs while making a
# forbidden transition impossible in practice.
FORBIDDEN = -1e4


def bio_tags(labels: Sequence[str]) -> List[str]:
    """``O`` then ``B-``/``I-`` for each label, in label order."""
    tags = ["O"]
    for label in labels:
        tags.extend((f"B-{label}", f"I-{label}"))
    return tags


def bio_constraints(n_tags: int) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Additive scores for the layout of ``bio_tags``: 0 where allowed, FORBIDDEN where BIO
    forbids. Returns (transitions[prev, cur], start[cur]), float32."""
    if n_tags < 1 or n_tags % 2 != 1:
        raise ValueError(f"BIO tag sets have 1 + 2 * labels tags, got {n_tags}")
    trans = numpy.zeros((n_tags, n_tags), dtype="float32")
    start = numpy.zeros((n_tags,), dtype="float32")
    for cur in range(2, n_tags, 2):  # I- tags
        start[cur] = FORBIDDEN
        allowed = (cur - 1, cur)  # B-X, I-X
        trans[[i for i in range(n_tags) if i not in allowed], cur] = FORBIDDEN
    return trans, start


def gold_tag_ids(biluo: Sequence[Optional[str]], tag_ids: dict) -> numpy.ndarray:
    """Tag ids for BILUO gold tags (from ``Example.get_aligned_ner``): -1 where the gold tag is
    unknown (missing, misaligned, or a label outside the label set)."""
    known = [t if t not in (None, "", "-") else "O" for t in biluo]
    iob = biluo_to_iob(known)
    return numpy.asarray(
        [-1 if b in (None, "", "-") else tag_ids.get(t, -1) for b, t in zip(biluo, iob)],
        dtype="int64",
    )


def doc_tag_ids(doc: Doc, label_ids: dict) -> numpy.ndarray:
    """Tag ids of ``doc.ents`` read straight from the token attributes (the fast path when the
    gold doc has the predicted tokens): -1 for tokens without annotation or with a label not
    in ``label_ids`` (label -> its index in the label list)."""
    if not len(doc):
        return numpy.zeros((0,), dtype="int64")
    iob = doc.to_array("ENT_IOB").astype("int64")  # 0 missing, 1 I, 2 O, 3 B
    types = doc.to_array("ENT_TYPE")
    strings = doc.vocab.strings
    index = {t: label_ids.get(strings[int(t)], -1) for t in numpy.unique(types).tolist() if t}
    label = numpy.array([index.get(int(t), -1) for t in types.tolist()], dtype="int64")
    out = numpy.full(len(doc), -1, dtype="int64")
    out[iob == 2] = 0
    known = ((iob == 1) | (iob == 3)) & (label >= 0)
    out[known] = 2 * label[known] + numpy.where(iob[known] == 3, 1, 2)
    return out


def tags_to_spans(doc: Doc, tags: Sequence[str]) -> List[Span]:
    """Entity spans of valid BIO ``tags`` (as the constrained decoders produce)."""
    return biluo_tags_to_spans(doc, iob_to_biluo(list(tags)))


def doc_bio_tags(doc: Doc) -> List[str]:
    """BIO strings (``B-person``, ``I-person``, ``O``) of ``doc.ents``."""
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ in ("B", "I") else "O" for t in doc]

"""Distillation, step 2: the ``spacy train`` corpus reader that mixes gold tweets with tweets a
teacher labelled (``python -m spacy_twitter_ner.training.teach``).

    [corpora.train]
    @readers = "spacy_twitter_ner.DistillCorpus.v1"
    gold = ${paths.train}        # .spacy file or folder: read like spacy.Corpus.v1, gold_preproc = true
    silver = ${paths.silver}     # the teach output folder (teach-summary.json + shards), or null
    silver_per_epoch = 20000     # a fresh random sample of that many teacher-labelled tweets per epoch (0: all)
    soft = true                  # true: the teacher's tag distributions (cross-entropy); false: its entities
    shuffle = true               # shuffle each epoch's examples
    seed = ${system.seed}
    max_length = 0               # silver tweets longer than this (tokens) are left out (0: no limit)
    limit = 0                    # read at most this many gold and this many silver tweets (0: all)

Each call is an epoch: all gold tweets, plus (with ``silver``) ``silver_per_epoch`` teacher-labelled
tweets drawn without replacement by ``numpy.random.default_rng([seed, epoch])``, where ``epoch``
counts the calls of this reader object (``spacy train`` resolves one reader for ``initialize``, which
builds the component's word vocabulary, and another for the training loop: both start with the
epoch-0 sample). spaCy calls the corpus once per epoch only when ``[training] max_epochs = -1``
(a "streamed" corpus, stopped by ``max_steps``; otherwise it reads it once and reshuffles that list),
and then does not shuffle it: per-epoch sampling needs ``max_epochs = -1`` and ``shuffle = true``.

Silver tweets are the teacher's tokens (the Twitter tokenizer); like gold_preproc gold tweets, the
predicted doc is rebuilt from those words. With ``soft = true`` the reference doc keeps the
teacher's ``SOFT_TARGETS`` (``(tokens, tags)``) in its ``user_data`` and the component trains
on the cross-entropy against them; with ``soft = false`` they are dropped and the teacher's
entities (its Viterbi path) are the labels. The teacher's tags must be the student's, in the same
order: a student without labels yet gets the teacher's; otherwise a mismatch is an error.

With ``silver = null`` and ``shuffle = false`` the reader is exactly ``spacy.Corpus.v1`` with
``gold_preproc = true`` (and with ``shuffle = true``, that corpus shuffled per epoch).
"""
import json
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus, Example
from spacy.util import registry

# absolute imports: the module also works as ``spacy train --code spacy_twitter_ner/training/distill.py``
from spacy_twitter_ner.component import SOFT_TARGETS, TwitterBiLSTMNER
from spacy_twitter_ner.training.teach import SUMMARY_FILE

READER_NAME = "spacy_twitter_ner.DistillCorpus.v1"
_DOCBIN_LISTS = ("tokens", "spaces", "cats", "span_groups", "flags", "user_data")


@registry.readers(READER_NAME)
def create_distill_corpus(
    gold: Optional[Path],
    silver: Optional[Path] = None,
    silver_per_epoch: int = 20000,
    soft: bool = True,
    shuffle: bool = False,
    seed: int = 0,
    max_length: int = 0,
    limit: int = 0,
) -> Callable[[Language], Iterable[Example]]:
    """Gold tweets plus a per-epoch sample of teacher-labelled tweets (see the module
    docstring)."""
    return DistillCorpus(gold, silver, silver_per_epoch=silver_per_epoch, soft=soft, shuffle=shuffle,
                         seed=seed, max_length=max_length, limit=limit)


def read_summary(silver: Path) -> Dict:
    """The teach run's summary, checked: it lists shards that all exist."""
    path = Path(silver) / SUMMARY_FILE
    if not path.exists():
        raise ValueError(
            f"{READER_NAME}: {silver} holds no {SUMMARY_FILE}: not the output of a teacher pass "
            "(python -m spacy_twitter_ner.training.teach / `spacy project run teach`)"
        )
    summary = json.loads(path.read_text(encoding="utf8"))
    if not summary.get("complete"):
        raise ValueError(f"{READER_NAME}: the teacher pass in {silver} did not finish; run it again (it resumes)")
    missing = [s["shard"] for s in summary.get("shards", []) if not (Path(silver) / s["shard"]).exists()]
    if missing:
        raise ValueError(f"{READER_NAME}: {silver} is missing the shards {', '.join(missing[:5])}; run the teacher pass again")
    if not summary.get("shards"):
        raise ValueError(f"{READER_NAME}: the teacher pass in {silver} annotated no tweets")
    return summary


def _subset(db: DocBin, keep: Sequence[int]) -> DocBin:
    """``db`` reduced to the docs ``keep`` (sorted indices), so that only those are built."""
    if all(isinstance(getattr(db, name, None), list) for name in _DOCBIN_LISTS) and len(db.user_data) == len(db):
        for name in _DOCBIN_LISTS:
            values = getattr(db, name)
            setattr(db, name, [values[i] for i in keep])
    return db


class DistillCorpus:
    def __init__(self, gold: Optional[Path], silver: Optional[Path] = None, *, silver_per_epoch: int = 20000,
                 soft: bool = True, shuffle: bool = False, seed: int = 0, max_length: int = 0,
                 limit: int = 0) -> None:
        if gold is None and silver is None:
            raise ValueError(f"{READER_NAME}: give gold tweets (paths.train), silver ones (paths.silver) or both")
        if silver_per_epoch < 0:
            raise ValueError(f"{READER_NAME}: silver_per_epoch must be >= 0 (0: all), got {silver_per_epoch}")
        self.gold = None if gold is None else Corpus(gold, gold_preproc=True, max_length=max_length, limit=limit)
        self.silver = None if silver is None else Path(silver)
        self.silver_per_epoch = silver_per_epoch
        self.soft = soft
        self.shuffle = shuffle
        self.seed = seed
        self.max_length = max_length
        self.limit = limit
        self.epoch = 0
        self.summary: Optional[Dict] = read_summary(self.silver) if self.silver is not None else None
        self._pool: Optional[List[numpy.ndarray]] = None  # per shard: indices of its usable docs

    # -- the silver pool ------------------------------------------------------------------

    @property
    def shard_paths(self) -> List[Path]:
        assert self.silver is not None and self.summary is not None
        return [self.silver / s["shard"] for s in self.summary["shards"]]

    def pool(self) -> List[numpy.ndarray]:
        """Per shard, the indices of the docs that can be drawn: non-empty, at most max_length
        tokens, within the first ``limit`` (read once, from the token arrays)."""
        if self._pool is None:
            pool, left = [], self.limit or None
            for path in self.shard_paths:
                lengths = numpy.asarray([len(t) for t in DocBin().from_disk(path).tokens])
                ok = lengths > 0
                if self.max_length:
                    ok &= lengths <= self.max_length
                idx = numpy.flatnonzero(ok)
                if left is not None:
                    idx = idx[:left]
                    left -= len(idx)
                pool.append(idx)
            self._pool = pool
        return self._pool

    def sample(self, epoch: int) -> List[numpy.ndarray]:
        """Per shard, the sorted indices of the docs drawn for ``epoch``."""
        pool = self.pool()
        sizes = numpy.asarray([len(p) for p in pool])
        total = int(sizes.sum())
        k = total if self.silver_per_epoch == 0 else min(self.silver_per_epoch, total)
        rng = numpy.random.default_rng([self.seed, epoch])
        flat = numpy.sort(rng.choice(total, size=k, replace=False)) if k < total else numpy.arange(total)
        bounds = numpy.concatenate([[0], numpy.cumsum(sizes)])
        return [p[flat[(flat >= lo) & (flat < hi)] - lo] for p, lo, hi in zip(pool, bounds[:-1], bounds[1:])]

    def silver_docs(self, nlp: Language, epoch: int) -> Iterable[Doc]:
        for path, keep in zip(self.shard_paths, self.sample(epoch)):
            if len(keep):
                db = _subset(DocBin().from_disk(path), keep.tolist())
                docs = list(db.get_docs(nlp.vocab))
                if len(docs) != len(keep):  # an unknown DocBin layout: build all, pick
                    docs = [docs[i] for i in keep]
                yield from docs

    # -- labels -----------------------------------------------------------------------------

    def check_labels(self, nlp: Language) -> None:
        """A student ``twitter_bilstm_ner`` without labels gets the teacher's (so its tags are
        the teacher's, in order); one with labels must predict the teacher's tags."""
        assert self.summary is not None
        teacher_tags = list(self.summary["tags"])
        for name, pipe in nlp.pipeline:
            if not isinstance(pipe, TwitterBiLSTMNER):
                continue
            if not pipe.labels:
                for label in self.summary["labels"]:
                    pipe.add_label(label)
            if self.soft and list(pipe.tags) != teacher_tags:
                raise ValueError(
                    f"{READER_NAME}: the teacher in {self.silver} predicts the tags {teacher_tags}, but the "
                    f"student's component '{name}' predicts {list(pipe.tags)}: the distributions' columns "
                    f"would not match. Give the student the teacher's labels in this order "
                    f"([components.{name}] labels = {json.dumps(self.summary['labels'])}) or retrain the "
                    "teacher with the student's labels"
                )

    # -- an epoch ---------------------------------------------------------------------------

    def _silver_example(self, nlp: Language, reference: Doc) -> Example:
        if not self.soft:
            reference.user_data.pop(SOFT_TARGETS, None)
        predicted = Doc(nlp.vocab, words=[t.text for t in reference],
                        spaces=[bool(t.whitespace_) for t in reference])
        return Example(predicted, reference)

    def __call__(self, nlp: Language) -> Iterable[Example]:
        epoch = self.epoch
        self.epoch += 1
        if self.silver is None and not self.shuffle:
            assert self.gold is not None
            return self.gold(nlp)
        examples: List[Example] = list(self.gold(nlp)) if self.gold is not None else []
        if self.silver is not None:
            self.check_labels(nlp)
            examples.extend(self._silver_example(nlp, doc) for doc in self.silver_docs(nlp, epoch))
        if self.shuffle:
            order = numpy.random.default_rng([self.seed, epoch, 1]).permutation(len(examples))
            examples = [examples[i] for i in order]
        return examples

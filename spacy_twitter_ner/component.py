"""The ``twitter_bilstm_ner`` pipeline component: a ``TrainablePipe`` that predicts BIO tags with
the BiLSTM tagger and writes them to ``doc.ents``, each entity with a confidence in
``span._.score``."""
import functools
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.attrs import IS_SPACE
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer
from wasabi import msg

from . import __version__
from .models import crf, encoder, features, softmax, tagger  # noqa: F401  (registers the architectures)
from .models.bio import bio_tags, doc_tag_ids, gold_tag_ids, tags_to_spans
from .models.scores import TagScores
from .runtime import HeapTrimmer, bound_onednn_cache, one_torch_thread_in_forked_children

# Freed heap memory goes back to the OS each time this process has annotated this many more docs:
# ragged batches fragment glibc's heap (measured over 34k tweets: ~65 MB resident but free). One
# trim costs about a millisecond, 10,000 tweets ~5 s: no measurable speed cost.
TRIM_EVERY_DOCS = 10_000
# ... and at the end of a stream of at least this many docs (a job is done; a web request of a few
# texts is not worth a trim of its own)
TRIM_AFTER_STREAM_DOCS = 1_000
HEAP = HeapTrimmer(TRIM_EVERY_DOCS)

# Key of a teacher's per-token tag distributions in a reference doc's user_data (distillation).
SOFT_TARGETS = "spacy_twitter_ner.teacher_probs"
# Bumped whenever a saved model can no longer be read by this code (2: the CRF as a layer,
# knowledge sources as sub-layers).
FORMAT_VERSION = 2

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_twitter_ner.BiLSTMTagger.v1"

[model.features]
@architectures = "spacy_twitter_ner.TokenFeatures.v1"
width = 200
word_dim = 100
lower = true
min_freq = 1
max_words = null
char_dim = 30
char_filters = 50
char_window = 3
max_chars = 20
n_chars = 512
shape_dim = 16
dropout = 0.3

[model.encoder]
@architectures = "spacy_twitter_ner.BiLSTMEncoder.v1"
nI = 200
hidden = 200
depth = 1
dropout = 0.3

[model.decoder]
@architectures = "spacy_twitter_ner.CRFDecoder.v1"
nO = null
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]

if not Span.has_extension("score"):
    Span.set_extension("score", default=None)


@Language.factory(
    "twitter_bilstm_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "span._.score"],
    default_config={
        "model": DEFAULT_MODEL,
        "labels": [],
        "outside_bias": 0.0,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_twitter_bilstm_ner(
    nlp: Language, name: str, model: Model, labels: List[str], outside_bias: float, scorer: Optional[Callable]
) -> "TwitterBiLSTMNER":
    return TwitterBiLSTMNER(nlp.vocab, model, name, labels=labels, outside_bias=outside_bias, scorer=scorer)


def _same_tokens(eg: Example) -> bool:
    """The gold doc has the predicted tokens (gold_preproc, or the tokenizer agrees): no
    alignment needed."""
    x, y = eg.predicted, eg.reference
    return len(x) == len(y) and all(a.text == b.text for a, b in zip(x, y))


class TwitterBiLSTMNER(TrainablePipe):
    """Named entities for tweets from a BiLSTM(-CRF) tagger over BIO tags."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "twitter_bilstm_ner",
        *,
        labels: Optional[Sequence[str]] = None,
        outside_bias: float = 0.0,
        scorer: Optional[Callable] = None,
    ) -> None:
        """``outside_bias``: taken off every token's ``O`` score before the best path is
        chosen (> 0: more, longer entities; < 0: fewer); 0 in training, and a saved pipeline's
        value is set on dev by ``scripts/tune_outside_bias.py`` (its config.cfg)."""
        try:
            bias = float(outside_bias)
        except (TypeError, ValueError):
            bias = float("nan")
        if not numpy.isfinite(bias):
            raise ValueError(f"twitter_bilstm_ner: outside_bias must be a finite number, got {outside_bias!r}")
        self.outside_bias = bias
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict = {"labels": list(labels or []), "format": FORMAT_VERSION, "version": __version__}
        one_torch_thread_in_forked_children()
        bound_onednn_cache()

    # -- labels -----------------------------------------------------------------------------

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tags(self) -> List[str]:
        """The BIO tags the model predicts: its output columns, in order."""
        return bio_tags(self.labels)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(f"twitter_bilstm_ner: a label must be a string, got {label!r}")
        if label in self.labels:
            return 0
        if self.model.get_ref("output").has_dim("nO") is True:
            raise ValueError(
                f"twitter_bilstm_ner: cannot add label {label!r} to a trained model (it predicts "
                f"{len(self.tags)} tags); add labels before nlp.initialize()"
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    # -- training ---------------------------------------------------------------------------

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
        init_corpus: Optional[Callable[[Language], Iterable[Example]]] = None,
    ) -> None:
        """Labels from the data (or ``labels``/the config); then the model initialises itself
        from every training doc (its word vocabulary) and the tag set (its output size).

        ``init_corpus`` ([initialize.components.<name>.init_corpus], a registered reader): the
        examples to initialise from instead of ``get_examples``. Needed with a streamed training
        corpus ([training] max_epochs = -1), for which spaCy passes only its first 100 examples:
        a word vocabulary built from 100 tweets leaves nearly every word unknown."""
        if init_corpus is not None:
            if nlp is None:
                raise ValueError("twitter_bilstm_ner: initialize(init_corpus=...) needs nlp= to read the corpus")
            get_examples = functools.partial(init_corpus, nlp)
        validate_get_examples(get_examples, "TwitterBiLSTMNER.initialize")
        data_labels: Dict[str, int] = {}
        docs: List[Doc] = []
        n_empty = 0
        for eg in get_examples():
            n_empty += len(eg.reference) == 0
            for ent in eg.reference.ents:
                data_labels[ent.label_] = data_labels.get(ent.label_, 0) + 1
            docs.append(eg.reference)
        if not docs:
            raise ValueError("twitter_bilstm_ner: initialize() got no training examples")
        if n_empty:
            msg.warn(f"twitter_bilstm_ner: {n_empty} of {len(docs)} training examples are empty tweets")
        wanted = list(labels) if labels is not None else list(self.cfg["labels"])
        if wanted:
            unknown = {k: v for k, v in data_labels.items() if k not in wanted}
            if unknown:
                msg.warn(
                    "twitter_bilstm_ner: entities with labels outside the label set are ignored "
                    f"in training: {sum(unknown.values())} entities ({', '.join(sorted(unknown))})"
                )
        else:
            wanted = sorted(data_labels)
        if not wanted:
            raise ValueError("twitter_bilstm_ner: no labels given and no entities in the training data")
        self.cfg["labels"] = list(dict.fromkeys(wanted))
        for label in self.labels:
            self.vocab.strings.add(label)
        self.model.initialize(X=docs, Y=self.tags)

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = [eg for eg in examples if len(eg.predicted)]
        validate_examples(examples, "TwitterBiLSTMNER.update")
        if not examples:
            return losses
        scores, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, scores)
        backprop(d_scores)
        if sgd not in (None, False):
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: TagScores) -> Tuple[float, TagScores]:
        """The decoder's loss against the gold tags (a mean over tokens with a known gold tag),
        or, for tweets a teacher labelled with tag distributions (``SOFT_TARGETS`` in the
        reference doc's ``user_data``), the cross-entropy against those (distillation)."""
        examples = list(examples)
        ids = self.gold_tag_ids(examples)
        soft = self.soft_targets(examples)
        if soft is not None:
            ids[soft.sum(axis=1) > 0] = -1
        return scores.loss(ids, soft=soft)

    def soft_targets(self, examples: Sequence[Example]) -> Optional[numpy.ndarray]:
        """(tokens, tags) teacher distributions for the examples that carry them, zero rows
        elsewhere; None when no example does. The teacher must predict the same tags."""
        rows: List[numpy.ndarray] = []
        found = False
        for eg in examples:
            probs = eg.reference.user_data.get(SOFT_TARGETS)
            if probs is not None and _same_tokens(eg):
                probs = numpy.asarray(probs, dtype="float32")
                if probs.shape != (len(eg.predicted), len(self.tags)):
                    raise ValueError(
                        f"twitter_bilstm_ner: a teacher-labelled tweet has tag distributions of shape "
                        f"{probs.shape}, expected ({len(eg.predicted)}, {len(self.tags)}): the teacher "
                        "must predict the same labels as this component"
                    )
                found = True
                rows.append(probs)
            else:
                rows.append(numpy.zeros((len(eg.predicted), len(self.tags)), dtype="float32"))
        return numpy.concatenate(rows) if found else None

    def gold_tag_ids(self, examples: Iterable[Example]) -> numpy.ndarray:
        """Flat gold tag ids aligned to the predicted tokens; -1 where unknown (misaligned or
        missing annotation, or a label outside the label set)."""
        tag_ids = {tag: i for i, tag in enumerate(self.tags)}
        label_ids = {label: i for i, label in enumerate(self.labels)}
        parts = [
            doc_tag_ids(eg.reference, label_ids) if _same_tokens(eg)
            else gold_tag_ids(eg.get_aligned_ner(), tag_ids)
            for eg in examples
        ]
        return numpy.concatenate(parts) if parts else numpy.zeros((0,), dtype="int64")

    # -- prediction -------------------------------------------------------------------------

    def __call__(self, doc: Doc) -> Doc:
        """``TrainablePipe.__call__`` (errors to the error handler), counted for heap trimming."""
        try:
            self.set_annotations([doc], self.predict([doc]))
        except Exception as e:
            self.get_error_handler()(self.name, self, [doc], e)
        HEAP.add(1)
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """``TrainablePipe.pipe`` (predict + set_annotations per batch, errors to the error
        handler), each batch counted for heap trimming (``TRIM_EVERY_DOCS``; and a trim at the
        end of a stream of ``TRIM_AFTER_STREAM_DOCS`` or more)."""
        error_handler = self.get_error_handler()
        n_docs = 0
        for docs in util.minibatch(stream, size=batch_size):
            try:
                preds = self.predict(docs)
                self.set_annotations(docs, preds)
                yield from docs
            except Exception as e:
                error_handler(self.name, self, docs, e)
            HEAP.add(len(docs))
            n_docs += len(docs)
        if n_docs >= TRIM_AFTER_STREAM_DOCS:
            HEAP.trim()

    def predict(self, docs: Iterable[Doc]) -> List[Tuple[numpy.ndarray, numpy.ndarray]]:
        """Per doc: tag ids of the best valid path, and the (tokens, tags) probability of every
        tag for every token (CRF marginals, or the softmax of a softmax decoder)."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [(numpy.zeros(len(doc), "int64"), numpy.zeros((len(doc), len(self.tags)))) for doc in docs]
        return self.decode(docs, self.model.predict(docs))

    def decode(self, docs: List[Doc], scores: TagScores, outside_bias: Optional[float] = None
               ) -> List[Tuple[numpy.ndarray, numpy.ndarray]]:
        """``predict``'s output from the model's scores of ``docs`` (a batch with tokens), with
        ``outside_bias`` (default: the component's); lets a caller decode one prediction under
        several biases (``scripts/tune_outside_bias.py``)."""
        # white space tokens are never part of an entity
        outside = numpy.concatenate([doc.to_array(IS_SPACE) for doc in docs]).astype(bool)
        bias = self.outside_bias if outside_bias is None else outside_bias
        paths, probs = scores.decode(outside=outside, outside_bias=bias)
        ops = self.model.ops
        return [(ops.to_numpy(path), ops.to_numpy(p)) for path, p in zip(paths, probs)]

    def set_annotations(self, docs: Iterable[Doc], preds) -> None:
        """``doc.ents`` from the paths; each entity's ``span._.score`` is the mean probability
        of its tags."""
        tags = self.tags
        for doc, (path, probs) in zip(docs, preds):
            if not numpy.any(path):  # all O: most tweets; no span conversion needed
                doc.ents = []
                continue
            spans = tags_to_spans(doc, [tags[i] for i in path])
            chosen = probs[numpy.arange(len(path)), path]
            for span in spans:
                span._.score = float(chosen[span.start : span.end].mean())
            doc.ents = spans

    def tag_probabilities(self, docs: Union[Doc, Iterable[Doc]]) -> List[numpy.ndarray]:
        """(tokens, tags) probability of every BIO tag for every token (``self.tags`` names the
        columns): CRF marginals, or the softmax of a softmax decoder."""
        docs = [docs] if isinstance(docs, Doc) else list(docs)
        return [probs for _, probs in self.predict(docs)]

    # -- serialization ----------------------------------------------------------------------

    def _check_cfg(self, where: str) -> None:
        found = self.cfg.get("format")
        if found != FORMAT_VERSION:
            raise ValueError(
                f"twitter_bilstm_ner: {where} holds a model in format {found!r} (spacy-twitter-ner "
                f"{self.cfg.get('version', 'unknown')}); this spacy-twitter-ner {__version__} reads "
                f"format {FORMAT_VERSION}. Retrain, or install the version that saved it."
            )

    def _load_model_bytes(self, data: bytes, where: str) -> None:
        try:
            self.model.from_bytes(data)
        except Exception as err:  # noqa: BLE001 - any failure here means an unusable file
            raise ValueError(
                f"twitter_bilstm_ner: could not load the model weights from {where}: the file is "
                f"truncated, corrupted or from an incompatible version ({type(err).__name__}: "
                f"{str(err)[:200]})"
            ) from None

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "TwitterBiLSTMNER":
        path = util.ensure_path(path)
        for part in ("cfg", "model"):
            if part not in exclude and not (path / part).exists():
                raise ValueError(
                    f"twitter_bilstm_ner: the pipeline directory is missing the file {path / part}; "
                    "save the pipeline again with nlp.to_disk()"
                )
        if "cfg" not in exclude:
            try:
                self.cfg.update(srsly.read_json(path / "cfg"))
            except ValueError as err:
                raise ValueError(f"twitter_bilstm_ner: unreadable config file {path / 'cfg'}: {err}") from None
            self._check_cfg(str(path))
        if "vocab" not in exclude and (path / "vocab").exists():
            self.vocab.from_disk(path / "vocab", exclude=exclude)
        if "model" not in exclude:
            self._load_model_bytes((path / "model").read_bytes(), str(path / "model"))
        return self

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "TwitterBiLSTMNER":
        try:
            parts = srsly.msgpack_loads(bytes_data)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"twitter_bilstm_ner: unreadable serialized component ({err})") from None
        if "cfg" not in exclude and "cfg" in parts:
            try:
                self.cfg.update(srsly.json_loads(parts["cfg"]))
            except ValueError as err:
                raise ValueError(f"twitter_bilstm_ner: unreadable config in the serialized component ({err})") from None
            self._check_cfg("the given bytes")
        if "vocab" not in exclude and "vocab" in parts:
            self.vocab.from_bytes(parts["vocab"], exclude=exclude)
        if "model" not in exclude:
            if "model" not in parts:
                raise ValueError("twitter_bilstm_ner: the serialized component holds no model")
            self._load_model_bytes(parts["model"], "the given bytes")
        return self

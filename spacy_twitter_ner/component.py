"""The ``twitter_bilstm_ner`` pipeline component: a ``TrainablePipe`` that predicts BIO tags with
the BiLSTM tagger and writes them to ``doc.ents``, each entity with a confidence in
``span._.score``."""
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy import util
from spacy.attrs import IS_SPACE, ORTH
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, Ragged
from wasabi import msg

from . import __version__
from .architectures import crf_layer, init_gazetteer, set_n_tags, set_word_vocab
from .decoding import FORBIDDEN, bio_constraints, marginals as crf_marginals, bio_tags, crf_loss, forward_backward, pad_scores, softmax, viterbi
from .features import build_vocab, word_key
from .torch_modules import trim_heap

# Bumped whenever a saved model can no longer be read by this code.
FORMAT_VERSION = 1
N_INIT_SAMPLES = 10
# Updates between heap trims (see torch_modules.trim_heap).
TRIM_EVERY = 20
# Docs decoded together (sorted by length) in Viterbi and forward-backward.
DECODE_CHUNK = 32

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
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_twitter_bilstm_ner(
    nlp: Language, name: str, model: Model, labels: List[str], scorer: Optional[Callable]
) -> "TwitterBiLSTMNER":
    return TwitterBiLSTMNER(nlp.vocab, model, name, labels=labels, scorer=scorer)


class TwitterBiLSTMNER(TrainablePipe):
    """Named entities for tweets from a BiLSTM(-CRF) tagger over BIO tags."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "twitter_bilstm_ner",
        *,
        labels: Optional[Sequence[str]] = None,
        scorer: Optional[Callable] = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict = {"labels": list(labels or []), "format": FORMAT_VERSION, "version": __version__}
        self._tag_cache: Optional[Tuple] = None
        self._n_updates = 0

    # -- labels -----------------------------------------------------------------------------

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def tags(self) -> List[str]:
        return self._tag_tables()[0]

    def _tag_tables(self):
        """BIO tags, tag -> id and the BIO constraint scores, recomputed when labels change."""
        if self._tag_cache is None or self._tag_cache[0] != bio_tags(self.labels):
            tags = bio_tags(self.labels)
            trans, start = bio_constraints(tags)
            self._tag_cache = (tags, {t: i for i, t in enumerate(tags)}, trans, start)
        return self._tag_cache

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(f"twitter_bilstm_ner: a label must be a string, got {label!r}")
        if label in self.labels:
            return 0
        if self._is_initialized():
            raise ValueError(
                f"twitter_bilstm_ner: cannot add label {label!r} to a trained model (it predicts "
                f"{len(self.tags)} tags); add labels before nlp.initialize()"
            )
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def _is_initialized(self) -> bool:
        if self.model.attrs.get("ensemble"):
            return True  # assembled from trained members
        decoder = self.model.get_ref("decoder")
        return any(node.has_dim("nO") is True for node in decoder.walk() if node.name == "linear")

    # -- training ---------------------------------------------------------------------------

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> None:
        """Labels from the data (or ``labels``/the config), the word vocabulary from every
        training tweet, then the model's shapes from a small sample."""
        validate_get_examples(get_examples, "TwitterBiLSTMNER.initialize")
        if self.model.attrs.get("ensemble"):
            raise ValueError(
                "twitter_bilstm_ner: this model is an ensemble of trained models "
                "(spacy_twitter_ner.EnsembleTagger.v1); it is assembled with `python -m "
                "spacy_twitter_ner.ensemble`, not initialized or trained. Train its members instead."
            )
        data_labels: Dict[str, int] = {}
        keys: List[str] = []
        sample: List[Doc] = []
        lower = self._features_attr("lower", True)
        n_examples = n_empty = 0
        for eg in get_examples():
            n_examples += 1
            if len(eg.reference) == 0:
                n_empty += 1
            for ent in eg.reference.ents:
                data_labels[ent.label_] = data_labels.get(ent.label_, 0) + 1
            keys.extend(word_key(t.text, lower) for t in eg.reference)
            if len(sample) < N_INIT_SAMPLES:
                sample.append(eg.x)
        if n_examples == 0:
            raise ValueError("twitter_bilstm_ner: initialize() got no training examples")
        if n_empty:
            msg.warn(f"twitter_bilstm_ner: {n_empty} of {n_examples} training examples are empty tweets")
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
        words = build_vocab(keys, self._features_attr("min_freq", 1), self._features_attr("max_words", None))
        set_word_vocab(self.model, words)
        init_gazetteer(self.model)
        set_n_tags(self.model, len(self.tags))
        self.model.initialize(X=sample)

    def _features_attr(self, name: str, default):
        features = self.model.get_ref("features") if self.model.has_ref("features") else None
        if features is None:
            return default
        value = features.attrs.get(name, default)
        return default if value is None and default is not None else value

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
        self._n_updates += 1
        if self._n_updates % TRIM_EVERY == 0:
            trim_heap()
        return losses

    def _gold_ids(self, examples: Sequence[Example]) -> numpy.ndarray:
        """Flat gold tag ids aligned to the predicted tokens; -1 where unknown (misaligned or
        missing annotation, or a label outside the label set)."""
        tag_ids = self._tag_tables()[1]
        out: List[int] = []
        for eg in examples:
            if len(eg.x) == len(eg.y) and numpy.array_equal(eg.x.to_array(ORTH), eg.y.to_array(ORTH)):
                # same tokens (gold_preproc, or the tokenizer agrees): no alignment needed
                biluos = [t.ent_iob_ + ("-" + t.ent_type_ if t.ent_type_ else "") if t.ent_iob_ else None for t in eg.y]
                biluos = ["O" if b == "O" else b for b in biluos]
            else:
                biluos = eg.get_aligned_ner()
            for biluo in biluos:
                if biluo is None or biluo == "-" or biluo == "":
                    out.append(-1)
                elif biluo == "O":
                    out.append(0)
                else:
                    prefix, label = biluo.split("-", 1)
                    bio = ("B-" if prefix in ("B", "U") else "I-") + label
                    out.append(tag_ids.get(bio, -1))
        return numpy.asarray(out, dtype="int64")

    def get_loss(self, examples: Iterable[Example], scores: Ragged) -> Tuple[float, Ragged]:
        """Softmax cross-entropy or CRF negative log-likelihood, averaged over tokens with a known
        gold tag (padding never enters: the batch is ragged, and the CRF masks by length)."""
        examples = list(examples)
        ops = self.model.ops
        gold = self._gold_ids(examples)
        flat = ops.to_numpy(scores.data).astype("float64")
        lengths = ops.to_numpy(scores.lengths)
        n_known = max(1, int((gold >= 0).sum()))
        crf = crf_layer(self.model)
        if crf is None:
            probs = softmax(flat)
            known = gold >= 0
            truth = numpy.zeros_like(probs)
            truth[numpy.arange(len(gold))[known], gold[known]] = 1.0
            d_flat = (probs - truth) * known[:, None] / n_known
            loss = float(-numpy.log(probs[known, gold[known]] + 1e-12).sum() / n_known)
        else:
            _, _, hard_trans, hard_start = self._tag_tables()
            trans = ops.to_numpy(crf.get_param("transitions")).astype("float64") + hard_trans
            start = ops.to_numpy(crf.get_param("start")).astype("float64") + hard_start
            end = ops.to_numpy(crf.get_param("end")).astype("float64")
            gold_padded = pad_scores(gold[:, None], lengths)[:, :, 0] if len(gold) else numpy.zeros((len(lengths), 0), "int64")
            if len(gold):
                mask = numpy.arange(gold_padded.shape[1])[None, :] < lengths[:, None]
                gold_padded = numpy.where(mask, gold_padded, -1)
            loss_sum, d_em, d_trans, d_start, d_end = crf_loss(
                pad_scores(flat, lengths), lengths, gold_padded, trans, start, end
            )
            mask = numpy.arange(d_em.shape[1])[None, :] < lengths[:, None]
            d_flat = d_em[mask] / n_known
            crf.inc_grad("transitions", ops.asarray2f((d_trans / n_known).astype("float32")))
            crf.inc_grad("start", ops.asarray1f((d_start / n_known).astype("float32")))
            crf.inc_grad("end", ops.asarray1f((d_end / n_known).astype("float32")))
            loss = loss_sum / n_known
        d_scores = Ragged(ops.asarray2f(d_flat.astype("float32")), scores.lengths)
        return loss, d_scores

    # -- prediction -------------------------------------------------------------------------

    def _decode(self, docs: Sequence[Doc], scores: Ragged) -> Tuple[List[numpy.ndarray], List[numpy.ndarray]]:
        """Per doc: the constrained Viterbi path and the per-token tag probabilities (CRF
        marginals, or the softmax of a softmax decoder). Docs are decoded in chunks of similar
        length, so the time-step loops do not run over the padding of one long tweet."""
        _, _, hard_trans, hard_start = self._tag_tables()
        ops = self.model.ops
        flat = ops.to_numpy(scores.data).astype("float64")
        lengths = ops.to_numpy(scores.lengths).astype("int64")
        # whitespace tokens are never part of an entity
        is_space = numpy.concatenate([doc.to_array(IS_SPACE) for doc in docs if len(doc)] or [numpy.zeros(0)])
        if is_space.any():
            flat[is_space.astype(bool), 1:] = FORBIDDEN
        crf = crf_layer(self.model)
        if crf is None:
            trans, start, end = hard_trans, hard_start, None
            flat = numpy.log(softmax(flat) + 1e-12)  # Viterbi over log-probabilities
        else:
            trans = ops.to_numpy(crf.get_param("transitions")) + hard_trans
            start = ops.to_numpy(crf.get_param("start")) + hard_start
            end = ops.to_numpy(crf.get_param("end"))
        per_doc = numpy.split(flat, numpy.cumsum(lengths)[:-1]) if len(lengths) else []
        paths: List[numpy.ndarray] = [numpy.zeros(0, "int64")] * len(per_doc)
        probs: List[numpy.ndarray] = [numpy.zeros((0, flat.shape[1]))] * len(per_doc)
        order = numpy.argsort(lengths, kind="stable")
        for lo in range(0, len(order), DECODE_CHUNK):
            chunk = order[lo : lo + DECODE_CHUNK]
            chunk_lengths = lengths[chunk]
            if chunk_lengths.max(initial=0) == 0:
                continue
            emissions = pad_scores(numpy.concatenate([per_doc[i] for i in chunk]), chunk_lengths)
            best = viterbi(emissions, chunk_lengths, trans, start, end)
            if crf is None:
                marginals = softmax(emissions)
            else:
                marginals = crf_marginals(emissions, chunk_lengths, trans, start, end)
            for j, i in enumerate(chunk):
                n = chunk_lengths[j]
                paths[i], probs[i] = best[j, :n], marginals[j, :n]
        return paths, probs

    def predict(self, docs: Iterable[Doc]):
        """Per doc: tag ids of the best valid path and the probability of each chosen tag."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):
            return [(numpy.zeros(len(doc), "int64"), numpy.ones(len(doc))) for doc in docs]
        paths, probs = self._decode(docs, self.model.predict(docs))
        return [(path, p[numpy.arange(len(path)), path]) for path, p in zip(paths, probs)]

    def set_annotations(self, docs: Iterable[Doc], preds) -> None:
        tags = self.tags
        for doc, (path, tag_probs) in zip(docs, preds):
            ents: List[Span] = []
            start = None
            for i, tag_id in enumerate(list(path) + [0]):
                tag = tags[tag_id]
                if start is not None and not tag.startswith("I-"):
                    ents.append(self._entity(doc, start, i, tags[path[start]][2:], tag_probs))
                    start = None
                if tag.startswith("B-"):
                    start = i
            doc.ents = ents

    @staticmethod
    def _entity(doc: Doc, start: int, end: int, label: str, tag_probs: numpy.ndarray) -> Span:
        span = Span(doc, start, end, label=label)
        span._.score = float(numpy.mean(tag_probs[start:end]))
        return span

    def tag_probabilities(self, docs: Union[Doc, Iterable[Doc]]) -> List[numpy.ndarray]:
        """(tokens, tags) probability of every BIO tag for every token (``self.tags`` names the
        columns): CRF marginals, or the softmax of a softmax decoder."""
        docs = [docs] if isinstance(docs, Doc) else list(docs)
        if not any(len(doc) for doc in docs):
            return [numpy.zeros((len(doc), len(self.tags))) for doc in docs]
        return self._decode(docs, self.model.predict(docs))[1]

    # -- serialization ----------------------------------------------------------------------

    def _check_cfg(self, where: str) -> None:
        found = self.cfg.get("format")
        if found != FORMAT_VERSION:
            raise ValueError(
                f"twitter_bilstm_ner: {where} holds a model in format {found!r} (spacy-twitter-ner "
                f"{self.cfg.get('version', 'unknown')}); this spacy-twitter-ner {__version__} reads "
                f"format {FORMAT_VERSION}. Retrain, or install the version that saved it."
            )
        self._tag_cache = None

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

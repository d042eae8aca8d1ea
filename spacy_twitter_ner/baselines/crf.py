"""The classical peer: a linear-chain CRF over hand-made token features (sklearn-crfsuite).

This is the CoNLL-style CRF recipe (lower-cased word, 2-3 character prefixes and suffixes,
capitalisation and digit flags, word shape, plus the Twitter flags ``is_mention``/``is_hashtag``/
``is_url``), with the same features copied from the neighbours at offsets -2..+2 and
``BOS``/``EOS`` markers. It exists to put the neural ``twitter_bilstm_ner`` in context: same
corpora, same tokenizer, same scorer.

Python API::

    crf = train_crf(train_docs, c1=0.1, c2=0.1, max_iterations=100)
    predicted = predict_docs(crf, [Doc(vocab, words=[t.text for t in d]) for d in dev_docs])
    scores = evaluate_docs(crf, dev_docs)          # spaCy's ents_p / ents_r / ents_f (0-1)

spaCy component (``nlp.pipe`` end to end, the Twitter tokenizer included)::

    import spacy_twitter_ner.baselines.crf  # registers the factory "twitter_crf_ner"
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_twitter_ner.TwitterTokenizer.v1"}}})
    ner = nlp.add_pipe("twitter_crf_ner", config={"c1": 0.1, "c2": 0.1})
    nlp.initialize(lambda: train_examples)   # trains the CRF on the examples' reference docs
    nlp.to_disk("model"); spacy.load("model")

The trained ``sklearn_crfsuite.CRF`` is pickled to ``<component dir>/model.pkl``. Loading a
pickle runs code from the file: only load models you trained yourself.
"""
import pickle
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example, biluo_tags_to_spans, iob_to_biluo
from spacy.util import minibatch
from spacy.vocab import Vocab

from ..conll import repair_bio
from ..models.bio import doc_bio_tags
from ..tokenizer import URL, twitter_norm

__all__ = [
    "DEFAULT_HPARAMS",
    "WINDOW",
    "token_features",
    "doc_features",
    "doc_bio_tags",
    "train_crf",
    "predict_tags",
    "set_bio_ents",
    "predict_docs",
    "evaluate_docs",
    "TwitterCRFNER",
    "make_twitter_crf_ner",
]

#: Documented defaults of :func:`train_crf` (L-BFGS with elastic-net regularisation).
DEFAULT_HPARAMS: Dict = {
    "algorithm": "lbfgs",  # crfsuite's training algorithm
    "c1": 0.1,  # L1 regularisation coefficient
    "c2": 0.1,  # L2 regularisation coefficient
    "max_iterations": 100,  # L-BFGS iterations
    "all_possible_transitions": True,  # also learn (negative) weights for unseen transitions
}
#: Neighbours at -WINDOW..+WINDOW contribute their features (prefixed with the offset).
WINDOW = 2
MODEL_FILENAME = "model.pkl"
CFG_FILENAME = "cfg.json"
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------


def _shape(text: str) -> str:
    """Word shape: X for upper, x for lower, d for digits, other characters kept; runs of
    the same class longer than 4 are cut to 4 (spaCy's ``token.shape_`` convention)."""
    out: List[str] = []
    last, run = "", 0
    for ch in text:
        if ch.isalpha():
            c = "X" if ch.isupper() else "x"
        elif ch.isdigit():
            c = "d"
        else:
            c = ch
        if c == last:
            run += 1
        else:
            last, run = c, 1
        if run <= 4:
            out.append(c)
    return "".join(out)


def _short_shape(shape: str) -> str:
    """Shape with runs collapsed to one character ("Xxxxx" -> "Xx", "dd:dd" -> "d:d")."""
    out: List[str] = []
    for c in shape:
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)


def token_features(text: str) -> Dict[str, Union[str, bool]]:
    """The features of one token, computed from its text only (so they do not depend on the
    vocab or language the Doc was made with)."""
    lower = text.lower()
    shape = _shape(text)
    is_mention = len(text) > 1 and text[0] == "@"
    return {
        "lower": lower,
        "norm": twitter_norm(text).lower(),
        "prefix2": lower[:2],
        "prefix3": lower[:3],
        "suffix2": lower[-2:],
        "suffix3": lower[-3:],
        "is_title": text.istitle(),
        "is_upper": text.isupper(),
        "is_digit": text.isdigit(),
        "shape": shape,
        "short_shape": _short_shape(shape),
        "is_mention": is_mention,
        "is_hashtag": len(text) > 1 and text[0] == "#",
        "is_url": twitter_norm(text) == URL,
    }


def doc_features(words: Sequence[str], window: int = WINDOW) -> List[Dict[str, Union[str, bool, float]]]:
    """crfsuite feature dicts for a token sequence: each token's own features, those of its
    neighbours at -window..+window (keys prefixed ``"-1:"``, ``"+2:"`` ...), ``BOS``/``EOS``
    on the first/last token and ``<off>:PAD`` where a neighbour falls outside the tweet."""
    own = [token_features(w) for w in words]
    n = len(words)
    out = []
    for i in range(n):
        feats: Dict[str, Union[str, bool, float]] = {"bias": 1.0}
        feats.update(own[i])
        if i == 0:
            feats["BOS"] = True
        if i == n - 1:
            feats["EOS"] = True
        for off in range(-window, window + 1):
            if off == 0:
                continue
            key = f"{off:+d}:"
            j = i + off
            if 0 <= j < n:
                for name, value in own[j].items():
                    feats[key + name] = value
            else:
                feats[key + "PAD"] = True
        out.append(feats)
    return out


# ------------------------------------------------------------------------------------------
# Training and prediction
# ------------------------------------------------------------------------------------------


def train_crf(
    train_docs: Iterable[Doc],
    *,
    algorithm: str = "lbfgs",
    c1: float = 0.1,
    c2: float = 0.1,
    max_iterations: int = 100,
    all_possible_transitions: bool = True,
    verbose: bool = False,
):
    """Train a ``sklearn_crfsuite.CRF`` on the BIO tags of ``doc.ents``.

    Defaults (see ``DEFAULT_HPARAMS``): ``algorithm="lbfgs"``, ``c1=0.1`` (L1), ``c2=0.1`` (L2),
    ``max_iterations=100``, ``all_possible_transitions=True``. Empty docs are skipped.
    """
    import sklearn_crfsuite  # optional dependency (extra "crf")

    xs, ys = [], []
    for doc in train_docs:
        if len(doc) == 0:
            continue
        xs.append(doc_features([t.text for t in doc]))
        ys.append(doc_bio_tags(doc))
    if not xs:
        raise ValueError("train_crf: no non-empty training docs")
    crf = sklearn_crfsuite.CRF(
        algorithm=algorithm,
        c1=c1,
        c2=c2,
        max_iterations=max_iterations,
        all_possible_transitions=all_possible_transitions,
        verbose=verbose,
    )
    crf.fit(xs, ys)
    return crf


def predict_tags(crf, doc: Doc) -> List[str]:
    """Raw BIO tags the CRF predicts for ``doc`` (no repair)."""
    if len(doc) == 0:
        return []
    return list(crf.predict_single(doc_features([t.text for t in doc])))


def set_bio_ents(doc: Doc, tags: Sequence[str]) -> Doc:
    """Set ``doc.ents`` from BIO tags; an ``I-X`` that continues no ``X`` starts an entity,
    as conlleval reads it. Tokens outside entities are marked ``O`` explicitly."""
    if len(tags) != len(doc):
        raise ValueError(f"{len(tags)} tags for a doc of {len(doc)} tokens")
    repaired, _ = repair_bio(list(tags))
    spans = biluo_tags_to_spans(doc, iob_to_biluo(repaired))
    doc.set_ents(spans, default="outside")
    return doc


def predict_docs(crf, docs: Iterable[Doc]) -> List[Doc]:
    """Set ``doc.ents`` on each doc from the CRF's BIO predictions (in place) and return them."""
    out = []
    for doc in docs:
        set_bio_ents(doc, predict_tags(crf, doc))
        out.append(doc)
    return out


def evaluate_docs(crf, gold_docs: Iterable[Doc]) -> Dict:
    """Score the CRF on gold docs with their own tokenisation (like ``spacy evaluate
    --gold-preproc``), using spaCy's NER scorer: ``ents_p``/``ents_r``/``ents_f`` as 0-1 floats
    and ``ents_per_type``."""
    from spacy.scorer import get_ner_prf

    examples = []
    for gold in gold_docs:
        pred = Doc(gold.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])
        examples.append(Example(predict_docs(crf, [pred])[0], gold))
    return get_ner_prf(examples)


# ------------------------------------------------------------------------------------------
# spaCy component
# ------------------------------------------------------------------------------------------


@Language.factory(
    "twitter_crf_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type"],
    default_config={
        "algorithm": DEFAULT_HPARAMS["algorithm"],
        "c1": DEFAULT_HPARAMS["c1"],
        "c2": DEFAULT_HPARAMS["c2"],
        "max_iterations": DEFAULT_HPARAMS["max_iterations"],
        "all_possible_transitions": DEFAULT_HPARAMS["all_possible_transitions"],
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_twitter_crf_ner(
    nlp: Language,
    name: str,
    algorithm: str,
    c1: float,
    c2: float,
    max_iterations: int,
    all_possible_transitions: bool,
    scorer: Optional[Callable],
) -> "TwitterCRFNER":
    hparams = {
        "algorithm": algorithm,
        "c1": c1,
        "c2": c2,
        "max_iterations": max_iterations,
        "all_possible_transitions": all_possible_transitions,
    }
    return TwitterCRFNER(nlp.vocab, name, hparams=hparams, scorer=scorer)


class TwitterCRFNER:
    """Sets ``doc.ents`` with a trained sklearn-crfsuite CRF.

    Train it with ``nlp.initialize(get_examples)`` (the CRF is fit on the examples' reference
    docs with the component's hyper-parameters) or hand it a CRF from :func:`train_crf` with
    :meth:`set_crf`. It has no ``update``: ``spacy train`` cannot train it.
    """

    def __init__(self, vocab: Vocab, name: str = "twitter_crf_ner", *, hparams: Optional[Dict] = None,
                 scorer: Optional[Callable] = None) -> None:
        self.vocab = vocab
        self.name = name
        self.scorer = scorer
        self.cfg: Dict = {"hparams": dict(DEFAULT_HPARAMS, **(hparams or {})), "format": FORMAT_VERSION,
                          "window": WINDOW}
        self.crf = None

    @property
    def labels(self) -> tuple:
        if self.crf is None:
            return tuple()
        return tuple(sorted({c[2:] for c in self.crf.classes_ if c != "O"}))

    def set_crf(self, crf) -> None:
        self.crf = crf

    def _check_trained(self) -> None:
        if self.crf is None:
            raise ValueError(
                f"{self.name}: the CRF is not trained; call nlp.initialize(get_examples) or set_crf()"
            )

    def __call__(self, doc: Doc) -> Doc:
        self._check_trained()
        return set_bio_ents(doc, predict_tags(self.crf, doc))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        self._check_trained()
        for batch in minibatch(stream, size=batch_size):
            yield from predict_docs(self.crf, batch)

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None) -> None:
        docs = [eg.reference for eg in get_examples()]
        self.crf = train_crf(docs, **self.cfg["hparams"])

    def score(self, examples: Iterable[Example], **kwargs) -> Dict:
        if self.scorer is None:
            from spacy.scorer import get_ner_prf

            return get_ner_prf(examples)
        return self.scorer(examples, **kwargs)

    # -- serialisation ------------------------------------------------------------------------

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        self._check_trained()
        return pickle.dumps({"cfg": self.cfg, "crf": self.crf})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "TwitterCRFNER":
        try:
            data = pickle.loads(bytes_data)
            cfg, crf = data["cfg"], data["crf"]
        except Exception as err:
            raise ValueError(f"{self.name}: cannot load the CRF from bytes: {err!r}") from err
        self._set_loaded(cfg, crf, "<bytes>")
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        self._check_trained()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / CFG_FILENAME, self.cfg)
        with (path / MODEL_FILENAME).open("wb") as fh:
            pickle.dump(self.crf, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "TwitterCRFNER":
        path = Path(path)
        model_file, cfg_file = path / MODEL_FILENAME, path / CFG_FILENAME
        try:
            cfg = srsly.read_json(cfg_file)
        except Exception as err:
            raise ValueError(f"{self.name}: cannot read the component config {cfg_file}: {err!r}") from err
        try:
            with model_file.open("rb") as fh:
                crf = pickle.load(fh)
        except Exception as err:
            raise ValueError(
                f"{self.name}: cannot load the CRF model from {model_file} (missing, corrupted or "
                f"written by an incompatible version): {err!r}"
            ) from err
        self._set_loaded(cfg, crf, str(model_file))
        return self

    def _set_loaded(self, cfg: Dict, crf, where: str) -> None:
        if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_VERSION:
            raise ValueError(f"{self.name}: {where}: unsupported model format {cfg!r}")
        if cfg.get("window", WINDOW) != WINDOW:
            raise ValueError(f"{self.name}: {where}: trained with window {cfg.get('window')}, this code uses {WINDOW}")
        try:
            ok = hasattr(crf, "predict_single") and len(crf.classes_) > 0
        except Exception:  # e.g. a CRF whose model file cannot be opened
            ok = False
        if not ok:
            raise ValueError(f"{self.name}: {where} does not hold a trained sklearn_crfsuite.CRF (got {type(crf).__name__})")
        self.cfg = cfg
        self.crf = crf

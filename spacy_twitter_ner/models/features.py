"""``spacy_twitter_ner.TokenFeatures.v1``: one input row per token, ``width`` wide.

    docs -> knowledge sub-layers (static vectors, a transformer, gazetteer flags, ...: frozen,
            except a fine-tuned transformer, whose columns of the gradient are passed back)
         -> TokenFeaturizer (torch: word embedding over the normalised form, char CNN, shape
            embedding, the knowledge rows; projected to ``width``)

The word vocabulary (``<PAD>``, ``<UNK>``, then the training words) is built by the layer's
``initialize`` from the training docs and saved in its attrs; the gazetteer lists are read
there too and travel with the model.
"""
import functools
import io
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, Ragged, torch2xp, xp2torch
from thinc.types import Floats2d

from .knowledge import BINARY_ROWS, WORD_ROWS
from .knowledge.gazetteer import build_gazetteer_features
from .lexical import PAD, SHAPES, UNK, LexicalTable, build_vocab, word_key
from .pytorch_shim import averaging_pytorch_wrapper
from .torch_modules import TokenFeaturizer

FEATURES = "twitter_features"
EMBED = "twitter_embed"


@registry.architectures("spacy_twitter_ner.TokenFeatures.v1")
def build_token_features(
    width: int,
    word_dim: int,
    lower: bool,
    min_freq: int,
    max_words: Optional[int],
    char_dim: int,
    char_filters: int,
    char_window: int,
    max_chars: int,
    n_chars: int,
    shape_dim: int,
    dropout: float,
    pretrained: Optional[Model[List[Doc], Floats2d]] = None,
    gazetteer_dir: Optional[str] = None,
    gazetteer_lists: Sequence[str] = (),
    gazetteer_max_len: int = 6,
    knowledge: Sequence[Model[List[Doc], Floats2d]] = (),
    word_dropout: float = 0.0,
    word_dropout_knowledge: bool = False,
) -> Model[List[Doc], Ragged]:
    """Word, char CNN and shape embeddings plus frozen knowledge rows (``pretrained``, the
    gazetteer lists in ``gazetteer_dir``, and any ``knowledge`` layers: each a model giving one
    row per token, its width in ``nO``); set a size to 0 to switch a part off. ``word_dropout``:
    the share of training tokens whose word embedding is replaced by ``<UNK>``'s;
    ``word_dropout_knowledge``: those tokens also lose their rows from string lookups (static
    vectors, Brown clusters), as a word none of the tables knows."""
    sources: List[Model] = [m for m in (pretrained,) if m is not None] + list(knowledge)
    if gazetteer_lists:
        sources.append(build_gazetteer_features(gazetteer_dir, gazetteer_lists, gazetteer_max_len))
    module = TokenFeaturizer(
        width=width, n_words=2, word_dim=word_dim, n_chars=n_chars, char_dim=char_dim,
        char_filters=char_filters, char_window=char_window, n_shapes=len(SHAPES),
        shape_dim=shape_dim, n_extra=sum(m.get_dim("nO") for m in sources), dropout=dropout,
        word_dropout=word_dropout, binary_extra=binary_columns(sources),
        lookup_extra=columns_of(sources, WORD_ROWS) if word_dropout_knowledge else (),
        string_extra=columns_of(sources, WORD_ROWS),
    )
    tables = _TableCache(lower, max_chars, n_chars)
    embed = averaging_pytorch_wrapper(
        module,
        convert_inputs=tables.to_tensors,
        convert_outputs=_tensor_to_ragged,
        serialize_model=_save_featurizer,
        deserialize_model=_load_featurizer,
    )
    embed.name = EMBED
    embed.attrs.update(words=[PAD, UNK], lower=lower, min_freq=min_freq, max_words=max_words)
    model = Model(
        FEATURES,
        features_forward,
        init=functools.partial(_init_features, module=module),
        layers=[embed, *sources],
        refs={"embed": embed},
        dims={"nO": width},
    )
    return model


@registry.architectures("spacy_twitter_ner.KnowledgeList.v1")
def knowledge_list(*sources: Model[List[Doc], Floats2d]) -> List[Model[List[Doc], Floats2d]]:
    """``TokenFeatures.v1``'s ``knowledge`` in a config: one ``[...knowledge.*.NAME]`` block per
    source, concatenated in block order (a config cannot hold a plain list of models)."""
    return list(sources)


def binary_columns(sources: Sequence[Model]) -> List[Tuple[int, int]]:
    """(start, end) columns of the concatenated knowledge rows that come from sources of 0/1
    flags (``attrs[BINARY_ROWS]``), in concatenation order."""
    return columns_of(sources, BINARY_ROWS)


def columns_of(sources: Sequence[Model], attr: str) -> List[Tuple[int, int]]:
    """(start, end) columns of the concatenated knowledge rows that come from the sources
    marked with ``attrs[attr]``, in concatenation order."""
    ranges, start = [], 0
    for source in sources:
        width = source.get_dim("nO")
        if source.attrs.get(attr):
            ranges.append((start, start + width))
        start += width
    return ranges


def knowledge_layers(model: Model) -> List[Model]:
    """The frozen sources of a features layer, in the order their rows are concatenated."""
    return list(model.layers[1:])


def features_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Ragged, Callable]:
    extra, backprop_sources = _knowledge_rows(model, docs, is_train)
    Y, backprop_embed = model.get_ref("embed")((docs, extra, backprop_sources is not None), is_train)

    def backprop(dY: Ragged) -> List[Doc]:
        d_extra = backprop_embed(dY)
        if backprop_sources is not None and d_extra is not None:
            backprop_sources(d_extra)
        return docs

    return Y, backprop


def _knowledge_rows(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Optional[numpy.ndarray], Optional[Callable]]:
    """The sources' rows side by side, and (in training, when some source trains, such as a
    fine-tuned transformer) the callback that hands each trainable source its columns of the
    gradient. Frozen sources' backprop is never called."""
    sources = knowledge_layers(model)
    if not sources or not any(len(doc) for doc in docs):
        return None, None
    parts: List[numpy.ndarray] = []
    trainable: List[Tuple[int, int, Callable]] = []
    start = 0
    for source in sources:
        rows, backprop_rows = source(docs, is_train)
        rows = model.ops.to_numpy(rows).astype("float32")
        if is_train and source.attrs.get("trainable"):
            trainable.append((start, start + rows.shape[1], backprop_rows))
        start += rows.shape[1]
        parts.append(rows)
    extra = numpy.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    if not trainable:
        return extra, None

    def backprop_sources(d_extra: Any) -> None:
        d_extra = model.ops.asarray2f(d_extra)
        for lo, hi, backprop_rows in trainable:
            backprop_rows(model.ops.xp.ascontiguousarray(d_extra[:, lo:hi]))

    return extra, backprop_sources


def _init_features(model: Model, X: Optional[List[Doc]] = None, Y: Any = None, *, module: TokenFeaturizer) -> None:
    """The word vocabulary from ``X`` (every training doc: the component passes them all),
    then the knowledge sources' own initialisation (reading the gazetteer lists). ``module``
    is the torch module the embed layer wraps (bound with functools.partial, so deep copies
    and pickles of the layer keep the pair together)."""
    embed = model.get_ref("embed")
    if X is not None:
        a = embed.attrs
        words = build_vocab((word_key(t.text, a["lower"]) for doc in X for t in doc), a["min_freq"], a["max_words"])
        embed.attrs["words"] = words
        module.resize_words(len(words))
    for source in knowledge_layers(model):
        source.initialize(X=X[:10] if X is not None else None)


class _TableCache:
    """The per-string lexical table of the current vocabulary, shared by the threads that
    predict with this layer; rebuilt when the vocabulary changes (initialize, loading)."""

    def __init__(self, lower: bool, max_chars: int, n_chars: int) -> None:
        self.lower, self.max_chars, self.n_chars = lower, max_chars, n_chars
        self._table: Optional[LexicalTable] = None
        self._words: Optional[List[str]] = None
        self._lock = threading.Lock()

    def table(self, words: List[str]) -> LexicalTable:
        with self._lock:
            if self._table is None or self._words is not words:
                self._table = LexicalTable(words, self.lower, self.max_chars, self.n_chars)
                self._words = words
            return self._table

    def to_tensors(self, model: Model, X: Tuple[List[Doc], Optional[numpy.ndarray], bool], is_train: bool):
        """``X``: the docs, the knowledge rows, and whether their gradient is wanted (some
        source trains); the backprop returns that gradient (or None)."""
        docs, extra, extra_grad = X
        device = model.shims[0].device
        words, chars, char_index, shapes, _ = self.table(model.attrs["words"]).featurize_batch(docs)
        ids = [torch.from_numpy(a).to(device) for a in (words, chars, char_index, shapes)]
        if extra is None:
            extra = numpy.zeros((len(words), 0), dtype="float32")
        extra_t = torch.from_numpy(extra).to(device)
        if is_train and extra_grad:
            extra_t.requires_grad_(True)

        def backprop(d_inputs: ArgsKwargs) -> Any:
            grad = d_inputs.args[4]
            return torch2xp(grad) if grad is not None else None

        return ArgsKwargs(args=(*ids, extra_t), kwargs={"is_train": is_train}), backprop

    def __deepcopy__(self, memo: dict) -> "_TableCache":
        return _TableCache(self.lower, self.max_chars, self.n_chars)

    def __getstate__(self) -> dict:  # pickling (a lock cannot be): the table is rebuilt on use
        return {"lower": self.lower, "max_chars": self.max_chars, "n_chars": self.n_chars}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)


def _tensor_to_ragged(model: Model, X_Ytorch: Tuple[Any, Any], is_train: bool):
    (docs, *_), Ytorch = X_Ytorch
    Y = Ragged(torch2xp(Ytorch), model.ops.asarray1i([len(doc) for doc in docs]))

    def backprop(dY: Ragged) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": (xp2torch(dY.data),)})

    return Y, backprop


def _save_featurizer(module: TokenFeaturizer) -> bytes:
    out = io.BytesIO()
    n_words = module.word_embed.num_embeddings if module.word_embed is not None else 0
    torch.save({"n_words": n_words, "state": module.state_dict()}, out)
    return out.getvalue()


def _load_featurizer(module: TokenFeaturizer, data: bytes, device: Any) -> TokenFeaturizer:
    saved = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    if saved["n_words"]:
        module.resize_words(saved["n_words"])
    module.load_state_dict(saved["state"])
    return module.to(device)

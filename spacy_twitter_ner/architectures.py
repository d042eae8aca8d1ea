"""Registered thinc architectures: ``BiLSTMTagger.v1`` chains three swappable parts, each its own
config block:

    features: List[Doc] -> Ragged   (TokenFeatures.v1: word + char CNN + shape embeddings, torch)
    encoder:  Ragged -> Ragged      (BiLSTMEncoder.v1: packed BiLSTM, torch)
    decoder:  Ragged -> Ragged      (SoftmaxDecoder.v1 or CRFDecoder.v1: per-token tag scores)

Ragged keeps the tokens of a batch flat, so only the BiLSTM ever pads (and packs).
"""
import io
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.types import Floats2d
from thinc.api import (
    ArgsKwargs,
    Linear,
    Model,
    PyTorchWrapper_v3,
    Ragged,
    chain,
    torch2xp,
    with_array,
    xp2torch,
)

from .features import PAD, SHAPES, UNK, LexicalTable
from .gazetteer import GazetteerMatcher, load_lists
from .torch_modules import BiLSTM, TokenFeaturizer

FEATURES = "twitter_features"
ENCODER = "twitter_bilstm"
DECODER = "twitter_decoder"
CRF = "twitter_crf"


@registry.architectures("spacy_twitter_ner.BiLSTMTagger.v1")
def build_bilstm_tagger(
    features: Model[List[Doc], Ragged],
    encoder: Model[Ragged, Ragged],
    decoder: Model[Ragged, Ragged],
) -> Model[List[Doc], Ragged]:
    """Per-token BIO tag scores for a batch of docs."""
    model = chain(features, encoder, decoder)
    model.name = "twitter_bilstm_tagger"
    model.set_ref("features", features)
    model.set_ref("encoder", encoder)
    model.set_ref("decoder", decoder)
    return model


# ---------------------------------------------------------------------------------------------
# features


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
) -> Model[List[Doc], Ragged]:
    """Word embedding over the normalised form (vocabulary with ``<PAD>``/``<UNK>``, built from
    the training data in ``initialize``), a char CNN over hashed characters, a casing/shape
    embedding, and optionally frozen ``pretrained`` features (static vectors, a transformer: a
    model giving one row per token, its width in ``nO``) and gazetteer flags (``gazetteer_lists``,
    files in ``gazetteer_dir``, read in ``initialize``); set a size to 0 to switch a part off.
    The vocabulary and the gazetteer entries travel in the model's attrs."""
    n_extra = pretrained.get_dim("nO") if pretrained is not None else 0
    n_extra += 2 * len(gazetteer_lists)
    module = TokenFeaturizer(
        width=width,
        n_words=2,  # <PAD>, <UNK>: resized once the training data has been read
        word_dim=word_dim,
        n_chars=n_chars,
        char_dim=char_dim,
        char_filters=char_filters,
        char_window=char_window,
        n_shapes=len(SHAPES),
        shape_dim=shape_dim,
        n_extra=n_extra,
        dropout=dropout,
    )
    model = PyTorchWrapper_v3(
        module,
        convert_inputs=_docs_to_tensors,
        convert_outputs=_tensor_to_ragged,
        serialize_model=_save_featurizer,
        deserialize_model=_load_featurizer,
    )
    model.name = FEATURES
    model.set_dim("nO", width)
    if pretrained is not None:
        # frozen: run with predict() inside the input conversion, never updated
        model.attrs["pretrained"] = pretrained
    model.attrs.update(
        words=[PAD, UNK], lower=lower, min_freq=min_freq, max_words=max_words,
        max_chars=max_chars, n_chars=n_chars, gazetteer_dir=gazetteer_dir,
        gazetteer_lists=list(gazetteer_lists), gazetteer_max_len=gazetteer_max_len, gazetteer={},
    )
    return model


def set_word_vocab(model: Model, words: Sequence[str]) -> None:
    """Give the features layer its word vocabulary (``initialize`` calls this with the words of
    the whole training corpus; the wrapped embedding is resized to match)."""
    for node in model.walk():
        if node.name == FEATURES:
            node.attrs["words"] = list(words)
            node.attrs.pop("table", None)
            node.shims[0]._model.resize_words(len(words))


def init_gazetteer(model: Model) -> None:
    """Read the configured name lists into the features layer (``initialize`` calls this)."""
    for node in model.walk():
        if node.name == FEATURES and node.attrs.get("gazetteer_lists"):
            if not node.attrs.get("gazetteer_dir"):
                raise ValueError("TokenFeatures: gazetteer_lists are set but gazetteer_dir is not")
            node.attrs["gazetteer"] = load_lists(Path(node.attrs["gazetteer_dir"]), node.attrs["gazetteer_lists"])
            node.attrs.pop("matcher", None)


def _gazetteer_flags(model: Model, docs: List[Doc]) -> Optional[numpy.ndarray]:
    names = model.attrs.get("gazetteer_lists")
    if not names:
        return None
    matcher = model.attrs.get("matcher")
    if matcher is None:
        lists = model.attrs.get("gazetteer") or {}
        if set(lists) != set(names):
            raise ValueError(
                "TokenFeatures: the gazetteer lists have not been loaded: initialize the pipeline "
                f"(lists {names} from {model.attrs.get('gazetteer_dir')})"
            )
        matcher = GazetteerMatcher({n: lists[n] for n in names}, model.attrs["gazetteer_max_len"])
        model.attrs["matcher"] = matcher
    rows = [matcher.doc_flags(doc) for doc in docs if len(doc)]
    return numpy.concatenate(rows) if rows else numpy.zeros((0, matcher.width), dtype="float32")


def _lexical_table(model: Model) -> LexicalTable:
    table = model.attrs.get("table")
    if table is None or table.words_ref is not model.attrs["words"]:
        a = model.attrs
        table = LexicalTable(a["words"], a["lower"], a["max_chars"], a["n_chars"])
        table.words_ref = a["words"]
        model.attrs["table"] = table
    return table


def _docs_to_tensors(model: Model, docs: List[Doc], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    words, chars, char_index, shapes, _ = _lexical_table(model).featurize_batch(docs)
    ids = [torch.from_numpy(a).to(device) for a in (words, chars, char_index, shapes)]
    parts = []
    if len(words):
        pretrained = model.attrs.get("pretrained")
        if pretrained is not None:
            parts.append(_pretrained_rows(model, pretrained, docs, cache=is_train))
        flags = _gazetteer_flags(model, docs)
        if flags is not None:
            parts.append(flags)
    if parts:
        extra = torch.from_numpy(numpy.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]).to(device)
    else:
        extra = torch.zeros((len(words), module_extra_width(model)), device=device)
    return ArgsKwargs(args=(*ids, extra), kwargs={}), lambda d_inputs: []


def _pretrained_rows(model: Model, pretrained: Model, docs: List[Doc], cache: bool) -> numpy.ndarray:
    """Rows of the frozen pretrained features. In training, an expensive layer (a transformer:
    ``attrs["cache_in_training"]``) keeps each doc's rows in ``doc.user_data``: spaCy's training
    loop passes the same Doc objects every epoch, so the encoder runs once per training tweet.
    Docs at prediction time are never touched."""
    if not (cache and pretrained.attrs.get("cache_in_training")):
        return model.ops.to_numpy(pretrained.predict(docs)).astype("float32")
    key = ("spacy_twitter_ner", "pretrained_rows", pretrained.name, pretrained.get_dim("nO"))
    todo = [doc for doc in docs if len(doc) and key not in doc.user_data]
    if todo:
        rows = model.ops.to_numpy(pretrained.predict(todo)).astype("float32")
        ends = numpy.cumsum([len(doc) for doc in todo])
        for doc, part in zip(todo, numpy.split(rows, ends[:-1])):
            doc.user_data[key] = part
    return numpy.concatenate([doc.user_data[key] for doc in docs if len(doc)])


def module_extra_width(model: Model) -> int:
    return model.shims[0]._model.n_extra


def _tensor_to_ragged(model: Model, X_Ytorch: Tuple[List[Doc], Any], is_train: bool):
    docs, Ytorch = X_Ytorch
    lengths = model.ops.asarray1i([len(doc) for doc in docs])
    Y = Ragged(torch2xp(Ytorch), lengths)

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


# ---------------------------------------------------------------------------------------------
# encoder


@registry.architectures("spacy_twitter_ner.BiLSTMEncoder.v1")
def build_bilstm_encoder(nI: int, hidden: int, depth: int, dropout: float) -> Model[Ragged, Ragged]:
    """A BiLSTM (``hidden`` units each way) over packed sequences; no compute spent on padding."""
    model = PyTorchWrapper_v3(
        BiLSTM(nI, hidden, depth, dropout),
        convert_inputs=_ragged_to_tensor,
        convert_outputs=_tensor_to_ragged_like_input,
    )
    model.name = ENCODER
    model.set_dim("nI", nI)
    model.set_dim("nO", hidden * 2)
    return model


def _ragged_to_tensor(model: Model, X: Ragged, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    Xtorch = xp2torch(X.data, requires_grad=is_train, device=device)
    lengths = [int(n) for n in model.ops.to_numpy(X.lengths)]

    def backprop(d_inputs: ArgsKwargs) -> Ragged:
        return Ragged(torch2xp(d_inputs.args[0]), X.lengths)

    return ArgsKwargs(args=(Xtorch, lengths), kwargs={}), backprop


def _tensor_to_ragged_like_input(model: Model, X_Ytorch: Tuple[Ragged, Any], is_train: bool):
    X, Ytorch = X_Ytorch
    Y = Ragged(torch2xp(Ytorch), X.lengths)

    def backprop(dY: Ragged) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": (xp2torch(dY.data),)})

    return Y, backprop


# ---------------------------------------------------------------------------------------------
# decoders


@registry.architectures("spacy_twitter_ner.SoftmaxDecoder.v1")
def build_softmax_decoder(nO: Optional[int] = None) -> Model[Ragged, Ragged]:
    """The tutorial's dense layer: per-token tag scores, trained with softmax cross-entropy and
    decoded with Viterbi under BIO constraints (zero transition scores)."""
    model = with_array(Linear(nO=nO))
    model.name = DECODER
    model.attrs["crf"] = False
    return model


@registry.architectures("spacy_twitter_ner.CRFDecoder.v1")
def build_crf_decoder(nO: Optional[int] = None) -> Model[Ragged, Ragged]:
    """Dense layer plus a linear-chain CRF: learned tag-transition scores, trained with the CRF
    likelihood (``decoding.crf_loss``), decoded with Viterbi, marginals for confidence."""
    crf = Model(
        CRF,
        _identity,
        init=_init_crf,
        dims={"nO": nO},
        params={"transitions": None, "start": None, "end": None},
    )
    model = chain(with_array(Linear(nO=nO)), crf)
    model.name = DECODER
    model.set_ref("crf", crf)
    model.attrs["crf"] = True
    return model


def _identity(model: Model, X: Ragged, is_train: bool) -> Tuple[Ragged, Callable]:
    return X, lambda dY: dY


def _init_crf(model: Model, X: Any = None, Y: Any = None) -> None:
    n = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(n, n))
    model.set_param("start", model.ops.alloc1f(n))
    model.set_param("end", model.ops.alloc1f(n))


def set_n_tags(model: Model, n_tags: int) -> None:
    """The decoder's output size is the number of BIO tags, known once the labels are."""
    decoder = model.get_ref("decoder")
    for node in decoder.walk():
        if node.has_dim("nO") is not False and node.name in ("linear", CRF):
            if node.has_dim("nO") and node.get_dim("nO") != n_tags:
                raise ValueError(
                    f"twitter_bilstm_ner: the model already has {node.get_dim('nO')} tags, "
                    f"{n_tags} were asked for; labels cannot change after training"
                )
            node.set_dim("nO", n_tags)
    if decoder.has_dim("nO") is not False:
        decoder.set_dim("nO", n_tags)


def crf_layer(model: Model) -> Optional[Model]:
    decoder = model.get_ref("decoder")
    return decoder.get_ref("crf") if decoder.attrs.get("crf") else None

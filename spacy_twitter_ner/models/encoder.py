"""``spacy_twitter_ner.BiLSTMEncoder.v1``: a BiLSTM over packed sequences (no compute spent on
padding), in thinc's ``PyTorchWrapper``; tokens stay flat (Ragged) in and out."""
from typing import Any, Callable, Tuple

from spacy.util import registry
from thinc.api import ArgsKwargs, Model, Ragged, torch2xp, xp2torch

from .pytorch_shim import averaging_pytorch_wrapper
from .torch_modules import BiLSTM

ENCODER = "twitter_bilstm"


@registry.architectures("spacy_twitter_ner.BiLSTMEncoder.v1")
def build_bilstm_encoder(
    nI: int, hidden: int, depth: int, dropout: float, quantize: bool = False
) -> Model[Ragged, Ragged]:
    """``depth`` BiLSTM layers of ``hidden`` units each way; output width ``2 * hidden``.
    ``quantize``: predict on CPU with int8 LSTM weights (faster; training stays float32)."""
    model = averaging_pytorch_wrapper(
        BiLSTM(nI, hidden, depth, dropout, quantize=quantize),
        convert_inputs=_ragged_to_tensor,
        convert_outputs=_tensor_to_ragged,
    )
    model.name = ENCODER
    model.set_dim("nI", nI)
    model.set_dim("nO", hidden * 2)
    return model


def _ragged_to_tensor(model: Model, X: Ragged, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    Xtorch = xp2torch(X.data, requires_grad=is_train, device=model.shims[0].device)
    lengths = [int(n) for n in model.ops.to_numpy(X.lengths)]

    def backprop(d_inputs: ArgsKwargs) -> Ragged:
        return Ragged(torch2xp(d_inputs.args[0]), X.lengths)

    return ArgsKwargs(args=(Xtorch, lengths), kwargs={"is_train": is_train}), backprop


def _tensor_to_ragged(model: Model, X_Ytorch: Tuple[Ragged, Any], is_train: bool):
    X, Ytorch = X_Ytorch
    Y = Ragged(torch2xp(Ytorch), X.lengths)

    def backprop(dY: Ragged) -> ArgsKwargs:
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": (xp2torch(dY.data),)})

    return Y, backprop

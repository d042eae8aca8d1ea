"""Thinc's PyTorch wrapper with a shim that honours the optimizer's parameter averages.

Why: thinc 8.3's ``PyTorchShim.finish_update`` stores each torch parameter's running average
under the key ``(shim.id, name)``, but its ``use_params`` looks for string keys
``"pytorch_<id>_<name>"``, so ``nlp.use_params(optimizer.averages)`` (spaCy's evaluation and
``model-best``/``model-last`` saving under ``[training.optimizer] use_averages = true``) silently
keeps the raw torch weights while thinc's own layers (the CRF, the output layer) switch to their
averages. ``AveragingPyTorchShim.use_params`` reads the keys ``finish_update`` wrote.
"""
import contextlib
from typing import Any, Callable, Dict, Iterator, Optional

from thinc.api import Model, xp2torch
from thinc.layers.pytorchwrapper import (
    convert_pytorch_default_inputs,
    convert_pytorch_default_outputs,
    forward as pytorch_forward,
)
from thinc.shims import PyTorchShim
from torch import nn

__all__ = ["AveragingPyTorchShim", "averaging_pytorch_wrapper"]


class AveragingPyTorchShim(PyTorchShim):
    """``PyTorchShim`` whose ``use_params`` swaps in the averages of its own parameters."""

    @contextlib.contextmanager
    def use_params(self, params: Dict[Any, Any]) -> Iterator[None]:
        state = {
            name: xp2torch(params[(self.id, name)], device=self.device)
            for name, _ in self._model.named_parameters()
            if (self.id, name) in params
        }
        if not state:
            yield
            return
        backup = {k: v.clone() for k, v in self._model.state_dict().items()}
        self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            self._model.load_state_dict(backup)


def averaging_pytorch_wrapper(
    module: nn.Module,
    convert_inputs: Optional[Callable] = None,
    convert_outputs: Optional[Callable] = None,
    serialize_model: Optional[Callable[[Any], bytes]] = None,
    deserialize_model: Optional[Callable[[Any, bytes, str], Any]] = None,
) -> Model:
    """Thinc's ``PyTorchWrapper_v3`` (same forward, conversions and serialisation) on an
    ``AveragingPyTorchShim``."""
    shim = AveragingPyTorchShim(module, serialize_model=serialize_model, deserialize_model=deserialize_model)
    return Model(
        "pytorch",
        pytorch_forward,
        attrs={
            "convert_inputs": convert_inputs or convert_pytorch_default_inputs,
            "convert_outputs": convert_outputs or convert_pytorch_default_outputs,
        },
        shims=[shim],
        dims={"nI": None, "nO": None},
    )

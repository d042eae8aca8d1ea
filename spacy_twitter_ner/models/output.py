"""The dense output layer both decoders share: encoder rows -> one score per BIO tag, followed by
a head that turns the scores into ``TagScores`` (CRF or softmax)."""
from typing import Optional

from thinc.api import Linear, Model, Ragged, chain, with_array


def build_output_layer(head: Model, nO: Optional[int]) -> Model:
    """``chain(dense, head)``; setting the decoder's ``nO`` (the number of tags, which the
    component knows from its labels) before ``initialize`` sizes both parts."""
    dense = Linear(nO=nO)
    model = chain(with_array(dense), head)
    model.set_ref("output", dense)
    model.set_ref("head", head)
    model.init = _init_output
    return model


def _init_output(model: Model, X: Optional[Ragged] = None, Y=None) -> None:
    if model.has_dim("nO"):
        for layer in (model.get_ref("output"), model.get_ref("head")):
            if layer.has_dim("nO") is None:
                layer.set_dim("nO", model.get_dim("nO"))
    dense = model.layers[0]
    dense.initialize(X=X)
    model.get_ref("head").initialize(X=dense.predict(X) if X is not None else None)

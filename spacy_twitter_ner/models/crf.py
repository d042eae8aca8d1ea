"""``spacy_twitter_ner.CRFDecoder.v1``: a dense layer and a linear-chain CRF over BIO tags.

The layer outputs ``CRFScores`` (per-token scores with its transition/start/end scores), which
own the CRF log-likelihood (torch, batched forward algorithm, autograd), soft-target
cross-entropy, constrained Viterbi and marginals; see ``scores.py`` and ``torch_crf.py``.
"""
from typing import Callable, Optional, Tuple

from spacy.util import registry
from thinc.api import Model, Ragged

from .output import build_output_layer
from .scores import CRFScores

CRF = "twitter_crf"


@registry.architectures("spacy_twitter_ner.CRFDecoder.v1")
def build_crf_decoder(nO: Optional[int] = None) -> Model[Ragged, CRFScores]:
    """Per-token tag scores (a dense layer) under learned tag-transition scores. ``nO`` is the
    number of BIO tags (set by the component from its labels when left null)."""
    crf = Model(CRF, crf_forward, init=init_crf, dims={"nO": nO}, params={"transitions": None, "start": None, "end": None})
    return build_output_layer(crf, nO)


def crf_forward(model: Model, X: Ragged, is_train: bool) -> Tuple[CRFScores, Callable]:
    scores = CRFScores(model.ops, X, model.get_param("transitions"), model.get_param("start"), model.get_param("end"))

    def backprop(dY: CRFScores) -> Ragged:
        model.inc_grad("transitions", dY.transitions)
        model.inc_grad("start", dY.start)
        model.inc_grad("end", dY.end)
        return dY.emissions

    return scores, backprop


def init_crf(model: Model, X: Optional[Ragged] = None, Y=None) -> None:
    n = model.get_dim("nO")
    model.set_param("transitions", model.ops.alloc2f(n, n))
    model.set_param("start", model.ops.alloc1f(n))
    model.set_param("end", model.ops.alloc1f(n))

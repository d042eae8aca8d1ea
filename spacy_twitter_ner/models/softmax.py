"""``spacy_twitter_ner.SoftmaxDecoder.v1``: the tutorial's dense layer + softmax. Its
``TagScores`` own the cross-entropy (gold ids or soft targets) and a Viterbi over
log-probabilities under the BIO constraints, so the output is always valid entities."""
from typing import Callable, Optional, Tuple

from spacy.util import registry
from thinc.api import Model, Ragged

from .output import build_output_layer
from .scores import TagScores

SOFTMAX = "twitter_softmax"


@registry.architectures("spacy_twitter_ner.SoftmaxDecoder.v1")
def build_softmax_decoder(nO: Optional[int] = None) -> Model[Ragged, TagScores]:
    """Per-token tag scores, normalised per token (``nO`` BIO tags, set by the component)."""
    return build_output_layer(Model(SOFTMAX, softmax_forward, dims={"nO": nO}), nO)


def softmax_forward(model: Model, X: Ragged, is_train: bool) -> Tuple[TagScores, Callable]:
    return TagScores(model.ops, X), lambda dY: dY.emissions

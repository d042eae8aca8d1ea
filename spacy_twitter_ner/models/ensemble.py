"""``spacy_twitter_ner.EnsembleTagger.v1``: several trained taggers as one.

On corpora of a few thousand tweets a single training run swings by several F1 points with the
seed. The ensemble's scores are the mean of its members' (``TagScores.mean``: per-token scores
and, for CRFs, transition scores; a product of experts, so the result is again one CRF, decoded
with the usual constrained Viterbi). Members that read the same transformer share one loaded
copy, and it runs once per batch. Ensembles are assembled from trained pipelines
(``spacy-twitter-ner ensemble``, see ``cli/ensemble.py``), never trained.
"""
import contextlib
from typing import Any, Callable, Dict, List, Sequence, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model

from .knowledge.transformer import TRANSFORMER_FEATURES
from .scores import TagScores

ENSEMBLE = "twitter_ensemble"
NOT_TRAINABLE = (
    "twitter_bilstm_ner: this model is an ensemble of trained models "
    "(spacy_twitter_ner.EnsembleTagger.v1), assembled with `spacy-twitter-ner ensemble`; it "
    "cannot be initialized or trained. Train its members instead."
)


@registry.architectures("spacy_twitter_ner.EnsembleTagger.v1")
def build_ensemble_tagger(*members: Model[List[Doc], TagScores]) -> Model[List[Doc], TagScores]:
    """The mean of the members' tag scores (members must share one decoder kind)."""
    if len(members) < 2:
        raise ValueError(f"EnsembleTagger.v1: an ensemble needs at least 2 members, got {len(members)}")
    heads = {member.get_ref("decoder").get_ref("head").name for member in members}
    if len(heads) != 1:
        raise ValueError("EnsembleTagger.v1: members mix CRF and softmax decoders; use members of one kind")
    share_transformers(members)
    return Model(
        ENSEMBLE,
        ensemble_forward,
        init=_refuse_init,
        layers=list(members),
        refs={"output": members[0].get_ref("output")},
    )


def _refuse_init(model: Model, X: Any = None, Y: Any = None) -> None:
    raise ValueError(NOT_TRAINABLE)


def ensemble_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[TagScores, Callable]:
    if is_train:
        raise ValueError(NOT_TRAINABLE)
    with contextlib.ExitStack() as stack:
        for encoder in _transformer_encoders(model):
            stack.enter_context(encoder.remember_last())
        scores = [member.predict(docs) for member in model.layers]
    return type(scores[0]).mean(scores), _no_backprop


def _no_backprop(dY: Any) -> Any:
    raise ValueError(NOT_TRAINABLE)


def _transformer_layers(model: Model) -> List[Model]:
    return [node for node in model.walk() if node.name == TRANSFORMER_FEATURES]


def share_transformers(members: Sequence[Model]) -> None:
    """Members configured with the same transformer (name, layers, width) use one loaded copy."""
    seen: Dict[Tuple, Any] = {}
    for member in members:
        for layer in _transformer_layers(member):
            key = (layer.attrs["name"], tuple(layer.attrs["layers"]), layer.attrs["max_length"], layer.get_dim("nO"))
            layer.attrs["encoder"] = seen.setdefault(key, layer.attrs["encoder"])


def _transformer_encoders(model: Model) -> List[Any]:
    encoders = {id(layer.attrs["encoder"]): layer.attrs["encoder"] for layer in _transformer_layers(model)}
    return list(encoders.values())

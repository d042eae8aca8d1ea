"""``spacy_twitter_ner.BiLSTMTagger.v1``: the chain of three swappable parts, each its own config
block, reachable by ref ("features", "encoder", "decoder"):

    features: List[Doc] -> Ragged     (TokenFeatures.v1)
    encoder:  Ragged -> Ragged        (BiLSTMEncoder.v1)
    decoder:  Ragged -> TagScores     (CRFDecoder.v1 or SoftmaxDecoder.v1: scores that own their
                                       loss and decoding)
"""
from typing import List, Optional, Sequence

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain

from .scores import TagScores

TAGGER = "twitter_bilstm_tagger"
# Docs the encoder and decoder are initialised with (shape inference only).
N_SAMPLE = 10


@registry.architectures("spacy_twitter_ner.BiLSTMTagger.v1")
def build_bilstm_tagger(features: Model, encoder: Model, decoder: Model) -> Model[List[Doc], TagScores]:
    """Per-token BIO tag scores for a batch of docs."""
    model = chain(features, encoder, decoder)
    model.name = TAGGER
    model.set_ref("features", features)
    model.set_ref("encoder", encoder)
    model.set_ref("decoder", decoder)
    model.set_ref("output", decoder.get_ref("output"))
    model.init = _init_tagger
    return model


def _init_tagger(model: Model, X: Optional[List[Doc]] = None, Y: Optional[Sequence[str]] = None) -> None:
    """``X``: all training docs; ``Y``: the BIO tag set. The features layer reads all docs (its
    vocabulary); the encoder and decoder only need a sample for their shapes."""
    features, encoder, decoder = (model.get_ref(n) for n in ("features", "encoder", "decoder"))
    if Y is not None:
        if decoder.has_dim("nO") and decoder.get_dim("nO") != len(Y):
            raise ValueError(
                f"twitter_bilstm_ner: the model already predicts {decoder.get_dim('nO')} tags, "
                f"{len(Y)} were asked for; labels cannot change after training"
            )
        decoder.set_dim("nO", len(Y))
    features.initialize(X=X)
    sample = [doc for doc in (X or []) if len(doc)][:N_SAMPLE] or None
    H = features.predict(sample) if sample else None
    encoder.initialize(X=H)
    decoder.initialize(X=encoder.predict(H) if H is not None else None)

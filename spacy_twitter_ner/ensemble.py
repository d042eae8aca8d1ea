"""Seed ensembles: several trained ``twitter_bilstm_ner`` models as one, averaging their scores.

On corpora of a few thousand tweets a single training run swings by several F1 points with the
seed; averaging the per-token tag scores and the CRF transition scores of models trained with
different seeds (a product of experts: the averaged potentials define one linear-chain CRF,
decoded with the usual constrained Viterbi) removes much of that noise. Members that read the
same transformer share it, and it runs once per batch, so for the accurate profile an ensemble
costs little more than one model at prediction time.

An ensemble is assembled from trained pipelines, never trained itself:

    python -m spacy_twitter_ner.ensemble OUTPUT_DIR MODEL_DIR MODEL_DIR [MODEL_DIR ...]

writes a normal pipeline directory (``spacy.load``, ``spacy evaluate``, ``spacy package``) whose
component model is ``spacy_twitter_ner.EnsembleTagger.v1`` over the members' own model configs.
"""
import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Config, Model, Ragged

from .architectures import CRF, DECODER, FEATURES, crf_layer
from .pretrained import TRANSFORMER_FEATURES

__all__ = ["ENSEMBLE", "build_ensemble_tagger", "assemble", "main"]

ENSEMBLE = "twitter_ensemble"
COMPONENT = "twitter_bilstm_ner"


@registry.architectures("spacy_twitter_ner.EnsembleTagger.v1")
def build_ensemble_tagger(*members: Model[List[Doc], Ragged]) -> Model[List[Doc], Ragged]:
    """The mean of the members' per-token tag scores; its decoder holds the mean of their CRF
    transition/start/end scores (set by ``assemble``, saved with the pipeline)."""
    if len(members) < 2:
        raise ValueError(f"EnsembleTagger.v1: an ensemble needs at least 2 members, got {len(members)}")
    decoders = [m.get_ref("decoder") for m in members]
    if len({bool(d.attrs.get("crf")) for d in decoders}) != 1:
        raise ValueError("EnsembleTagger.v1: members mix CRF and softmax decoders; use members of one kind")
    crf = Model(CRF, _identity, params={"transitions": None, "start": None, "end": None}, dims={"nO": None})
    decoder = Model(DECODER, _identity, layers=[crf], refs={"crf": crf}, attrs={"crf": bool(decoders[0].attrs.get("crf"))})
    _share_transformers(members)
    model = Model(
        ENSEMBLE,
        _ensemble_forward,
        layers=[*members, decoder],
        refs={"features": members[0].get_ref("features"), "decoder": decoder},
        attrs={"ensemble": len(members)},
    )
    return model


def _identity(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    return X, lambda dY: dY


def _share_transformers(members: Sequence[Model]) -> None:
    """Members configured with the same transformer (name, layers, width) use one loaded copy."""
    seen: Dict[Tuple, Model] = {}
    for member in members:
        for node in member.walk():
            pretrained = node.attrs.get("pretrained") if node.name == FEATURES else None
            if pretrained is None or pretrained.name != TRANSFORMER_FEATURES:
                continue
            key = (pretrained.attrs["name"], tuple(pretrained.attrs["layers"]),
                   pretrained.attrs["max_length"], pretrained.get_dim("nO"))
            node.attrs["pretrained"] = seen.setdefault(key, pretrained)


def _transformer_encoders(model: Model) -> List[Any]:
    encoders = {}
    for node in model.walk():
        pretrained = node.attrs.get("pretrained") if node.name == FEATURES else None
        if pretrained is not None and pretrained.name == TRANSFORMER_FEATURES:
            encoders[id(pretrained.attrs["encoder"])] = pretrained.attrs["encoder"]
    return list(encoders.values())


def _ensemble_forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[Ragged, Callable]:
    if is_train:
        raise ValueError(
            "twitter_bilstm_ner: this model is an ensemble of trained models "
            "(spacy_twitter_ner.EnsembleTagger.v1), assembled with `python -m "
            "spacy_twitter_ner.ensemble`; it cannot be trained. Train its members instead."
        )
    members = model.layers[:-1]
    with contextlib.ExitStack() as stack:
        for encoder in _transformer_encoders(model):
            stack.enter_context(encoder.remember_last())
        outputs = [member.predict(docs) for member in members]
    data = model.ops.xp.mean(model.ops.xp.stack([out.data for out in outputs]), axis=0)
    return Ragged(model.ops.asarray2f(data), outputs[0].lengths), _no_backprop


def _no_backprop(dY: Any) -> Any:
    raise ValueError("twitter_bilstm_ner: an ensemble cannot be trained")


# ---------------------------------------------------------------------------------------------
# assembling


def _load_member(path: Path):
    import spacy

    if not (path / "config.cfg").exists():
        raise ValueError(f"ensemble: {path} is not a pipeline directory (no config.cfg)")
    nlp = spacy.load(path)
    if COMPONENT not in nlp.pipe_names:
        raise ValueError(f"ensemble: the pipeline {path} has no {COMPONENT} component (it has {nlp.pipe_names})")
    if nlp.get_pipe(COMPONENT).model.attrs.get("ensemble"):
        raise ValueError(f"ensemble: {path} is already an ensemble; give the trained member pipelines")
    return nlp


def assemble(member_paths: Sequence[Path], output: Path) -> Dict[str, Any]:
    """Build the ensemble of the pipelines in ``member_paths`` and save it to ``output``. The
    first member gives the tokenizer, the vocab (and static vectors) and any other components:
    seed runs of one config share all of these."""
    if len(member_paths) < 2:
        raise ValueError(f"ensemble: give at least 2 trained pipelines, got {len(member_paths)}")
    paths = [Path(p) for p in member_paths]
    members = [_load_member(p) for p in paths]
    pipes = [nlp.get_pipe(COMPONENT) for nlp in members]
    for path, pipe in zip(paths[1:], pipes[1:]):
        if pipe.labels != pipes[0].labels:
            raise ValueError(
                f"ensemble: {path} predicts the labels {list(pipe.labels)}, but {paths[0]} predicts "
                f"{list(pipes[0].labels)}; members must share one label set"
            )
    configs = [Config().from_disk(p / "config.cfg").interpolate() for p in paths]
    model_config = {
        "@architectures": "spacy_twitter_ner.EnsembleTagger.v1",
        "*": {f"member{i}": cfg["components"][COMPONENT]["model"] for i, cfg in enumerate(configs)},
    }
    nlp = members[0]
    component_config = dict(nlp.config["components"][COMPONENT])
    component_config.pop("factory", None)
    component_config.update(model=model_config, labels=list(pipes[0].labels))
    nlp.replace_pipe(COMPONENT, COMPONENT, config=component_config)
    ensemble = nlp.get_pipe(COMPONENT)
    for layer, pipe in zip(ensemble.model.layers[:-1], pipes):
        layer.from_bytes(pipe.model.to_bytes())  # the shared transformer (not serialized) stays shared
    crf = ensemble.model.get_ref("decoder").get_ref("crf")
    member_crfs = [crf_layer(pipe.model) for pipe in pipes]
    if all(c is not None for c in member_crfs):
        crf.set_dim("nO", len(pipes[0].tags))
        for name in ("transitions", "start", "end"):
            mean = numpy.mean([crf.ops.to_numpy(c.get_param(name)) for c in member_crfs], axis=0)
            crf.set_param(name, crf.ops.asarray(mean.astype("float32")))
    nlp.meta["description"] = (
        f"Ensemble of {len(paths)} twitter_bilstm_ner models (mean of their tag and transition "
        f"scores): {', '.join(str(p) for p in paths)}"
    )
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    return {"members": [str(p) for p in paths], "labels": list(pipes[0].labels), "output": str(output)}


def members_from_seeds(path: Path) -> List[Path]:
    """The pipelines listed under "models" in a seeds summary (scripts/seeds.py)."""
    import srsly

    if not path.exists():
        raise ValueError(f"ensemble: {path} does not exist; run `spacy project run seeds` first")
    try:
        data = srsly.read_json(path)
    except ValueError as err:
        raise ValueError(f"ensemble: {path} is not valid JSON ({err})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list) or not models:
        raise ValueError(f"ensemble: {path} lists no \"models\"; rerun scripts/seeds.py, which records them")
    return [Path(m) for m in models]


def main(argv: Sequence[str] = None) -> int:
    from wasabi import msg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="directory to write the ensemble pipeline to")
    parser.add_argument("members", type=Path, nargs="*", help="trained pipeline directories (model-best)")
    parser.add_argument("--from-seeds", type=Path, default=None,
                        help="a metrics/<corpus>-<config>-seeds.json written by scripts/seeds.py: its models are the members")
    args = parser.parse_args(argv)
    try:
        members = list(args.members)
        if args.from_seeds is not None:
            members += members_from_seeds(args.from_seeds)
        info = assemble(members, args.output)
    except (ValueError, OSError) as err:
        msg.fail(str(err))
        return 1
    msg.good(f"Saved an ensemble of {len(info['members'])} models to {info['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``spacy-twitter-ner ensemble OUT MEMBER...``: assemble trained ``twitter_bilstm_ner``
pipelines (e.g. seed runs of one config) into one pipeline whose model is
``spacy_twitter_ner.EnsembleTagger.v1`` over the members' own model configs:

    spacy-twitter-ner ensemble OUTPUT_DIR MODEL_DIR MODEL_DIR [MODEL_DIR ...]
    spacy-twitter-ner ensemble OUTPUT_DIR --from-seeds metrics/<corpus>-<config>-seeds.json

The output is a normal pipeline directory (``spacy.load``, ``spacy evaluate``, ``spacy package``).
"""
import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from thinc.api import Config

from ..models.ensemble import ENSEMBLE

COMPONENT = "twitter_bilstm_ner"


def _load_member(path: Path):
    import spacy

    if not (path / "config.cfg").exists():
        raise ValueError(f"ensemble: {path} is not a pipeline directory (no config.cfg)")
    nlp = spacy.load(path)
    if COMPONENT not in nlp.pipe_names:
        raise ValueError(f"ensemble: the pipeline {path} has no {COMPONENT} component (it has {nlp.pipe_names})")
    if nlp.get_pipe(COMPONENT).model.name == ENSEMBLE:
        raise ValueError(f"ensemble: {path} is already an ensemble; give the trained member pipelines")
    return nlp


def assemble(member_paths: Sequence[Path], output: Path) -> Dict[str, Any]:
    """Build the ensemble of the pipelines in ``member_paths`` and save it to ``output``. The
    first member gives the tokenizer, the vocab (and static vectors) and any other components:
    seed runs of one config share all of these. The ensemble starts at ``outside_bias`` 0: a
    member's tuned bias was chosen for that member's scores, not for their mean (tune the
    ensemble's own with scripts/tune_outside_bias.py)."""
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
    component_config.update(model=model_config, labels=list(pipes[0].labels), outside_bias=0.0)
    nlp.replace_pipe(COMPONENT, COMPONENT, config=component_config)
    ensemble = nlp.get_pipe(COMPONENT)
    for layer, pipe in zip(ensemble.model.layers, pipes):
        layer.from_bytes(pipe.model.to_bytes())  # the shared transformer (not serialized) stays shared
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    from wasabi import msg

    parser = argparse.ArgumentParser(prog="spacy-twitter-ner ensemble", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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

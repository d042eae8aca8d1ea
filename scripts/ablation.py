"""Knowledge-source ablation (project.yml's `ablation` command): train a config with every
knowledge source, then once without each, on one corpus and seed, and compare the dev F1.

    python scripts/ablation.py CORPUS [--config accurate-md] [--seed 0] [--sources ...]
        [--max-epochs N] [--out metrics] [spacy train overrides...]

Sources are switched off by editing the config (never the test set: only dev scores are read):

* ``transformer``: ``[...features.pretrained]`` (MiniLM) removed;
* ``spacy_pipeline``: ``[...features.knowledge.*.spacy_pipeline]`` (en_core_web_md) removed;
* ``clusters``: ``[...features.knowledge.*.clusters]`` (Brown clusters + log-prob) removed;
* ``gazetteer``: ``gazetteer_lists = []``.

Each variant's config, model and log go to training/ablation/<corpus>-<variant>/; the dev F1 is
model-best's, i.e. the best evaluation of that training (what `spacy train` selects on). Results
go to metrics/ablation-<corpus>.json, one entry per variant, written after every training so an
interrupted run keeps what it finished; variants already in that file with the same settings are
not trained again (--force retrains). A source whose removal raises dev F1 on every corpus is one
to drop from the profile; configs/accurate-frozen.cfg is configs/accurate-md.cfg less the sources
the ablation found not to help, and configs/accurate.cfg is that with MiniLM fine-tuned.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import srsly
from thinc.api import Config
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import checked_training_paths, model_dev_scores, train_command  # noqa: E402

FEATURES = ("components", "twitter_bilstm_ner", "model", "features")
SOURCES = ("transformer", "spacy_pipeline", "clusters", "gazetteer")


def has_source(cfg: Config, source: str) -> bool:
    """Whether the config's features block uses ``source``."""
    feats = _features(cfg)
    if source == "transformer":
        return feats.get("pretrained") is not None
    if source == "gazetteer":
        return bool(feats.get("gazetteer_lists"))
    return source in (feats.get("knowledge") or {}).get("*", {})


def without(cfg: Config, sources: Sequence[str]) -> Config:
    """A copy of ``cfg`` without ``sources`` (each must be in it)."""
    out = Config().from_str(cfg.to_str(), interpolate=False)
    feats = _features(out)
    for source in sources:
        if not has_source(out, source):
            raise ValueError(f"the config has no {source} source to remove")
        if source == "transformer":
            del feats["pretrained"]
        elif source == "gazetteer":
            feats["gazetteer_lists"] = []
        else:
            knowledge = feats["knowledge"]
            del knowledge["*"][source]
            if not knowledge["*"]:
                del feats["knowledge"]
    return out


def _features(cfg: Config) -> Dict:
    node = cfg
    for key in FEATURES:
        node = node[key]
    return node


def variants(cfg: Config, sources: Sequence[str]) -> Dict[str, List[str]]:
    """``all`` (nothing removed) and ``-SOURCE`` for each source the config has."""
    missing = [s for s in sources if not has_source(cfg, s)]
    if missing:
        raise ValueError(f"the config does not use {missing}: nothing to ablate")
    return {"all": [], **{f"-{s}": [s] for s in sources}}



def run(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("corpus")
    parser.add_argument("--config", default="accurate-md",
                        help="name of a file in configs/ (without .cfg) that uses every source in --sources")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--max-epochs", type=int, default=8,
                        help="epochs per training (the same for every variant; default 8 to fit 2 cores)")
    parser.add_argument("--out", type=Path, default=Path("metrics"))
    parser.add_argument("--work", type=Path, default=Path("training/ablation"))
    parser.add_argument("--force", action="store_true", help="retrain variants already in the results file")
    args, overrides = parser.parse_known_args(argv)
    overrides = [a for a in overrides if a != "--"]
    paths = checked_training_paths(parser, args.corpus, args.config)
    base = Config().from_disk(paths.config, interpolate=False)
    try:
        todo = variants(base, args.sources)
    except ValueError as e:
        parser.error(f"{paths.config}: {e}")
    settings = {"config": str(paths.config), "seed": args.seed, "max_epochs": args.max_epochs,
                "overrides": overrides}
    out_file = args.out / f"ablation-{args.corpus}.json"
    results = srsly.read_json(out_file) if out_file.is_file() else {}
    if results.get("settings") != settings:
        results = {}
    results.update({"corpus": args.corpus, "settings": settings, "split": "dev",
                    "metric": "entity F1 of model-best on dev (spaCy's scorer, gold tokens)"})
    done = results.setdefault("variants", {})
    for name, removed in todo.items():
        if name in done and not args.force:
            msg.info(f"{name}: already in {out_file} (dev F1 {done[name]['dev']['f']:.4f}), skipped")
            continue
        folder = args.work / f"{args.corpus}-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        cfg_path = folder / "config.cfg"
        without(base, removed).to_disk(cfg_path, interpolate=False)
        cmd = train_command(
            cfg_path, folder, paths.train, paths.dev, seed=args.seed, vectors=paths.vectors,
            lexicons=paths.lexicons, train_log=folder / "train_log.jsonl",
            overrides=["--training.max_epochs", str(args.max_epochs), *overrides],
        )
        msg.info(f"{name}: " + " ".join(cmd))
        start = time.perf_counter()
        code = subprocess.run(cmd).returncode
        if code != 0:
            msg.fail(f"{name}: spacy train exited with {code}", exits=code)
        done[name] = {"removed": removed, "dev": model_dev_scores(folder / "model-best"),
                      "train_seconds": round(time.perf_counter() - start, 1)}
        args.out.mkdir(parents=True, exist_ok=True)
        srsly.write_json(out_file, results)
        msg.good(f"{name}: dev F1 {done[name]['dev']['f']:.4f} -> {out_file}")
    return results


if __name__ == "__main__":
    run()
    sys.exit(0)

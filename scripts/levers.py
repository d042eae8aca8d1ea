"""Candidate changes to the accurate profile (project.yml's `levers` command): train
configs/CONFIG.cfg once with each candidate of configs/levers.json, on one corpus and seed, and
compare dev F1 with the profile's own seed-0 model.

    python scripts/levers.py CORPUS [--config accurate] [--levers configs/levers.json]
        [--only NAME ...] [--seed 0] [--out metrics] [--force]

The ablation (scripts/ablation.py) asks which of the profile's sources help; this asks what
else would. A candidate is a named edit of the config, so each one's full config is on disk
(training/levers/<corpus>-<name>/config.cfg) and can become a profile unchanged:

    "name": {"help": "what it changes and why",
             "set": {"dotted.config.key": value, ...},
             "extend": {"dotted.config.key": [items appended to that list], ...}}

Each candidate trains for the profile's own epochs, then its model-best gets an `outside_bias`
chosen on dev (scripts/tune_outside_bias.py's grid), as the profile's model does in
`spacy project run tune`. The baseline is the profile's model of the same seed, not retrained:
for seed 0 its dev F1 is read from metrics/<corpus>-<config>-bias.json (`train` + `tune`); for
another seed N it is the `seeds` command's model training/<corpus>-<config>-seedN/model-best,
tuned here once and kept in metrics/<corpus>-<config>-seedN-bias.json.
Results go to metrics/levers-<corpus>.json (seed 0) or metrics/levers-<corpus>-seedN.json after
every training, so an interrupted run keeps what it finished and one seed never overwrites
another's; candidates already there with the same edit and settings are skipped (--force
retrains). The settings hold the profile config's digest (:func:`config_digest`): results made
against another version of the profile (one that has since adopted a candidate, say) are not
mixed with new ones but moved to levers-<corpus>[-seedN]-profile-<digest>.json, which the README's
table does not read. A candidate the profile already has (its edit changes nothing) is skipped.
Test is never read: a candidate becomes the profile only on dev.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import srsly
from thinc.api import Config
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import (  # noqa: E402
    checked_training_paths, config_digest, model_dev_scores, project_paths, train_command,
)
from tune_outside_bias import GRID, bias_grid, tune  # noqa: E402


def read_levers(path: Path) -> Dict[str, Dict[str, Any]]:
    """The candidates of ``path``, each checked to hold only ``help``/``set``/``extend``."""
    try:
        levers = srsly.read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the candidates ({e})") from e
    if not isinstance(levers, dict) or not levers:
        raise ValueError(f"{path}: expected an object of named candidates")
    for name, lever in levers.items():
        unknown = set(lever) - {"help", "set", "extend"}
        if unknown:
            raise ValueError(f"{path}: candidate {name!r} has unknown keys {sorted(unknown)} (use help/set/extend)")
        if not lever.get("set") and not lever.get("extend"):
            raise ValueError(f"{path}: candidate {name!r} changes nothing (give `set` or `extend`)")
    return levers


def _parent(cfg: Config, dotted: str, name: str) -> tuple:
    *path, key = dotted.split(".")
    node = cfg
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"candidate {name!r}: the config has no section {dotted.rsplit('.', 1)[0]!r}")
        node = node[part]
    return node, key


def apply_lever(cfg: Config, lever: Dict[str, Any], name: str = "?") -> Config:
    """A copy of ``cfg`` with the candidate's edits: ``set`` replaces (or adds) a value in an
    existing section; ``extend`` appends to an existing list setting."""
    out = Config().from_str(cfg.to_str(), interpolate=False)
    for dotted, value in (lever.get("set") or {}).items():
        node, key = _parent(out, dotted, name)
        node[key] = value
    for dotted, items in (lever.get("extend") or {}).items():
        node, key = _parent(out, dotted, name)
        if not isinstance(node.get(key), list):
            raise ValueError(f"candidate {name!r}: {dotted} is not a list in the config, cannot extend it")
        node[key] = list(node[key]) + [i for i in items if i not in node[key]]
    return out



def archive_name(out_file: Path, old: Dict[str, Any]) -> Path:
    """Where results made with other settings go: beside ``out_file``, named by the old profile's
    digest (``unversioned`` for files from before digests were kept)."""
    digest = (old.get("settings") or {}).get("config_sha256") or "unversioned"
    return out_file.with_name(f"{out_file.stem}-profile-{digest[:12]}.json")


def seed_suffix(seed: int) -> str:
    """"" for seed 0 (the profile's own `train` run), "-seedN" otherwise (the `seeds` run's)."""
    return "" if seed == 0 else f"-seed{seed}"


def baseline(bias_file: Path, seed_model: Optional[Path] = None, dev: Optional[Path] = None) -> Dict[str, Any]:
    """The profile's own model on dev, from `spacy project run tune`'s file. For a seed other than
    0 (``seed_model`` given) the file is written first, by tuning that model on ``dev``, if it is
    not there yet."""
    if not bias_file.is_file() and seed_model is not None:
        if not (seed_model / "config.cfg").is_file():
            raise FileNotFoundError(
                f"{seed_model} does not exist: train the profile's seeds first "
                "(`spacy project run seeds` with the same corpus and config)")
        bias_file.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(bias_file, tune(seed_model, dev, bias_grid(*GRID)))
    if not bias_file.is_file():
        raise FileNotFoundError(
            f"{bias_file} does not exist: train and tune the profile first "
            "(`spacy project run train` and `tune` with the same corpus and config)")
    data = srsly.read_json(bias_file)
    at0 = next(r for r in data["grid"] if r["bias"] == 0.0)
    return {"source": str(bias_file), "dev": {"f": at0["f"], "p": at0["p"], "r": at0["r"]},
            "dev_tuned": {"bias": data["chosen"], "f": data["dev_f"]}}


def run(argv: Optional[List[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("corpus")
    parser.add_argument("--config", default="accurate", help="name of a file in configs/ (without .cfg)")
    parser.add_argument("--levers", type=Path, default=Path("configs/levers.json"))
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="train only these candidates")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("metrics"))
    parser.add_argument("--work", type=Path, default=Path("training/levers"))
    parser.add_argument("--force", action="store_true", help="retrain candidates already in the results file")
    args = parser.parse_args(argv)
    paths = checked_training_paths(parser, args.corpus, args.config)
    try:
        levers = read_levers(args.levers)
    except ValueError as e:
        parser.error(str(e))
    unknown = sorted(set(args.only or ()) - set(levers))
    if unknown:
        parser.error(f"--only {unknown}: not in {args.levers} (candidates: {sorted(levers)})")
    base = Config().from_disk(paths.config, interpolate=False)
    configs = {}
    base_digest = config_digest(base)
    for name, lever in levers.items():
        if args.only is None or name in args.only:
            try:
                configs[name] = apply_lever(base, lever, name)
            except ValueError as e:
                parser.error(f"{args.levers}: {e} ({paths.config})")
            if config_digest(configs[name]) == base_digest:
                msg.warn(f"{name}: {paths.config} already has this edit, nothing to compare: skipped")
                del configs[name]
    if not configs:
        msg.warn("no candidate left to train")
        return {}
    if args.seed < 0:
        parser.error(f"--seed {args.seed}: a seed is 0 or more")
    suffix = seed_suffix(args.seed)
    bias_file = args.out / f"{args.corpus}-{args.config}{suffix}-bias.json"
    seed_model = project_paths(args.corpus, args.config, suffix=suffix).model if suffix else None
    try:
        reference = baseline(bias_file, seed_model, Path(paths.dev))
    except FileNotFoundError as e:
        parser.error(str(e))
    settings = {"config": str(paths.config), "config_sha256": base_digest, "seed": args.seed}
    out_file = args.out / f"levers-{args.corpus}{suffix}.json"
    results = srsly.read_json(out_file) if out_file.is_file() else {}
    if results and results.get("settings") != settings:
        archived = archive_name(out_file, results)
        out_file.rename(archived)
        msg.warn(f"{out_file} was made with other settings or another version of {paths.config}: "
                 f"kept as {archived}; this run starts a new {out_file.name}")
        results = {}
    results.update({"corpus": args.corpus, "settings": settings, "split": "dev", "baseline": reference,
                    "metric": "entity F1 of model-best on dev (spaCy's scorer, gold tokens), as trained "
                              "and with an outside_bias chosen on dev"})
    done = results.setdefault("candidates", {})
    for name, cfg in configs.items():
        lever = levers[name]
        edit = {"set": lever.get("set") or {}, "extend": lever.get("extend") or {}}
        if name in done and done[name].get("edit") == edit and not args.force:
            done[name]["help"] = lever.get("help", "")  # documentation only: no retraining for it
            srsly.write_json(out_file, results)
            msg.info(f"{name}: already in {out_file} (dev F1 {done[name]['dev']['f']:.4f}), skipped")
            continue
        folder = args.work / f"{args.corpus}-{name}{suffix}"
        folder.mkdir(parents=True, exist_ok=True)
        cfg_path = folder / "config.cfg"
        cfg.to_disk(cfg_path, interpolate=False)
        cmd = train_command(cfg_path, folder, paths.train, paths.dev, seed=args.seed, vectors=paths.vectors,
                            lexicons=paths.lexicons, train_log=folder / "train_log.jsonl")
        msg.info(f"{name}: " + " ".join(cmd))
        sys.stdout.flush()
        start = time.perf_counter()
        code = subprocess.run(cmd).returncode
        if code != 0:
            msg.fail(f"{name}: spacy train exited with {code}", exits=code)
        seconds = round(time.perf_counter() - start, 1)
        tuned = tune(folder / "model-best", Path(paths.dev), bias_grid(*GRID))
        done[name] = {"help": lever.get("help", ""), "edit": edit, "dev": model_dev_scores(folder / "model-best"),
                      "dev_tuned": {"bias": tuned["chosen"], "f": tuned["dev_f"]}, "train_seconds": seconds}
        args.out.mkdir(parents=True, exist_ok=True)
        srsly.write_json(out_file, results)
        msg.good(f"{name}: dev F1 {done[name]['dev']['f']:.4f}, tuned {tuned['dev_f']:.4f} "
                 f"(baseline {reference['dev']['f']:.4f} / {reference['dev_tuned']['f']:.4f}) -> {out_file}")
    return results


if __name__ == "__main__":
    run()
    sys.exit(0)

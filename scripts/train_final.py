"""Final fit on train + dev (project.yml's `train-final` command): retrain configs/CONFIG.cfg on the
corpus's train and dev splits together, with every choice already made on dev by the train-only
run, and score the result on test.

    python scripts/train_final.py CORPUS [--config accurate] [--seeds 0 1 2] [--force]

Model selection needs held-out data, so it happens first, the usual way: `train` + `tune` on the
train split, with dev for the checkpoint (model-best) and the `outside_bias`. Once those choices are
made, dev's labelled tweets can also teach the model, as Flair's `train_with_dev` does for its
published models (wnut16's dev has 1,000 tweets beside 2,394 for training). This script takes:

- the number of epochs: the epoch of the train-only seed-0 run's best dev evaluation, plus one
  (training/<corpus>-<config>/train_log.jsonl);
- the `outside_bias`: the one `tune` chose on dev (metrics/<corpus>-<config>-bias.json), and for
  the ensemble of several seeds the one chosen for the train-only ensemble
  (metrics/<corpus>-<config>-ensemble-bias.json);

and trains each seed on train + dev (corpus/<corpus>/train+dev/, a copy of both DocBins) for that
many epochs (spaCy still scores dev during training, as the train log shows, but those scores
are on tweets the model is learning from and choose nothing). The model is the last one (training/<corpus>-<config>-final[-seedN]/model-final);
spaCy's model-best is deleted, since it was picked on dev tweets the model trained on. Nothing is
scored on dev. Test F1 goes to metrics/<corpus>-<config>-final[-seedN]-test.json (and
-final-ensemble-test.json for two or more seeds), and the whole run, with the choices and their
sources, to metrics/<corpus>-<config>-final.json. Seeds already trained with the same choices and
config file are reused (--force retrains).
"""
import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import srsly
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import (  # noqa: E402
    ProjectPaths, checked_training_paths, evaluate_command, project_paths, teacher_pass_done, train_command,
)
from tune_outside_bias import write_bias  # noqa: E402

COMPONENT = "twitter_bilstm_ner"
FINAL = "model-final"


def chosen_epochs(train_log: Path) -> Dict[str, Any]:
    """The train-only run's best dev evaluation (its highest ``score``) and the epochs to train
    through it: its 0-based epoch + 1."""
    if not train_log.is_file():
        raise ValueError(f"{train_log} does not exist: run `spacy project run train` (the train-only run) first")
    records = [r for r in srsly.read_jsonl(train_log) if r.get("step", 0) > 0 and r.get("score") is not None]
    if not records:
        raise ValueError(f"{train_log} has no dev evaluation after step 0: the train-only run is too short to choose from")
    best = max(records, key=lambda r: r["score"])  # max() keeps the first of equal scores
    return {"epochs": int(best["epoch"]) + 1, "best_step": int(best["step"]), "best_epoch": int(best["epoch"]),
            "dev_score": best["score"], "source": str(train_log)}


def chosen_bias(bias_file: Path, what: str) -> float:
    """The ``outside_bias`` that `tune` chose on dev, from its JSON."""
    if not bias_file.is_file():
        raise ValueError(f"{bias_file} does not exist: run `spacy project run tune` for the {what} first")
    data = srsly.read_json(bias_file)
    if "chosen" not in data:
        raise ValueError(f"{bias_file} has no \"chosen\" bias: rerun `spacy project run tune` for the {what}")
    return float(data["chosen"])


def train_dev_dir(paths: ProjectPaths) -> Path:
    """corpus/<corpus>/train+dev/: copies of train.spacy and dev.spacy (spaCy's corpus reader
    reads every .spacy file of a directory)."""
    folder = paths.corpus_dir / "train+dev"
    folder.mkdir(parents=True, exist_ok=True)
    for split in (paths.train, paths.dev):
        target = folder / split.name
        if not target.exists() or target.stat().st_mtime < split.stat().st_mtime:
            shutil.copy2(split, target)
    return folder


def seed_suffix(seed: int) -> str:
    return "-final" if seed == 0 else f"-final-seed{seed}"


def scores_from(path: Path) -> Dict[str, Optional[float]]:
    data = srsly.read_json(path)
    return {"f": data.get("ents_f"), "p": data.get("ents_p"), "r": data.get("ents_r")}


def train_seed(paths: ProjectPaths, seed: int, epochs: int, bias: float, data: Path, run=subprocess.run) -> Dict[str, Any]:
    """Train one seed on train + dev, keep model-last as model-final with ``bias`` written in, and
    score it on test."""
    out = project_paths(paths.corpus, paths.config_name, seed_suffix(seed))
    cmd = train_command(
        paths.config, out.output, data, paths.dev, seed=seed, vectors=paths.vectors, lexicons=paths.lexicons,
        train_log=out.train_log, silver=paths.silver if teacher_pass_done(paths.silver) else None,
        overrides=["--training.max_epochs", str(epochs)],
    )
    msg.info(" ".join(cmd))
    sys.stdout.flush()
    start = time.perf_counter()
    if run(cmd).returncode != 0:
        raise RuntimeError(f"seed {seed}: `spacy train` failed (command above)")
    seconds = round(time.perf_counter() - start, 1)
    final = out.output / FINAL
    if final.exists():
        shutil.rmtree(final)
    (out.output / "model-last").rename(final)
    shutil.rmtree(out.output / "model-best", ignore_errors=True)
    write_bias(final, COMPONENT, bias)
    if run(evaluate_command(final, paths.test, out.test_metrics)).returncode != 0:
        raise RuntimeError(f"seed {seed}: `spacy evaluate` of {final} failed")
    return {"model": str(final), "train_seconds": seconds, "test": scores_from(out.test_metrics),
            "test_metrics": str(out.test_metrics)}


def train_ensemble(paths: ProjectPaths, models: Sequence[str], bias: float, run=subprocess.run) -> Dict[str, Any]:
    """The ensemble of the final seeds (``spacy-twitter-ner ensemble``), scored on test."""
    out = project_paths(paths.corpus, paths.config_name, "-final-ensemble")
    model = out.output / FINAL
    cmd = [sys.executable, "-m", "spacy_twitter_ner", "ensemble", str(model), *models]
    if run(cmd).returncode != 0:
        raise RuntimeError("the ensemble of the final seeds failed (command: " + " ".join(cmd) + ")")
    write_bias(model, COMPONENT, bias)
    if run(evaluate_command(model, paths.test, out.test_metrics)).returncode != 0:
        raise RuntimeError(f"`spacy evaluate` of {model} failed")
    return {"model": str(model), "members": list(models), "test": scores_from(out.test_metrics),
            "test_metrics": str(out.test_metrics)}


def train_only_test(metrics: Path, name: str) -> Optional[float]:
    """Test F1 of the matching train-only model, for comparison (None when not evaluated)."""
    path = metrics / f"{name}-test.json"
    return srsly.read_json(path).get("ents_f") if path.is_file() else None


def summary_ensemble(path: Path) -> Optional[Dict[str, Any]]:
    return srsly.read_json(path).get("ensemble") if path.is_file() else None


def main(argv: Optional[List[str]] = None, run=subprocess.run) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("corpus")
    parser.add_argument("--config", default="accurate", help="name of a file in configs/ (without .cfg)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to train; two or more are also ensembled")
    parser.add_argument("--out", type=Path, default=Path("metrics"))
    parser.add_argument("--force", action="store_true", help="retrain seeds already trained with the same choices")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: {args.seeds} repeats a seed")
    paths = checked_training_paths(parser, args.corpus, args.config)
    if not paths.test.is_file():
        parser.error(f"{paths.test} does not exist: run `spacy project run convert . --vars.corpus {args.corpus}` first")
    name = f"{args.corpus}-{args.config}"
    try:
        epochs = chosen_epochs(paths.train_log)
        bias = chosen_bias(args.out / f"{name}-bias.json", f"`{args.config}` model (--vars.config {args.config})")
        ensemble_bias = (chosen_bias(args.out / f"{name}-ensemble-bias.json",
                                     f"train-only ensemble (--vars.config {args.config}-ensemble)")
                         if len(args.seeds) > 1 else None)
    except ValueError as err:
        msg.fail(str(err))
        return 1
    summary_path = args.out / f"{name}-final.json"
    summary = srsly.read_json(summary_path) if summary_path.is_file() else {}
    config_sha = hashlib.sha256(paths.config.read_bytes()).hexdigest()
    same_choices = (summary.get("epochs"), summary.get("outside_bias"), summary.get("config_sha256")) == \
        (epochs["epochs"], bias, config_sha)
    seeds: Dict[str, Any] = dict(summary.get("seeds", {})) if same_choices else {}
    summary = {
        "corpus": args.corpus, "config": args.config, "data": ["train", "dev"],
        "config_sha256": config_sha, "epochs": epochs["epochs"], "chosen_from": epochs, "outside_bias": bias,
        "outside_bias_source": str(args.out / f"{name}-bias.json"),
        "train_only_test_f": {"seed0": train_only_test(args.out, name),
                              "ensemble": train_only_test(args.out, f"{name}-ensemble")},
        "seeds": seeds,
        "note": "trained on train + dev with the epochs and outside_bias chosen on dev by the train-only run; "
                "no dev score (dev is training data); test F1 from spacy evaluate, gold tokenisation",
    }
    data = train_dev_dir(paths)
    msg.info(f"{args.corpus}: train + dev ({data}), {epochs['epochs']} epochs (train-only best dev evaluation at "
             f"epoch {epochs['best_epoch']}, step {epochs['best_step']}), outside_bias {bias}")
    try:
        trained = False
        for seed in args.seeds:
            key = str(seed)
            if key in seeds and Path(seeds[key]["model"]).is_dir() and not args.force:
                msg.info(f"seed {seed}: reusing {seeds[key]['model']} (test F1 {100 * seeds[key]['test']['f']:.2f})")
                continue
            seeds[key] = train_seed(paths, seed, epochs["epochs"], bias, data, run=run)
            trained = True
            srsly.write_json(summary_path, summary)
            msg.good(f"seed {seed}: test F1 {100 * seeds[key]['test']['f']:.2f} in {seeds[key]['train_seconds']:.0f} s")
        models = [seeds[str(s)]["model"] for s in args.seeds]
        previous = summary_ensemble(summary_path)
        if ensemble_bias is not None and not trained and previous and previous.get("members") == models \
                and previous.get("outside_bias") == ensemble_bias and Path(previous["model"]).is_dir():
            summary["ensemble"] = previous
            msg.info(f"ensemble: reusing {previous['model']}")
        elif ensemble_bias is None and not trained and previous and set(previous.get("members", [])) <= \
                {seed["model"] for seed in seeds.values()}:
            summary["ensemble"] = previous  # a run of fewer seeds keeps the ensemble of the seeds it reused
        elif ensemble_bias is not None:
            summary["ensemble"] = {"outside_bias": ensemble_bias,
                                   "outside_bias_source": str(args.out / f"{name}-ensemble-bias.json"),
                                   **train_ensemble(paths, models, ensemble_bias, run=run)}
            msg.good(f"ensemble of seeds {args.seeds}: test F1 {100 * summary['ensemble']['test']['f']:.2f}")
    except RuntimeError as err:
        msg.fail(str(err))
        return 1
    finally:
        srsly.write_json(summary_path, summary)
    msg.good(f"Wrote {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

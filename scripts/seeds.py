"""Train and evaluate one config with several seeds and report the mean and spread of dev/test F1:
on corpora this small a single run swings by several points.

    python scripts/seeds.py CORPUS CONFIG --seeds 0 1 2 [--gpu-id -1] [--reuse training/CORPUS-CONFIG [DIR ...]] [spacy train overrides]

Each seed trains to training/<corpus>-<config>-seed<N>/ and is scored on dev and test with
`spacy evaluate --gold-preproc` (metrics/<corpus>-<config>-seed<N>-{dev,test}.json); the summary
goes to metrics/<corpus>-<config>-seeds.json. A seed whose metrics already exist is not retrained, and
--reuse names models already trained with the same config (`spacy project run train`'s, or a `levers`
run's whose edit the config has since adopted), each matched to a seed by its config's seed.
Every seed is scored as trained (outside_bias 0): a reused model whose `tune --write` stored
another bias is copied to training/<corpus>-<config>-seed<N>/model-best with the bias set to 0,
and that copy is scored and listed, so the seeds' spread compares like with like.
"""
import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Union

import srsly
from thinc.api import Config
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import evaluate_command, project_paths, project_train_command  # noqa: E402
from tune_outside_bias import write_bias  # noqa: E402


def run(cmd: List[str]) -> None:
    msg.info(" ".join(cmd))
    result = subprocess.run(cmd)
    if result.returncode != 0:
        raise SystemExit(f"command failed with exit code {result.returncode}: {' '.join(cmd)}")


def reusable_model(train_dirs: Union[None, Path, Sequence[Path]], seed: int) -> Optional[Path]:
    """model-best of the first of `train_dirs` whose config says it was trained with `seed`, else
    None."""
    if train_dirs is None:
        return None
    for train_dir in [train_dirs] if isinstance(train_dirs, Path) else train_dirs:
        model = train_dir / "model-best"
        if not (model / "config.cfg").exists():
            continue
        config = Config().from_disk(model / "config.cfg", interpolate=False)
        if str(config["system"]["seed"]) == str(seed):
            return model
    return None


def as_trained(model: Path, copy_to: Path) -> Path:
    """``model`` itself when every twitter_bilstm_ner in it has ``outside_bias`` 0, else a copy at
    ``copy_to`` with the bias set back to 0 (the model as trained)."""
    config = Config().from_disk(model / "config.cfg", interpolate=False)
    biased = [name for name, comp in config.get("components", {}).items()
              if comp.get("factory") == "twitter_bilstm_ner" and float(comp.get("outside_bias", 0.0)) != 0.0]
    if not biased:
        return model
    if copy_to.exists():
        shutil.rmtree(copy_to)
    shutil.copytree(model, copy_to)
    for name in biased:
        write_bias(copy_to, name, 0.0)
    msg.info(f"{model} has a tuned outside_bias: scoring a copy as trained ({copy_to}, outside_bias 0)")
    return copy_to


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--reuse", type=Path, nargs="+", default=None,
                        help="training directories (e.g. training/<corpus>-<config>) whose model-best was trained "
                             "with the same config and one of the seeds: that seed is scored, not retrained "
                             "(the first directory with the seed wins)")
    # Anything not recognised goes to `spacy train` (e.g. --training.max_epochs 5); parse_known_args
    # rather than a REMAINDER positional, which would swallow --seeds itself.
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    corpus, config = args.corpus, args.config
    results = {}
    models = {}
    for seed in args.seeds:
        paths = project_paths(corpus, config, suffix=f"-seed{seed}")
        reused = reusable_model(args.reuse, seed)
        model = reused if reused is not None else paths.model
        if not paths.test_metrics.exists():
            if reused is not None:
                msg.info(f"seed {seed}: scoring {reused} (trained with [system] seed = {seed}) instead of retraining")
                model = as_trained(reused, paths.model)
            else:
                run(project_train_command(paths, seed=seed, gpu_id=args.gpu_id, overrides=extra))
            for data, target in ((paths.dev, paths.dev_metrics), (paths.test, paths.test_metrics)):
                run(evaluate_command(model, data, target, gpu_id=args.gpu_id))
        elif reused is not None and (paths.model / "config.cfg").exists():
            model = paths.model  # the as-trained copy scored by an earlier run
        models[seed] = str(model)
        results[seed] = {s: srsly.read_json(p)["ents_f"]
                         for s, p in (("dev", paths.dev_metrics), ("test", paths.test_metrics))}
    devs = [r["dev"] for r in results.values()]
    tests = [r["test"] for r in results.values()]
    summary = {
        "corpus": corpus,
        "config": config,
        "seeds": args.seeds,
        "dev_f": devs,
        "test_f": tests,
        "dev_f_mean": statistics.mean(devs),
        "dev_f_std": statistics.stdev(devs) if len(devs) > 1 else 0.0,
        "test_f_mean": statistics.mean(tests),
        "test_f_std": statistics.stdev(tests) if len(tests) > 1 else 0.0,
        # the pipelines behind the scores, for `spacy-twitter-ner ensemble --from-seeds`
        "models": [models[seed] for seed in args.seeds],
    }
    path = project_paths(corpus, config).seeds_metrics
    srsly.write_json(path, summary)
    msg.good(
        f"{corpus} {config}: test F1 {100 * summary['test_f_mean']:.1f} ± {100 * summary['test_f_std']:.1f} "
        f"(dev {100 * summary['dev_f_mean']:.1f} ± {100 * summary['dev_f_std']:.1f}) over seeds {args.seeds} -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

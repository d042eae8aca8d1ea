"""The one place the project's ``spacy train`` and ``spacy evaluate`` command lines are built
(used by scripts/train.py, i.e. project.yml's ``train`` command, scripts/seeds.py and
scripts/benchmark.py), and the project's standard paths.

Which ``--paths.*`` a ``spacy train`` line gets is decided from the config file itself, never
from a name: ``--paths.vectors``, ``--paths.lexicons`` and ``--paths.train_log`` are passed only
when the config declares that variable in ``[paths]`` *and* refers to it (``${paths.vectors}``)
somewhere, e.g. ``[initialize] vectors = ${paths.vectors}``. A config that declares a path but
does not use it (``configs/seed.cfg`` has no static vectors) or does not declare it (spaCy's own
``ner`` config has no ``lexicons``) does not get it.

``--paths.silver`` (the teacher-labelled tweets of distillation, assets/silver/<corpus>) is passed
the same way, and only when a finished teacher pass is there (its teach-summary.json says
complete): so a config that can distil (configs/default.cfg, configs/distilled.cfg) trains on the
gold tweets alone, as the fast profile, until `spacy project run teach` has run for the corpus.
"""
import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional, Sequence, Union

import srsly
from thinc.api import Config

PathLike = Union[str, Path]
# the [paths] variables the project fills when a config uses them
OPTIONAL_PATHS = ("train_log", "vectors", "lexicons", "silver")
TEACH_SUMMARY = "teach-summary.json"  # spacy_twitter_ner.training.teach.SUMMARY_FILE


@dataclass(frozen=True)
class ProjectPaths:
    """Where the project keeps the inputs and outputs of one corpus + config (relative paths,
    as project.yml writes them)."""

    corpus: str
    config_name: str
    config: Path  # configs/<config>.cfg
    corpus_dir: Path  # corpus/<corpus>
    train: Path
    dev: Path
    test: Path
    vectors: Path  # assets/vectors/<corpus>-minilm-256
    lexicons: Path  # assets/lexicons
    silver: Path  # assets/silver/<corpus>: the teacher-labelled tweets, once `teach` ran
    output: Path  # training/<corpus>-<config><suffix>
    train_log: Path  # <output>/train_log.jsonl
    model: Path  # <output>/model-best
    dev_metrics: Path  # metrics/<corpus>-<config><suffix>-dev.json
    test_metrics: Path  # metrics/<corpus>-<config><suffix>-test.json
    seeds_metrics: Path  # metrics/<corpus>-<config>-seeds.json


def project_paths(corpus: str, config: str, suffix: str = "", root: PathLike = ".") -> ProjectPaths:
    """The project's standard paths for ``corpus`` and ``configs/<config>.cfg``; ``suffix`` names a
    variant run of that config (``"-seed1"``: training/<corpus>-<config>-seed1, metrics/...-seed1-*)."""
    root = Path(root)
    corpus_dir = root / "corpus" / corpus
    name = f"{corpus}-{config}{suffix}"
    output = root / "training" / name
    metrics = root / "metrics"
    return ProjectPaths(
        corpus=corpus,
        config_name=config,
        config=root / "configs" / f"{config}.cfg",
        corpus_dir=corpus_dir,
        train=corpus_dir / "train.spacy",
        dev=corpus_dir / "dev.spacy",
        test=corpus_dir / "test.spacy",
        vectors=root / "assets" / "vectors" / f"{corpus}-minilm-256",
        lexicons=root / "assets" / "lexicons",
        silver=root / "assets" / "silver" / corpus,
        output=output,
        train_log=output / "train_log.jsonl",
        model=output / "model-best",
        dev_metrics=metrics / f"{name}-dev.json",
        test_metrics=metrics / f"{name}-test.json",
        seeds_metrics=metrics / f"{corpus}-{config}-seeds.json",
    )


def _mentions(value: Any, ref: str) -> bool:
    if isinstance(value, str):
        return ref in value
    if isinstance(value, dict):
        return any(_mentions(v, ref) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_mentions(v, ref) for v in value)
    return False


def used_paths(config: PathLike) -> FrozenSet[str]:
    """The ``[paths]`` variables ``config`` declares and refers to (``${paths.<name>}``) elsewhere
    (read uninterpolated, so the references are still there)."""
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"config {path} does not exist")
    cfg = Config().from_disk(path, interpolate=False)
    declared = cfg.get("paths", {})
    rest = {k: v for k, v in cfg.items() if k != "paths"}
    used = set()
    for name in declared:
        ref = "${paths." + name + "}"
        others = {k: v for k, v in declared.items() if k != name}
        if _mentions(rest, ref) or _mentions(others, ref):
            used.add(name)
    return frozenset(used)


def checked_training_paths(parser: argparse.ArgumentParser, corpus: str, config: str) -> ProjectPaths:
    """:func:`project_paths`, after a parser error that names the config or corpus split a training
    script would miss (so it stops before `spacy train` starts, not deep inside it)."""
    paths = project_paths(corpus, config)
    if not paths.config.is_file():
        parser.error(f"config {paths.config} does not exist")
    for split in (paths.train, paths.dev):
        if not Path(split).is_file():
            parser.error(f"{split} does not exist: run `spacy project run convert . --vars.corpus {corpus}` first")
    return paths


def model_dev_scores(model_best: PathLike) -> Dict[str, Optional[float]]:
    """Dev P/R/F1 that `spacy train` stored in a saved model's meta.json (its best evaluation)."""
    perf = srsly.read_json(Path(model_best) / "meta.json").get("performance", {})
    return {"f": perf.get("ents_f"), "p": perf.get("ents_p"), "r": perf.get("ents_r")}


def train_command(
    config: PathLike,
    output: PathLike,
    train: PathLike,
    dev: PathLike,
    *,
    seed: Optional[int] = None,
    gpu_id: int = -1,
    vectors: Optional[PathLike] = None,
    lexicons: Optional[PathLike] = None,
    train_log: Optional[PathLike] = None,
    silver: Optional[PathLike] = None,
    overrides: Sequence[str] = (),
    python: str = sys.executable,
) -> List[str]:
    """``python -m spacy train CONFIG --output OUTPUT --paths.train TRAIN --paths.dev DEV
    [--paths.train_log ...] [--paths.vectors ...] [--paths.lexicons ...] [--paths.silver ...]
    [--system.seed N] --gpu-id N [overrides...]``. Each optional path is passed when it is given
    and the config uses it (see :func:`used_paths`), unless ``overrides`` set it; ``seed`` None
    keeps the config's ``[system] seed``; ``overrides`` (e.g. ``["--training.max_epochs", "3"]``)
    go last, unchanged."""
    cmd = [python, "-m", "spacy", "train", str(config), "--output", str(output),
           "--paths.train", str(train), "--paths.dev", str(dev)]
    used = used_paths(config)
    for name, value in (("train_log", train_log), ("vectors", vectors), ("lexicons", lexicons), ("silver", silver)):
        if value is not None and name in used and f"--paths.{name}" not in overrides:
            cmd += [f"--paths.{name}", str(value)]
    if seed is not None:
        cmd += ["--system.seed", str(seed)]
    cmd += ["--gpu-id", str(gpu_id), *overrides]
    return cmd


def project_train_command(paths: ProjectPaths, *, seed: Optional[int] = None, gpu_id: int = -1,
                          overrides: Sequence[str] = (), python: str = sys.executable) -> List[str]:
    """:func:`train_command` with the project's standard paths (``project_paths``); the silver
    folder only when a finished teacher pass is in it."""
    return train_command(
        paths.config, paths.output, paths.train, paths.dev, seed=seed, gpu_id=gpu_id,
        vectors=paths.vectors, lexicons=paths.lexicons, train_log=paths.train_log,
        silver=paths.silver if teacher_pass_done(paths.silver) else None,
        overrides=overrides, python=python,
    )


def teacher_pass_done(silver: PathLike) -> bool:
    """Whether ``silver`` holds a finished teacher pass (teach-summary.json with complete: true)."""
    summary = Path(silver) / TEACH_SUMMARY
    if not summary.is_file():
        return False
    try:
        return bool(json.loads(summary.read_text(encoding="utf8")).get("complete"))
    except ValueError:
        return False


def evaluate_command(model: PathLike, data: PathLike, output: PathLike, gpu_id: int = -1,
                     python: str = sys.executable) -> List[str]:
    """``python -m spacy evaluate MODEL DATA --output OUTPUT --gold-preproc --gpu-id N``: the
    Twitter tokens of the corpus, as conlleval scores them."""
    return [python, "-m", "spacy", "evaluate", str(model), str(data), "--output", str(output),
            "--gold-preproc", "--gpu-id", str(gpu_id)]


def config_digest(config: Union[Config, Path, str]) -> str:
    """sha256 of a config's settings (a Config or a .cfg path; comments and layout do not count),
    so that results can name the version of a profile they were made against."""
    if not isinstance(config, Config):
        config = Config().from_disk(config, interpolate=False)
    return hashlib.sha256(config.to_str(interpolate=False).encode("utf8")).hexdigest()


TRAIN_TIME = "train_time.json"  # scripts/train.py: wall-clock seconds of the whole `spacy train` run


def recorded_train_seconds(model_dir: PathLike, records: Sequence[str] = (TRAIN_TIME,)) -> Optional[float]:
    """A training's seconds: the first of ``records`` in ``model_dir`` that exists (JSON with
    ``train_seconds``), else the last record of its ``train_log.jsonl`` (the last evaluation, which
    can be steps before the end), else None."""
    model_dir = Path(model_dir)
    for name in records:
        if (model_dir / name).exists():
            return srsly.read_json(model_dir / name).get("train_seconds")
    log = model_dir / "train_log.jsonl"
    last = None
    if log.exists():
        for last in srsly.read_jsonl(log):
            pass
    return float(last["seconds"]) if last and "seconds" in last else None


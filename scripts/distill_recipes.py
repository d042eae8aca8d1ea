"""Student recipes for distillation, compared on dev (project.yml's `distill-recipes` command):
the same teacher pass, the same seed, one change at a time.

    python scripts/distill_recipes.py CORPUS [--recipes clusters previous ...] [--seed 0] [--force]

Each recipe is a set of settings applied to configs/distilled.cfg (so the file itself can hold
any of them; ``RECIPES`` below):

* ``clusters``: Brown cluster one-hots (``LexemeClusters.v1``) + vectors from all 187k raw tweets;
* ``previous``: the previous release's student: no clusters, vectors from tweets.txt only (34k);
* ``no-clusters``: ``clusters`` without the clusters (isolates the vectors);
* ``word-dropout``: ``clusters`` with ``word_dropout = 0.1``;
* ``hard``: ``clusters`` trained on the teacher's entities (its Viterbi path) instead of its tag
  distributions (``soft = false``);
* ``longer``: ``clusters`` trained for twice the steps (10,000 batches of 32 tweets);
* ``word-dropout-longer``: ``word-dropout`` trained for twice the steps;
* ``medium``/``small``: ``word-dropout`` with a BiLSTM of 96/64 units each way instead of 128
  (faster: the BiLSTM is the largest single cost of the student's prediction);
* ``lexicon-vectors``: ``word-dropout`` with vectors also for the 150,000 most frequent words of
  spacy-lookups-data's ``en_lexeme_prob`` (rare names no tweet holds; ``--lexicon-words``);
* ``lexicon-vectors-longer``: ``word-dropout-longer`` with those vectors;
* ``averaged``: ``word-dropout-longer`` evaluated and saved with the optimizer's running average
  of the weights (``use_averages = true``; it reaches the torch layers since
  ``models/pytorch_shim.py``);
* ``unknown-words``: ``word-dropout-longer`` where a token that word dropout hides also loses its
  static vector and Brown cluster rows (``word_dropout_knowledge``), as a word no table knows:
  ~28% of WNUT17's test entity tokens have no vector;
* ``unknown-words-averaged``: ``unknown-words`` with ``averaged``'s weight averaging;
* ``subword-vectors``: ``word-dropout-longer`` with MiniLM's sub-word pieces in the vectors
  table (``distill_vectors.py --subword-pieces``), so a word without a vector gets the mean of
  its pieces' (``StaticVectors.v1 subwords = true``);
* ``subword-dropout``: ``subword-vectors`` where, in training, 10% of the distinct words of a
  batch that have a vector get their pieces' mean instead (``subword_dropout = 0.1``): the rows
  the model meets at prediction for the rare words without a vector (43% of WNUT17's test
  entities have such a token, ``scripts/recall_by_vectors.py``), which training otherwise
  almost never shows it.

Inputs: corpus/<corpus>/{train,dev,test}.spacy, assets/silver/<corpus> (`spacy project run
teach`), assets/vectors/<corpus>-minilm-256 (`vectors`, all raw tweets) and, for ``previous``,
assets/vectors/<corpus>-minilm-256-34k (made here from tweets.txt when missing). Outputs:
training/<corpus>-distilled-<recipe>/ (config, model, train.json), metrics/<corpus>-distilled-
<recipe>-{dev,test}.json and the summary metrics/distill-recipes-<corpus>.json (dev and test F1
and train time of each recipe; choose by dev). A recipe whose metric files exist is not trained
again (--force retrains). ``--seed N`` (N > 0) trains a recipe again with another seed, into
training/<corpus>-distilled-<recipe>-seedN and metrics/distill-recipes-<corpus>-seedN.json: a dev
F1 is the best of ~20 noisy evaluations, so a recipe's dev F1 over seeds is the steadier choice
(scripts/results_table.py averages the seeds each recipe ran).
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import srsly
from thinc.api import Config
from wasabi import msg

from spacy_twitter_ner.training.distill import read_summary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import evaluate_command, project_paths, train_command  # noqa: E402

FEATURES = ("components", "twitter_bilstm_ner", "model", "features")
CLUSTERS = {
    "@architectures": "spacy_twitter_ner.LexemeClusters.v1",
    "prefixes": [4, 6, 10],
    "prob_buckets": 10,
    "lower_fallback": True,
    "max_prefixes": 256,
}
# name -> settings; vectors: "all" = assets/vectors/<corpus>-minilm-256, "34k" = from tweets.txt only,
# "lex" = "all" + 150k frequent words of en_lexeme_prob (assets/vectors/<corpus>-minilm-256-lex)
RECIPES: Dict[str, Dict] = {
    "clusters": {"clusters": True, "vectors": "all", "word_dropout": 0.0, "soft": True, "max_steps": 5000, "hidden": 128},
    "previous": {"clusters": False, "vectors": "34k", "word_dropout": 0.0, "soft": True, "max_steps": 5000, "hidden": 128},
    "no-clusters": {"clusters": False, "vectors": "all", "word_dropout": 0.0, "soft": True, "max_steps": 5000, "hidden": 128},
    "word-dropout": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 5000, "hidden": 128},
    "hard": {"clusters": True, "vectors": "all", "word_dropout": 0.0, "soft": False, "max_steps": 5000, "hidden": 128},
    "longer": {"clusters": True, "vectors": "all", "word_dropout": 0.0, "soft": True, "max_steps": 10000, "hidden": 128},
    "word-dropout-longer": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 10000, "hidden": 128},
    "medium": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 5000, "hidden": 96},
    "small": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 5000, "hidden": 64},
    "lexicon-vectors": {"clusters": True, "vectors": "lex", "word_dropout": 0.1, "soft": True, "max_steps": 5000, "hidden": 128},
    "lexicon-vectors-longer": {"clusters": True, "vectors": "lex", "word_dropout": 0.1, "soft": True, "max_steps": 10000, "hidden": 128},
    "averaged": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 10000, "hidden": 128,
                 "averages": True},
    "unknown-words": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 10000, "hidden": 128,
                      "knowledge_dropout": True},
    "unknown-words-averaged": {"clusters": True, "vectors": "all", "word_dropout": 0.1, "soft": True, "max_steps": 10000,
                               "hidden": 128, "knowledge_dropout": True, "averages": True},
    "subword-vectors": {"clusters": True, "vectors": "sub", "word_dropout": 0.1, "soft": True, "max_steps": 10000,
                        "hidden": 128, "subwords": True},
    "subword-dropout": {"clusters": True, "vectors": "sub", "word_dropout": 0.1, "soft": True, "max_steps": 10000,
                        "hidden": 128, "subwords": True, "subword_dropout": 0.1},
}
LEXICON_WORDS = 150000


def recipe_config(base: Config, settings: Dict) -> Config:
    """``base`` (configs/distilled.cfg, uninterpolated) with a recipe's settings."""
    cfg = Config().from_str(base.to_str(), interpolate=False)
    feats = cfg
    for key in FEATURES:
        feats = feats[key]
    knowledge = feats.get("knowledge")
    if settings["clusters"]:
        if knowledge is None:
            knowledge = feats["knowledge"] = {"@architectures": "spacy_twitter_ner.KnowledgeList.v1", "*": {}}
        knowledge.setdefault("*", {})["clusters"] = dict(CLUSTERS)
    elif knowledge is not None:
        knowledge.get("*", {}).pop("clusters", None)
        if not knowledge.get("*"):
            del feats["knowledge"]
    feats["word_dropout"] = settings["word_dropout"]
    if settings.get("subwords"):
        feats["pretrained"]["subwords"] = True
    else:
        feats["pretrained"].pop("subwords", None)  # StaticVectors.v1's default: false
    if settings.get("subword_dropout"):
        feats["pretrained"]["subword_dropout"] = settings["subword_dropout"]
    else:
        feats["pretrained"].pop("subword_dropout", None)  # StaticVectors.v1's default: 0
    if settings.get("knowledge_dropout"):
        feats["word_dropout_knowledge"] = True
    else:
        feats.pop("word_dropout_knowledge", None)  # TokenFeatures.v1's default: false
    cfg["corpora"]["train"]["soft"] = settings["soft"]
    cfg["training"]["max_steps"] = settings["max_steps"]
    cfg["components"]["twitter_bilstm_ner"]["model"]["encoder"]["hidden"] = settings["hidden"]
    cfg["training"]["optimizer"]["use_averages"] = settings.get("averages", False)
    return cfg


# vectors a recipe makes when missing: folder suffix -> distill_vectors.py arguments after --corpora
VECTOR_VARIANTS: Dict[str, List[str]] = {
    "34k": ["--raw", "assets/raw_tweets/tweets.txt", "--max-words", "50000"],
    "sub": ["--raw", "assets/raw_tweets/tweets.txt", "--optional-raw", "assets/raw_tweets/tweeteval.txt",
            "--max-words", "100000", "--subword-pieces"],
    "lex": ["--raw", "assets/raw_tweets/tweets.txt", "--optional-raw", "assets/raw_tweets/tweeteval.txt",
            "--max-words", "100000", "--lexicon-words", str(LEXICON_WORDS)],
}


def vectors_for(corpus: str, which: str) -> Path:
    """The static vectors of a recipe: the project's (``all``), or a variant made when missing."""
    paths = project_paths(corpus, "distilled")
    if which == "all":
        if not paths.vectors.exists():
            raise SystemExit(f"{paths.vectors} does not exist: run `spacy project run vectors . --vars.corpus {corpus}`")
        return paths.vectors
    path = paths.vectors.with_name(f"{paths.vectors.name}-{which}")
    if not path.exists():
        run([sys.executable, "scripts/distill_vectors.py", str(path), "--corpora", f"assets/{corpus}/train.conll",
             *VECTOR_VARIANTS[which], "--dims", "256", "--min-count", "2"])
    return path


def seed_suffix(seed: int) -> str:
    """``-seed<N>`` for the runs and summary of another seed than 0, so they never overwrite seed
    0's (training/<corpus>-distilled-<recipe>-seed1, metrics/distill-recipes-<corpus>-seed1.json);
    seed 0 keeps the plain names."""
    return f"-seed{seed}" if seed else ""


def run(cmd: List[str]) -> None:
    msg.info(" ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}")


def f1(path: Path) -> Optional[float]:
    return srsly.read_json(path).get("ents_f") if path.exists() else None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="retrain recipes whose metrics exist")
    args = parser.parse_args(argv)
    base_paths = project_paths(args.corpus, "distilled")
    if not base_paths.silver.exists():
        parser.error(f"{base_paths.silver} does not exist: run `spacy project run teach . --vars.corpus {args.corpus}` first")
    base = Config().from_disk(base_paths.config, interpolate=False)
    summary_path = Path("metrics") / f"distill-recipes-{args.corpus}{seed_suffix(args.seed)}.json"
    summary = srsly.read_json(summary_path) if summary_path.exists() else {}
    summary.update({"corpus": args.corpus, "seed": args.seed, "silver": str(base_paths.silver),
                    "metric": "entity F1 of model-best (spaCy's scorer, gold tokens); choose by dev"})
    results = summary.setdefault("recipes", {})
    for name in args.recipes:
        paths = project_paths(args.corpus, "distilled", suffix=f"-{name}{seed_suffix(args.seed)}")
        if args.force or not paths.test_metrics.exists():
            paths.output.mkdir(parents=True, exist_ok=True)
            cfg_path = paths.output / "config.cfg"
            recipe_config(base, RECIPES[name]).to_disk(cfg_path, interpolate=False)
            cmd = train_command(cfg_path, paths.output, paths.train, paths.dev, seed=args.seed,
                                vectors=vectors_for(args.corpus, RECIPES[name]["vectors"]),
                                lexicons=paths.lexicons, train_log=paths.train_log, silver=paths.silver)
            start = time.perf_counter()
            run(cmd)
            srsly.write_json(paths.output / "train.json", {
                "train_seconds": round(time.perf_counter() - start, 1),
                "silver_tweets": read_summary(paths.silver)["counts"]["annotated"],  # the pass it learnt from
            })
            for data, target in ((paths.dev, paths.dev_metrics), (paths.test, paths.test_metrics)):
                run(evaluate_command(paths.model, data, target))
        timing_path = paths.output / "train.json"
        timing = srsly.read_json(timing_path) if timing_path.exists() else {}
        results[name] = {
            "settings": RECIPES[name],
            "dev_f": f1(paths.dev_metrics),
            "test_f": f1(paths.test_metrics),
            "train_seconds": timing.get("train_seconds"),
            # the teacher pass the recipe learnt from (recipes are comparable on the same pass only)
            "silver_tweets": timing.get("silver_tweets"),
        }
        srsly.write_json(summary_path, summary)
        msg.good(f"{name}: dev F1 {results[name]['dev_f']:.4f}, test F1 {results[name]['test_f']:.4f}")
    best = max(results, key=lambda k: results[k]["dev_f"] or 0.0)
    summary["best_on_dev"] = best
    srsly.write_json(summary_path, summary)
    msg.good(f"best on dev: {best} -> {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

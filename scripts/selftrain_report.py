"""What self-training the accurate profile cost and gained on one corpus, in one file the README's
results block reads (`spacy project run results`), so its figures come from a command.

    python scripts/selftrain_report.py CORPUS [--root .] [--out metrics/selftrain-CORPUS.json]

Reads, for the teacher (``training/CORPUS-accurate``) and the self-trained student
(``training/CORPUS-accurate-selftrained``): the training seconds of each (``train_time.json``,
written by scripts/train.py, else the last record of its ``train_log.jsonl``), the teacher pass's counts
and seconds (``assets/silver/CORPUS/teach-summary.json``) and each model's dev/test scores and
chosen ``outside_bias`` (``metrics/CORPUS-<config>-{dev,test,bias}.json``: run ``tune`` and
``evaluate`` for both first). A missing input is an error that names it.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict

import srsly
from wasabi import msg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from commands import recorded_train_seconds  # noqa: E402

TEACHER, STUDENT = "accurate", "accurate-selftrained"


def train_seconds(model_dir: Path) -> float:
    """Wall-clock seconds of a training (scripts/train.py's train_time.json, else its log)."""
    seconds = recorded_train_seconds(model_dir)
    if seconds is None:
        raise FileNotFoundError(f"{model_dir}: no train_time.json or train_log.jsonl (train it with the project's `train` command)")
    return float(seconds)


def scores(metrics: Path, corpus: str, config: str) -> Dict:
    out: Dict = {}
    for split in ("dev", "test"):
        path = metrics / f"{corpus}-{config}-{split}.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing (spacy project run evaluate . --vars.corpus {corpus} --vars.config {config})")
        data = srsly.read_json(path)
        out.update({f"{split}_p": data["ents_p"], f"{split}_r": data["ents_r"], f"{split}_f": data["ents_f"]})
    bias = metrics / f"{corpus}-{config}-bias.json"
    out["outside_bias"] = srsly.read_json(bias).get("chosen") if bias.exists() else None
    return out


def report(corpus: str, root: Path) -> Dict:
    metrics = root / "metrics"
    summary_path = root / "assets" / "silver" / corpus / "teach-summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{summary_path}: no teacher pass (spacy project run teach . --vars.corpus {corpus})")
    counts = srsly.read_json(summary_path)["counts"]
    teacher = {"train_seconds": train_seconds(root / "training" / f"{corpus}-{TEACHER}"),
               **scores(metrics, corpus, TEACHER)}
    student = {"train_seconds": train_seconds(root / "training" / f"{corpus}-{STUDENT}"),
               **scores(metrics, corpus, STUDENT)}
    teach = {"annotated": counts["annotated"], "words": counts["words"],
             "seconds": counts.get("seconds_all_runs", counts["seconds"])}
    return {"corpus": corpus, "teacher": teacher, "teach": teach, "student": student,
            "total_seconds": round(teacher["train_seconds"] + teach["seconds"] + student["train_seconds"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    try:
        data = report(args.corpus, args.root)
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    out = args.out or args.root / "metrics" / f"selftrain-{args.corpus}.json"
    srsly.write_json(out, data)
    t, s = data["teacher"], data["student"]
    msg.good(f"{args.corpus}: teacher dev {100 * t['dev_f']:.1f} / test {100 * t['test_f']:.1f}, self-trained "
             f"dev {100 * s['dev_f']:.1f} / test {100 * s['test_f']:.1f}; {data['total_seconds']:,.0f} s in all -> {out}")


if __name__ == "__main__":
    main()

"""Pictures of what the model does: the tutorial's training curves (P/R/F1 per entity type on
train and dev over training), a tokens x tags heat map of tag probabilities for one tweet, and
displaCy HTML with gold and predicted entities side by side.

    python -m spacy_twitter_ner.visualize curves training/X/train_log.jsonl metrics/X-curves.png
    python -m spacy_twitter_ner.visualize heatmap MODEL "tweet text" metrics/X-heatmap.png
    python -m spacy_twitter_ner.visualize displacy MODEL corpus/X/test.spacy metrics/X-displacy.html
"""
import argparse
import html
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional

import srsly
from wasabi import msg

METRICS = ("p", "r", "f")


def plot_curves(log_path: Path, out_path: Path) -> Path:
    """One panel per metric (P, R, F1) and split (train sample, dev): a line per entity type plus
    the micro average, over training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in srsly.read_jsonl(log_path)]
    if not records:
        raise ValueError(f"{log_path}: the training log has no evaluations")
    splits = [s for s in ("train", "dev") if s in records[0]]
    types = sorted({t for r in records for s in splits for t in r[s]["ents_per_type"]})
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(len(splits), 3, figsize=(15, 4.2 * len(splits)), squeeze=False, sharex=True)
    cmap = plt.get_cmap("tab10")
    for row, split in enumerate(splits):
        for col, metric in enumerate(METRICS):
            ax = axes[row][col]
            for i, label in enumerate(types):
                ys = [100 * r[split]["ents_per_type"].get(label, {}).get(metric, 0.0) for r in records]
                ax.plot(steps, ys, label=label, color=cmap(i % 10), linewidth=1.2)
            micro = [100 * (r[split][f"ents_{metric}"] or 0.0) for r in records]
            ax.plot(steps, micro, label="all (micro)", color="black", linewidth=2.5)
            ax.set_title(f"{split}: {dict(p='precision', r='recall', f='F1')[metric]}")
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if row == len(splits) - 1:
                ax.set_xlabel("training step")
    axes[0][2].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
    fig.suptitle(f"P/R/F1 per entity type over training ({log_path})")
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out_path


def plot_heatmap(nlp, text: str, out_path: Path, component: str = "twitter_bilstm_ner") -> Path:
    """Tokens x tags heat map of the per-token tag probabilities (the tutorial's softmax view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    doc = nlp(text)
    ner = nlp.get_pipe(component)
    probs = ner.tag_probabilities(doc)[0]
    tags = ner.tags
    fig, ax = plt.subplots(figsize=(max(6, 0.42 * len(tags) + 2), max(3, 0.36 * len(doc) + 1.5)))
    im = ax.imshow(probs, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(tags)), tags, rotation=70, fontsize=8)
    ax.set_yticks(range(len(doc)), [t.text for t in doc], fontsize=9)
    predicted = {t.i: f"{t.ent_iob_}-{t.ent_type_}" if t.ent_type_ else "O" for t in doc}
    for i in range(len(doc)):
        j = tags.index(predicted[i]) if predicted[i] in tags else 0
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
    fig.colorbar(im, ax=ax, label="probability")
    ax.set_title("tag probabilities per token (red: decoded tag)", fontsize=10)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out_path


def displacy_html(nlp, docbin_path: Path, out_path: Path, n: int = 20, seed: int = 0) -> Path:
    """displaCy entity markup for a seeded sample of tweets that have entities: gold on the left,
    predicted on the right."""
    from spacy import displacy
    from spacy.tokens import Doc, DocBin

    gold_docs = [d for d in DocBin().from_disk(docbin_path).get_docs(nlp.vocab) if d.ents]
    sample = random.Random(seed).sample(gold_docs, min(n, len(gold_docs)))
    labels = sorted({e.label_ for d in gold_docs for e in d.ents})
    colors = _palette(labels)
    rows = []
    for gold in sample:
        pred = Doc(nlp.vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])
        for _, proc in nlp.pipeline:
            pred = proc(pred)
        opts = {"colors": colors}
        g = displacy.render(gold, style="ent", options=opts, page=False)
        p = displacy.render(pred, style="ent", options=opts, page=False)
        rows.append(f"<tr><td>{g}</td><td>{p}</td></tr>")
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>gold vs predicted</title>"
        "<style>body{font-family:sans-serif;margin:16px} table{border-collapse:collapse;width:100%}"
        "td{vertical-align:top;border-bottom:1px solid #ddd;padding:4px 8px;width:50%}"
        "th{text-align:left;padding:4px 8px;background:#f3f3f3}</style></head><body>"
        f"<h3>{html.escape(str(docbin_path))}: {len(sample)} tweets, gold (left) and predicted (right)</h3>"
        "<table><tr><th>gold</th><th>predicted</th></tr>" + "".join(rows) + "</table></body></html>"
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf8")
    return out_path


def _palette(labels: List[str]) -> Dict[str, str]:
    base = ["#7aecec", "#bfeeb7", "#feca74", "#ff9561", "#aa9cfc", "#c887fb", "#9cc9cc",
            "#ffeb80", "#ff8197", "#f0d0ff", "#e4e7d2", "#bfe1d9"]
    return {label: base[i % len(base)] for i, label in enumerate(labels)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spacy_twitter_ner.visualize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("curves", help="training curves PNG from a CurveLogger JSONL log")
    c.add_argument("log", type=Path)
    c.add_argument("output", type=Path)
    h = sub.add_parser("heatmap", help="tokens x tags probability heat map PNG for one tweet")
    h.add_argument("model")
    h.add_argument("text")
    h.add_argument("output", type=Path)
    d = sub.add_parser("displacy", help="displaCy HTML, gold and predicted side by side")
    d.add_argument("model")
    d.add_argument("docbin", type=Path)
    d.add_argument("output", type=Path)
    d.add_argument("--n", type=int, default=20)
    d.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.what == "curves":
            if not args.log.exists():
                raise ValueError(f"no training log at {args.log}")
            out = plot_curves(args.log, args.output)
        else:
            import spacy

            nlp = spacy.load(args.model)
            if args.what == "heatmap":
                out = plot_heatmap(nlp, args.text, args.output)
            else:
                if not args.docbin.exists():
                    raise ValueError(f"no corpus file at {args.docbin}")
                out = displacy_html(nlp, args.docbin, args.output, n=args.n, seed=args.seed)
    except (ValueError, OSError) as err:
        msg.fail(str(err))
        return 1
    msg.good(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

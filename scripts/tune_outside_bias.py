"""Choose a saved pipeline's ``outside_bias`` on dev: the amount taken off every token's ``O``
score before ``twitter_bilstm_ner`` picks its best path (a precision/recall trade-off; the
models trained here find few entities with high precision, so recall is usually cheap to buy).

    python scripts/tune_outside_bias.py MODEL DEV [--out FILE.json] [--write] [--grid LO HI STEP]

The dev tweets are predicted once (gold tokenisation, as ``spacy evaluate --gold-preproc``); each
bias of the grid only re-runs the Viterbi path, and is scored with spaCy's NER scorer. The bias
with the best dev F1 wins (ties: the one nearest 0). ``--write`` stores it in MODEL/config.cfg
([components.<name>] outside_bias), so ``spacy.load`` and ``spacy evaluate`` use it; ``--out``
writes the whole grid. Test data is never read.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import spacy
import srsly
from spacy.scorer import get_ner_prf
from spacy.tokens import Doc, DocBin
from spacy.util import minibatch
from spacy.training import Example
from thinc.api import Config
from wasabi import msg

BATCH = 256
GRID = (-1.0, 4.0, 0.25)  # lo, hi, step: what `spacy project run tune` searches


def bias_grid(lo: float, hi: float, step: float) -> List[float]:
    if step <= 0 or hi < lo:
        raise ValueError(f"--grid: need LO <= HI and STEP > 0, got {lo} {hi} {step}")
    n = int(round((hi - lo) / step))
    return sorted({round(lo + i * step, 6) for i in range(n + 1)} | {0.0})


def choose(rows: Sequence[Dict]) -> Dict:
    """The best dev F1; among equals, the bias nearest 0 (the model as trained)."""
    return max(rows, key=lambda r: (round(r["f"], 6), -abs(r["bias"])))


def tune(model: Path, dev: Path, grid: Sequence[float], component: Optional[str] = None) -> Dict:
    from spacy_twitter_ner.component import TwitterBiLSTMNER

    nlp = spacy.load(model)
    names = [n for n, p in nlp.pipeline if isinstance(p, TwitterBiLSTMNER)]
    if component is None:
        if not names:
            raise SystemExit(f"{model}: no twitter_bilstm_ner component in the pipeline {nlp.pipe_names}")
        component = names[0]
    elif component not in names:
        raise SystemExit(f"{model}: no twitter_bilstm_ner component named {component!r} (found {names})")
    ner = nlp.get_pipe(component)
    before = [p for n, p in nlp.pipeline[: nlp.pipe_names.index(component)]]
    refs = list(DocBin().from_disk(dev).get_docs(nlp.vocab))
    if not refs:
        raise SystemExit(f"{dev}: no dev tweets")
    preds = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in refs]
    for proc in before:
        preds = list(proc.pipe(preds))
    # the model runs once per batch; each bias only decodes its scores again
    batches = [(docs, ner.model.predict(docs)) for docs in minibatch(preds, BATCH) if any(len(d) for d in docs)]
    rows = []
    for bias in grid:
        for d in preds:
            d.ents = []
        for docs, scores in batches:
            ner.set_annotations(docs, ner.decode(docs, scores, outside_bias=bias))
        prf = get_ner_prf([Example(p, r) for p, r in zip(preds, refs)])
        rows.append({"bias": bias, "p": prf["ents_p"], "r": prf["ents_r"], "f": prf["ents_f"]})
    best = choose(rows)
    return {"model": str(model), "dev": str(dev), "component": component, "previous": ner.outside_bias,
            "chosen": best["bias"], "dev_f": best["f"], "dev_f_at_0": next(r["f"] for r in rows if r["bias"] == 0.0),
            "grid": rows}


def write_bias(model: Path, component: str, bias: float) -> None:
    path = model / "config.cfg"
    cfg = Config().from_disk(path, interpolate=False)
    cfg["components"][component]["outside_bias"] = bias
    cfg.to_disk(path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a saved pipeline (e.g. training/wnut17-default/model-best)")
    parser.add_argument("dev", type=Path, help="the dev DocBin (e.g. corpus/wnut17/dev.spacy)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the grid and the choice")
    parser.add_argument("--write", action="store_true", help="store the chosen bias in MODEL/config.cfg")
    parser.add_argument("--grid", type=float, nargs=3, default=list(GRID), metavar=("LO", "HI", "STEP"))
    parser.add_argument("--component", default=None, help="the component's name (default: the first twitter_bilstm_ner)")
    args = parser.parse_args(argv)
    for path, what in ((args.model / "config.cfg", "MODEL"), (args.dev, "DEV")):
        if not path.exists():
            parser.error(f"{what}: {path} does not exist")
    try:
        grid = bias_grid(*args.grid)
    except ValueError as err:
        parser.error(str(err))
    result = tune(args.model, args.dev, grid, args.component)
    msg.table([(r["bias"], f"{100 * r['p']:.1f}", f"{100 * r['r']:.1f}", f"{100 * r['f']:.1f}") for r in result["grid"]],
              header=("outside_bias", "dev P", "dev R", "dev F"), divider=True)
    msg.good(f"outside_bias {result['chosen']}: dev F1 {100 * result['dev_f']:.1f} "
             f"(at 0: {100 * result['dev_f_at_0']:.1f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(args.out, result)
        msg.good(f"Wrote {args.out}")
    if args.write:
        write_bias(args.model, result["component"], result["chosen"])
        msg.good(f"Wrote outside_bias = {result['chosen']} to {args.model / 'config.cfg'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

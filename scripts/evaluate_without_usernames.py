"""Score a pipeline on a split without its user-name entities (WNUT17's test quirk).

    python scripts/evaluate_without_usernames.py MODEL corpus/wnut17/test.spacy --output metrics/wnut17-default-test-nousernames.json

WNUT17's test set splits mentions into two tokens (`@`, `Calfreezy`) and tags 179 user names as
entities, while its train set keeps mentions whole and almost never tags them. This scores the
model like `spacy evaluate --gold-preproc`, but first removes every gold entity that is a user
name (its text starts with `@`, or the token before it is `@`) and every predicted entity that
overlaps one, so those tokens neither count for nor against the model. Both the full and the
reduced scores are written, with the number of entities removed.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Set, Tuple

import spacy
import srsly
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example


def username_tokens(doc: Doc) -> Set[int]:
    """Token indices of the gold user-name entities."""
    out: Set[int] = set()
    for ent in doc.ents:
        before = doc[ent.start - 1].text if ent.start > 0 else ""
        if ent.text.startswith("@") or before == "@":
            out.update(range(ent.start, ent.end))
    return out


def without(doc: Doc, tokens: Set[int]) -> Tuple[Doc, int]:
    """A copy of ``doc`` whose entities touching ``tokens`` are removed; and how many were."""
    kept: List[Span] = [e for e in doc.ents if not tokens.intersection(range(e.start, e.end))]
    copy = doc.copy()
    copy.set_ents(kept, default="outside")
    return copy, len(doc.ents) - len(kept)


def evaluate(model: Path, data: Path) -> dict:
    nlp = spacy.load(model)
    gold = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    inputs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in gold]
    predicted = list(nlp.pipe(inputs))
    full, reduced = [], []
    removed_gold = removed_pred = 0
    for pred, ref in zip(predicted, gold):
        full.append(Example(pred, ref))
        tokens = username_tokens(ref)
        ref2, n_gold = without(ref, tokens)
        pred2, n_pred = without(pred, tokens)
        removed_gold += n_gold
        removed_pred += n_pred
        reduced.append(Example(pred2, ref2))
    score = lambda exs: {k: v for k, v in Scorer.score_spans(exs, "ents").items()}  # noqa: E731
    return {
        "model": str(model), "data": str(data), "docs": len(gold),
        "all_entities": score(full),
        "without_usernames": score(reduced),
        "removed_gold_entities": removed_gold,
        "removed_predicted_entities": removed_pred,
        "gold_entities": sum(len(d.ents) for d in gold),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in (args.model, args.data):
        if not path.exists():
            print(f"evaluate_without_usernames: {path} does not exist", file=sys.stderr)
            return 1
    result = evaluate(args.model, args.data)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(args.output, result)
    a, b = result["all_entities"]["ents_f"], result["without_usernames"]["ents_f"]
    print(f"{args.data}: F1 {100 * a:.1f} with all {result['gold_entities']} entities, {100 * b:.1f} without the "
          f"{result['removed_gold_entities']} user-name entities -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

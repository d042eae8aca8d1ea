"""Entity recall split by static-vector coverage: where does a student lose to its teacher?

    python scripts/recall_by_vectors.py CORPUS MODEL [MODEL ...] [--split test] [--vectors MODEL]
        [--output metrics/<corpus>-<split>-recall-by-vectors.json]

Each gold entity of corpus/<corpus>/<split>.spacy falls in one of two groups: every token of it
has a row in the static vectors of ``--vectors`` (default: the first MODEL; looked up as
``StaticVectors.v1`` does, by the lower-cased normalised word), or some token has none. Each
MODEL tags the gold tokens (as `spacy evaluate --gold-preproc`), and an entity counts as found
when the model predicts exactly its span and type (spaCy's scorer's rule), so the recall over
both groups together is spaCy's ``ents_r``.
"""
import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from wasabi import msg

from spacy_twitter_ner.models.knowledge.static_vectors import vector_row

GROUPS = ("all_tokens_have_vectors", "some_token_without_vector")


def vector_lookup(nlp: Language, lower: bool = True) -> Callable[[str], bool]:
    """Whether a token text has a row in ``nlp``'s static vectors (StaticVectors.v1's key)."""
    vectors = nlp.vocab.vectors

    def has_vector(text: str) -> bool:
        return vector_row(vectors, text, lower) >= 0

    return has_vector


def recall_by_coverage(nlp: Language, gold: Iterable[Doc], has_vector: Callable[[str], bool]) -> Dict[str, Dict]:
    """Per group: the number of gold entities, how many ``nlp`` found exactly, and the recall."""
    gold = list(gold)
    inputs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in gold]
    counts = {g: [0, 0] for g in GROUPS}
    for ref, pred in zip(gold, nlp.pipe(inputs, batch_size=64)):
        found = {(e.start, e.end, e.label_) for e in pred.ents}
        for ent in ref.ents:
            group = GROUPS[0] if all(has_vector(t.text) for t in ent) else GROUPS[1]
            counts[group][0] += 1
            counts[group][1] += (ent.start, ent.end, ent.label_) in found
    return {g: {"entities": n, "found": k, "recall": k / n if n else None} for g, (n, k) in counts.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--vectors", type=Path, default=None, help="pipeline whose static vectors define coverage")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    data = Path("corpus") / args.corpus / f"{args.split}.spacy"
    for path in [data, *args.models, *([args.vectors] if args.vectors else [])]:
        if not path.exists():
            parser.error(f"{path} does not exist")
    reference = spacy.load(args.vectors or args.models[0])
    if not len(reference.vocab.vectors):
        parser.error(f"{args.vectors or args.models[0]} has no static vectors: pass --vectors")
    has_vector = vector_lookup(reference)
    result = {"corpus": args.corpus, "split": args.split, "vectors": str(args.vectors or args.models[0]), "models": {}}
    for model in args.models:
        nlp = reference if model == (args.vectors or args.models[0]) else spacy.load(model)
        gold = DocBin().from_disk(data).get_docs(nlp.vocab)
        result["models"][str(model)] = groups = recall_by_coverage(nlp, gold, has_vector)
        for name, g in groups.items():
            msg.info(f"{model}: {name}: {g['found']}/{g['entities']} found, recall {g['recall']:.3f}")
    output = args.output or Path("metrics") / f"{args.corpus}-{args.split}-recall-by-vectors.json"
    srsly.write_json(output, result)
    msg.good(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

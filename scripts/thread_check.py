"""Call ``nlp(text)`` from many threads at once and count the docs whose entities differ from
sequential calls (the thread-safety check the serving issue asks for, on a real model).

    python scripts/thread_check.py training/wnut16-fast/model-best --texts assets/raw_tweets/tweets.txt --n 400 --threads 8
"""
import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import spacy


def entities(doc):
    return [(e.start_char, e.end_char, e.label_, e._.score) for e in doc.ents]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--texts", type=Path, required=True, help="one tweet per line")
    parser.add_argument("--n", type=int, default=400, help="tweets to use (the first N non-empty lines)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="times the threaded pass is repeated")
    parser.add_argument("--output", type=Path, default=None, help="JSON summary")
    args = parser.parse_args(argv)
    nlp = spacy.load(args.model)
    texts = [line for line in args.texts.read_text(encoding="utf8").splitlines() if line.strip()][: args.n]
    sequential = [entities(nlp(text)) for text in texts]
    differing = 0
    for _ in range(args.rounds):
        with ThreadPoolExecutor(max_workers=args.threads) as pool:
            threaded = list(pool.map(lambda t: entities(nlp(t)), texts))
        differing += sum(a != b for a, b in zip(sequential, threaded))
    summary = {"model": str(args.model), "texts": len(texts), "threads": args.threads, "rounds": args.rounds,
               "docs_compared": len(texts) * args.rounds, "differing_docs": differing,
               "entities": sum(len(e) for e in sequential)}
    print(json.dumps(summary))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf8")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())

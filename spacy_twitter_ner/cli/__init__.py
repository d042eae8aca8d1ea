"""The ``spacy-twitter-ner`` command: one entry point, a subcommand per job.

    spacy-twitter-ner [tag] MODEL [INPUT] ...          tweets -> JSON Lines (cli/tag.py)
    spacy-twitter-ner serve MODEL [--port 8000]        HTTP service (cli/serve.py)
    spacy-twitter-ner annotate MODEL INPUT... -o DIR   many files on Dask (cli/annotate.py)
    spacy-twitter-ner ensemble OUT MEMBER...           seed ensembles (cli/ensemble.py)

``tag`` is the default, so ``spacy-twitter-ner MODEL INPUT`` keeps working. Each subcommand's
module is imported only when it runs (serving needs FastAPI, annotating needs Dask).
"""
import importlib
import sys
from typing import Optional, Sequence

from ..runtime import bound_onednn_cache

SUBCOMMANDS = {
    "tag": "spacy_twitter_ner.cli.tag",
    "serve": "spacy_twitter_ner.cli.serve",
    "annotate": "spacy_twitter_ner.cli.annotate",
    "ensemble": "spacy_twitter_ner.cli.ensemble",
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Dispatch to a subcommand's ``main(argv)``; without one, ``tag``."""
    bound_onednn_cache()  # before anything imports a model (see runtime.ONEDNN_CACHE)
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args and args[0] in SUBCOMMANDS else "tag"
    if args and args[0] == name:
        args = args[1:]
    return importlib.import_module(SUBCOMMANDS[name]).main(args)

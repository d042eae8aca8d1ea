"""``python -m spacy_twitter_ner MODEL [INPUT] ...``: see :mod:`spacy_twitter_ner.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

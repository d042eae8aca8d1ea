"""spacy-twitter-ner: named entity recognition on tweets, the spaCy way."""
__version__ = "0.1.0"

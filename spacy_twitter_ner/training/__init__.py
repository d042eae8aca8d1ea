"""Training helpers registered for ``spacy train``: schedules, callbacks, the curve logger."""

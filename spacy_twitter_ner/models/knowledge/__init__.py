"""Knowledge sources for ``TokenFeatures.v1``: each a thinc model giving one row per token (its
width in ``nO``). All are frozen (never updated in training) except ``FineTunedTransformer.v1``,
whose layer is marked ``attrs["trainable"]`` and receives its columns of the gradient."""

# A source whose rows are 0/1 flags, mostly zeros (gazetteer flags, one-hots), says so with
# ``attrs[BINARY_ROWS] = True``: the featurizer then projects them sparsely at prediction.
BINARY_ROWS = "binary"
# A source whose rows are a lookup of the token's string (static vectors, Brown clusters) says so
# with ``attrs[WORD_ROWS] = True``: ``TokenFeatures.v1(word_dropout_knowledge=true)`` then blanks
# them for the tokens word dropout hides, as for a word no table knows.
WORD_ROWS = "word_rows"

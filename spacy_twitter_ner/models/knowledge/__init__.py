"""Knowledge sources for ``TokenFeatures.v1``: each a thinc model giving one row per token (its
width in ``nO``). All are frozen (never updated in training) except ``FineTunedTransformer.v1``,
whose layer is marked ``attrs["trainable"]`` and receives its columns of the gradient."""

# A source whose rows are 0/1 flags, mostly zeros (gazetteer flags, one-hots), says so with
# ``attrs[BINARY_ROWS] = True``: the featurizer then projects them sparsely at prediction.
BINARY_ROWS = "binary"

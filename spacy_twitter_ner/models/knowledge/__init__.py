"""Knowledge sources for ``TokenFeatures.v1``: each a thinc model giving one row per token (its
width in ``nO``). All are frozen (never updated in training) except ``FineTunedTransformer.v1``,
whose layer is marked ``attrs["trainable"]`` and receives its columns of the gradient."""

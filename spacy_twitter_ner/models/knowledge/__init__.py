"""Frozen knowledge sources for ``TokenFeatures.v1``: each a thinc model giving one row per token
(its width in ``nO``), never updated in training."""

"""Baselines the benchmark compares against (the classical CRF)."""

"""Embedding spaces: what each space is (models, dimension, metric, index, calibration)."""

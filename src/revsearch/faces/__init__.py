"""Faces: detection, alignment, embedding, the model files they load, the whole-image baseline."""

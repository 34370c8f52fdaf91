"""The bundled `classification` metric; `evaluate.load` reads `classification.py` in this folder."""

from .classification import Classification

__all__ = ["Classification"]

"""The bundled `seqeval` metric; `evaluate.load` reads `seqeval.py` in this folder."""

from .seqeval import Seqeval

__all__ = ["Seqeval"]

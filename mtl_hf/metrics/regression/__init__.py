"""The bundled `regression` metric; `evaluate.load` reads `regression.py` in this folder."""

from .regression import Regression

__all__ = ["Regression"]

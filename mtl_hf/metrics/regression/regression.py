"""Regression metric: Pearson and Spearman correlation (scipy) plus mean squared error.

A self-contained `evaluate` module: it imports only libraries, so `evaluate.load(<this file or its folder>)` works
offline, and `Regression()` can be instantiated directly.

It imports `evaluate` as a module on purpose: `evaluate.load` instantiates the first non-abstract
`EvaluationModule` subclass in this file's namespace, which after `from evaluate import Metric` would be `Metric`.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy import stats

_DESCRIPTION = """
Scores for real-valued predictions such as STS-B similarity.

- `pearson`: Pearson's linear correlation coefficient (`scipy.stats.pearsonr`).
- `spearman`: Spearman's rank correlation (`scipy.stats.spearmanr`); ties get the average of their ranks.
- `mse`: mean squared error.

A correlation is undefined (NaN, with scipy's `ConstantInputWarning`) when either input is constant.
"""

_CITATION = """
@article{2020SciPy-NMeth,
  author  = {Virtanen, Pauli and Gommers, Ralf and Oliphant, Travis E. and others},
  title   = {{SciPy} 1.0: Fundamental Algorithms for Scientific Computing in Python},
  journal = {Nature Methods},
  year    = {2020},
  volume  = {17},
  pages   = {261--272},
  doi     = {10.1038/s41592-019-0686-2},
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[float]`): predicted values.
    references (`list[float]`): gold values.

Returns:
    pearson (`float`): in [-1, 1].
    spearman (`float`): in [-1, 1].
    mse (`float`): >= 0.

Examples:
    >>> metric = evaluate.load("mtl_hf/metrics/regression")
    >>> metric.compute(predictions=[1.0, 2.0, 3.0], references=[3.0, 5.0, 7.0])
    {'pearson': 1.0, 'spearman': 1.0, 'mse': 9.666...}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Regression(evaluate.Metric):
    """Pearson, Spearman and MSE for real-valued predictions."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
            reference_urls=[
                "https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.pearsonr.html",
                "https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.spearmanr.html",
            ],
        )

    def _compute(self, predictions: list[float], references: list[float]) -> dict[str, float]:
        predictions = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references, dtype=np.float64)
        if predictions.size < 2:
            raise ValueError(f"Regression metric: correlations need at least 2 examples, got {predictions.size}.")
        return {
            "pearson": float(stats.pearsonr(predictions, references).statistic),
            "spearman": float(stats.spearmanr(predictions, references).statistic),
            "mse": float(np.mean((predictions - references) ** 2)),
        }

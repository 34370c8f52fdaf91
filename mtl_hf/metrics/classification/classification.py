"""Classification metric: accuracy plus macro and weighted F1 over integer class ids (numpy only).

A self-contained `evaluate` module: it imports only libraries, so `evaluate.load(<this file or its folder>)` works
offline, and `Classification()` can be instantiated directly.

It imports `evaluate` as a module on purpose: `evaluate.load` instantiates the first non-abstract
`EvaluationModule` subclass in this file's namespace, which after `from evaluate import Metric` would be `Metric`.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Accuracy and F1 for single-label classification over integer class ids.

- `accuracy`: the fraction of predictions equal to their reference.
- `f1_macro`: the unweighted mean of per-class F1, over the classes that occur in the predictions or the references
  (scikit-learn's `f1_score(average="macro")`). A class that is only ever predicted has F1 0.
- `f1_weighted`: per-class F1 weighted by each class's number of references (scikit-learn's `average="weighted"`).

Micro-averaged F1 equals accuracy for single-label data, so it is not reported separately.
Per-class F1 is `2 TP / (2 TP + FP + FN)`.
"""

_CITATION = """
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and Varoquaux, G. and Gramfort, A. and Michel, V. and Thirion, B. and Grisel, O. and
          Blondel, M. and Prettenhofer, P. and Weiss, R. and Dubourg, V. and Vanderplas, J. and Passos, A. and
          Cournapeau, D. and Brucher, M. and Perrot, M. and Duchesnay, E.},
  journal={Journal of Machine Learning Research},
  volume={12},
  pages={2825--2830},
  year={2011}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): gold class ids.

Returns:
    accuracy (`float`): fraction of correct predictions, in [0, 1].
    f1_macro (`float`): mean per-class F1 over the classes seen in `predictions` or `references`, in [0, 1].
    f1_weighted (`float`): per-class F1 weighted by reference counts, in [0, 1].

Examples:
    >>> metric = evaluate.load("mtl_hf/metrics/classification")
    >>> metric.compute(predictions=[0, 1, 1, 2], references=[0, 0, 1, 2])
    {'accuracy': 0.75, 'f1_macro': 0.777..., 'f1_weighted': 0.75}
"""


def per_class_f1(predictions: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 and reference counts, over the classes present in either array."""
    classes = np.union1d(predictions, references)
    predicted = predictions[:, None] == classes
    gold = references[:, None] == classes
    true_pos = (predicted & gold).sum(axis=0)
    support = gold.sum(axis=0)
    # 2TP + FP + FN = (#predicted) + (#gold) > 0 for every class in the union.
    f1 = 2 * true_pos / (predicted.sum(axis=0) + support)
    return f1, support


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    """Accuracy, macro F1 and weighted F1 for single-label classification."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions: list[int], references: list[int]) -> dict[str, float]:
        predictions, references = np.asarray(predictions), np.asarray(references)
        if predictions.size == 0:
            raise ValueError("Classification metric: got no predictions.")
        f1, support = per_class_f1(predictions, references)
        return {
            "accuracy": float(np.mean(predictions == references)),
            "f1_macro": float(np.mean(f1)),
            "f1_weighted": float(np.sum(f1 * support) / np.sum(support)),
        }

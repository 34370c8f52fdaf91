"""Per-task evaluation metrics as `evaluate` modules that work offline, plus the glue the Trainer calls.

The bundled modules (`classification`, `seqeval`, `regression`) each live in their own folder as `<name>/<name>.py`,
so `evaluate.load("<folder>")` and `load_metric("<name>")` work without the Hub, and the classes can be used directly.
"""

from .classification import Classification
from .loading import BUNDLED_METRICS, METRIC_ALIASES, bundled_metric_path, is_bundled_metric, load_metric
from .regression import Regression
from .seqeval import Seqeval
from .task_metrics import (
    DEFAULT_METRICS,
    PRIMARY_METRICS,
    average_score,
    compute_task_metrics,
    default_metric_names,
    make_compute_metrics,
    prepare_metric_inputs,
    primary_metric,
    resolve_metrics,
)

__all__ = [
    "BUNDLED_METRICS",
    "DEFAULT_METRICS",
    "METRIC_ALIASES",
    "PRIMARY_METRICS",
    "Classification",
    "Regression",
    "Seqeval",
    "average_score",
    "bundled_metric_path",
    "compute_task_metrics",
    "default_metric_names",
    "is_bundled_metric",
    "load_metric",
    "make_compute_metrics",
    "prepare_metric_inputs",
    "primary_metric",
    "resolve_metrics",
]

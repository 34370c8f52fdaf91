"""Per-task metrics for the Trainer: turn one task's raw logits into metric inputs and score them.

The Trainer hands `compute_metrics` a single concatenation of every evaluation batch, padded with -100 where
shapes differ, so metrics are computed per task (one `eval_dataset` per task, keys `eval_<task>_<metric>`).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import evaluate
import numpy as np
from transformers import EvalPrediction

from ..modeling.configuration_mtl import TASK_TYPES
from ..modeling.heads import IGNORE_INDEX
from .loading import load_metric

MetricSpec = str | evaluate.EvaluationModule

DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("classification",),
    "token_classification": ("seqeval",),
    "regression": ("regression",),
}
PRIMARY_METRICS = {"classification": "accuracy", "token_classification": "f1", "regression": "spearman"}
# Without task types, `average_score` takes the first of these that a task reports. With the bundled metrics this
# gives PRIMARY_METRICS: only regression reports `spearman`, and classification reports no bare `f1`.
_PRIMARY_SEARCH_ORDER = ("spearman", "f1", "accuracy")


def default_metric_names(task_type: str) -> list[str]:
    """Names of the metrics computed for a task of type `task_type` when none are given."""
    return list(DEFAULT_METRICS[_check_task_type(task_type)])


def primary_metric(task_type: str) -> str:
    """The metric key that ranks models on a task of type `task_type` (used by `average_score`)."""
    return PRIMARY_METRICS[_check_task_type(task_type)]


def resolve_metrics(
    task: Mapping[str, Any], metrics: MetricSpec | Sequence[MetricSpec] | None = None
) -> list[evaluate.EvaluationModule]:
    """Load the metric modules for `task`: its type's defaults, or `metrics` (names, paths or loaded modules)."""
    if metrics is None:
        metrics = default_metric_names(_task_type(task))
    elif isinstance(metrics, (str, evaluate.EvaluationModule)):
        metrics = [metrics]
    return [load_metric(m) if isinstance(m, str) else m for m in metrics]


def prepare_metric_inputs(task: Mapping[str, Any], predictions: Any, label_ids: Any) -> tuple[list, list]:
    """Turn the Trainer's raw outputs for one task into `(predictions, references)` lists for its metrics.

    Args:
        task (`dict`): the task spec; `type` picks the conversion, `labels` names the tags of a token task.
        predictions: logits as in `EvalPrediction.predictions`: `(N, C)` for classification, `(N,)` or `(N, 1)`
            for regression, `(N, L, C)` for token classification. Class ids (`(N,)`, `(N, L)`) from a
            `preprocess_logits_for_metrics` are accepted too. A tuple means several model outputs: the first is
            used. A list means one array per batch (`eval_do_concat_batches=False`).
        label_ids: gold labels, `(N,)` or `(N, L)`; -100 marks ignored rows or tokens.

    Returns:
        Class ids (classification), floats (regression) or one list of tag names per sentence (token
        classification; only the positions whose label is not -100, so the Trainer's -100 padding drops out).
    """
    task_type = _task_type(task)
    if isinstance(predictions, list):
        pairs = [prepare_metric_inputs(task, p, y) for p, y in zip(predictions, label_ids, strict=True)]
        return [x for preds, _ in pairs for x in preds], [x for _, refs in pairs for x in refs]
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predictions, label_ids = np.asarray(predictions), np.asarray(label_ids)
    if task_type == "token_classification":
        return _token_inputs(task, predictions, label_ids)
    if task_type == "regression":
        return _regression_inputs(task, predictions, label_ids)
    return _classification_inputs(task, predictions, label_ids)


def compute_task_metrics(
    task: Mapping[str, Any],
    predictions: Any,
    label_ids: Any,
    metrics: MetricSpec | Sequence[MetricSpec] | None = None,
) -> dict[str, float]:
    """Score one task's raw predictions with its metrics.

    Args:
        task (`dict`): the task spec `{"name", "type", "labels", ...}`.
        predictions, label_ids: as in `EvalPrediction` (see `prepare_metric_inputs`).
        metrics (*optional*): metric names, paths or loaded `evaluate` modules; defaults to
            `default_metric_names(task["type"])`.

    Returns:
        Plain metric keys to floats, e.g. `{"accuracy", "f1_macro", "f1_weighted"}` for classification,
        `{"precision", "recall", "f1", "accuracy"}` for token classification, `{"pearson", "spearman", "mse"}` for
        regression. Nested results are flattened (`{"PER": {"f1": x}}` -> `PER_f1`); non-scalar values are dropped.
    """
    preds, refs = prepare_metric_inputs(task, predictions, label_ids)
    if not refs:
        raise ValueError(f"Task {task.get('name')!r}: no examples to score (every label is {IGNORE_INDEX}).")
    results: dict[str, float] = {}
    for module in resolve_metrics(task, metrics):
        results.update(_to_floats(module.compute(predictions=preds, references=refs)))
    return results


def make_compute_metrics(
    task: Mapping[str, Any], metrics: MetricSpec | Sequence[MetricSpec] | None = None
) -> Callable[[EvalPrediction], dict[str, float]]:
    """A `compute_metrics` for `Trainer` that scores one task's evaluation set; the metrics are loaded once."""
    task = dict(task)
    modules = resolve_metrics(task, metrics)

    def compute_metrics(eval_pred: EvalPrediction) -> dict[str, float]:
        return compute_task_metrics(task, eval_pred.predictions, eval_pred.label_ids, metrics=modules)

    return compute_metrics


def average_score(
    per_task: Mapping[str, Mapping[str, float]], tasks: Iterable[Mapping[str, Any]] | None = None
) -> float:
    """Mean over tasks of each task's primary metric (the `eval_average` used as `metric_for_best_model`).

    Args:
        per_task (`dict[str, dict[str, float]]`): task name to that task's metrics, with plain keys (`accuracy`) or
            the Trainer's prefixed keys (`eval_<task>_accuracy`).
        tasks (*optional*): task specs; each task's `type` then fixes its primary metric. Without them the primary
            metric is the first of `spearman`, `f1`, `accuracy` that the task reports, which matches
            `primary_metric` for the default metrics.
    """
    if not per_task:
        raise ValueError("`per_task` is empty: there are no task metrics to average.")
    types = None if tasks is None else {spec["name"]: _task_type(spec) for spec in tasks}
    scores = [_primary_score(name, metrics, types) for name, metrics in per_task.items()]
    return float(np.mean(scores))


def _primary_score(name: str, metrics: Mapping[str, float], types: Mapping[str, str] | None) -> float:
    if types is not None and name not in types:
        raise ValueError(f"Task {name!r} has metrics but no task spec. Known tasks: {sorted(types)}.")
    # The task type's primary metric first; with custom `metrics`, the first of spearman / f1 / accuracy it reports.
    candidates = (
        _PRIMARY_SEARCH_ORDER
        if types is None
        else tuple(dict.fromkeys((primary_metric(types[name]), *_PRIMARY_SEARCH_ORDER)))
    )
    for metric in candidates:
        for key in (metric, f"eval_{name}_{metric}"):
            if key in metrics:
                return float(metrics[key])
    raise ValueError(
        f"Task {name!r}: none of the primary metrics {list(candidates)} is among its metrics {sorted(metrics)}."
    )


def _check_task_type(task_type: str) -> str:
    if task_type not in TASK_TYPES:
        raise ValueError(f"Unknown task type {task_type!r}. Valid task types are: {TASK_TYPES}.")
    return task_type


def _task_type(task: Mapping[str, Any]) -> str:
    return _check_task_type(task.get("type", "classification"))


def _classification_inputs(
    task: Mapping[str, Any], logits: np.ndarray, label_ids: np.ndarray
) -> tuple[list[int], list[int]]:
    if logits.ndim not in (1, 2):
        raise ValueError(f"Task {task.get('name')!r}: classification logits must be (N, C), got {logits.shape}.")
    preds = logits.argmax(-1) if logits.ndim == 2 else logits
    labels = label_ids.reshape(-1)
    _check_same_shape(task, preds, labels)
    keep = labels != IGNORE_INDEX
    return preds[keep].astype(np.int64).tolist(), labels[keep].astype(np.int64).tolist()


def _regression_inputs(
    task: Mapping[str, Any], logits: np.ndarray, label_ids: np.ndarray
) -> tuple[list[float], list[float]]:
    if logits.ndim > 2 or (logits.ndim == 2 and logits.shape[1] != 1):
        raise ValueError(
            f"Task {task.get('name')!r}: regression predictions must be (N,) or (N, 1), got {logits.shape}."
        )
    preds, labels = logits.reshape(-1), label_ids.reshape(-1)
    _check_same_shape(task, preds, labels)
    return preds.astype(np.float64).tolist(), labels.astype(np.float64).tolist()


def _token_inputs(
    task: Mapping[str, Any], logits: np.ndarray, label_ids: np.ndarray
) -> tuple[list[list[str]], list[list[str]]]:
    tags = np.asarray(task["labels"], dtype=object)
    if logits.ndim == 3 and logits.shape[-1] != len(tags):
        raise ValueError(
            f"Task {task.get('name')!r}: logits have {logits.shape[-1]} classes but the task has {len(tags)} labels."
        )
    preds = logits.argmax(-1) if logits.ndim == 3 else logits
    if preds.ndim != 2:
        raise ValueError(f"Task {task.get('name')!r}: token logits must be (N, L, C), got {logits.shape}.")
    _check_same_shape(task, preds, label_ids)
    keep = label_ids != IGNORE_INDEX
    _check_tag_ids(task, preds[keep], len(tags))
    _check_tag_ids(task, label_ids[keep], len(tags))
    pred_tags, gold_tags = [], []
    for pred_row, gold_row, keep_row in zip(preds, label_ids, keep):
        if keep_row.any():  # a sentence whose tokens are all ignored has nothing to score
            pred_tags.append(tags[pred_row[keep_row]].tolist())
            gold_tags.append(tags[gold_row[keep_row]].tolist())
    return pred_tags, gold_tags


def _check_same_shape(task: Mapping[str, Any], preds: np.ndarray, labels: np.ndarray) -> None:
    if preds.shape != labels.shape:
        raise ValueError(
            f"Task {task.get('name')!r}: predictions {preds.shape} and labels {labels.shape} do not line up."
        )


def _check_tag_ids(task: Mapping[str, Any], ids: np.ndarray, num_tags: int) -> None:
    if ids.size and (ids.min() < 0 or ids.max() >= num_tags):
        raise ValueError(
            f"Task {task.get('name')!r}: tag ids must be in [0, {num_tags}) (or {IGNORE_INDEX} to ignore), "
            f"got values in [{ids.min()}, {ids.max()}]."
        )


def _to_floats(results: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float]:
    """Flatten nested dicts and keep numeric scalars, as floats (the Trainer logs floats)."""
    flat: dict[str, float] = {}
    for key, value in (results or {}).items():
        if isinstance(value, Mapping):
            flat.update(_to_floats(value, f"{prefix}{key}_"))
        elif isinstance(value, (numbers.Number, np.number, np.bool_)):
            flat[f"{prefix}{key}"] = float(value)
    return flat


__all__ = [
    "DEFAULT_METRICS",
    "PRIMARY_METRICS",
    "average_score",
    "compute_task_metrics",
    "default_metric_names",
    "make_compute_metrics",
    "prepare_metric_inputs",
    "primary_metric",
    "resolve_metrics",
]

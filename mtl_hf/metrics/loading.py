"""Load metrics by name: the bundled modules work offline, anything else goes to the Hugging Face Hub."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import evaluate
from huggingface_hub import constants as hub_constants

METRICS_DIR = Path(__file__).resolve().parent
BUNDLED_METRICS = ("classification", "regression", "seqeval")
# Hub-style names that the bundled modules already compute (their keys differ: see each module's docstring).
METRIC_ALIASES = {
    "accuracy": "classification",
    "f1": "classification",
    "pearsonr": "regression",
    "spearmanr": "regression",
}


def is_bundled_metric(name: str) -> bool:
    """Whether `name` is a bundled metric or an alias of one."""
    return METRIC_ALIASES.get(name, name) in BUNDLED_METRICS


def bundled_metric_path(name: str) -> str:
    """Path of the module file of bundled metric `name` (or an alias), as `evaluate.load` accepts it."""
    canonical = METRIC_ALIASES.get(name, name)
    if canonical not in BUNDLED_METRICS:
        raise ValueError(f"{name!r} is not a bundled metric. Bundled metrics are: {_bundled_names()}.")
    return str(METRICS_DIR / canonical / f"{canonical}.py")


def load_metric(name_or_path: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load a metric as an `evaluate` module.

    Args:
        name_or_path (`str`):
            A bundled metric (`classification`, `regression`, `seqeval`) or alias (`accuracy`, `f1` ->
            `classification`; `pearsonr`, `spearmanr` -> `regression`), which loads from its local module file and
            works offline; else anything `evaluate.load` accepts: a local script or folder, or a Hub metric
            (`"evaluate-metric/seqeval"` reaches the Hub's version of a bundled name).
        kwargs:
            Passed to `evaluate.load`. `keep_in_memory` defaults to `True` when `num_process` is 1: the Trainer
            gathers predictions before `compute_metrics`, so no cache files (and their locks) are needed.

    Raises:
        `FileNotFoundError`: the metric is neither bundled, nor a local path, nor loadable from the Hub.
    """
    if kwargs.get("num_process", 1) == 1:
        kwargs.setdefault("keep_in_memory", True)
    if is_bundled_metric(name_or_path):
        return evaluate.load(bundled_metric_path(name_or_path), **kwargs)
    if os.path.exists(name_or_path):
        return evaluate.load(name_or_path, **kwargs)
    try:
        return evaluate.load(name_or_path, **kwargs)
    except OSError as err:  # FileNotFoundError, ConnectionError, huggingface_hub's OfflineModeIsEnabled
        raise FileNotFoundError(_not_found_message(name_or_path, err)) from err


def _bundled_names() -> str:
    aliases = ", ".join(f"{alias} -> {target}" for alias, target in METRIC_ALIASES.items())
    return f"{', '.join(BUNDLED_METRICS)} (aliases: {aliases})"


def _not_found_message(name: str, err: Exception) -> str:
    if hub_constants.HF_HUB_OFFLINE or evaluate.config.HF_EVALUATE_OFFLINE:
        reason = "the Hugging Face Hub is unreachable in offline mode (HF_HUB_OFFLINE / HF_EVALUATE_OFFLINE is set)"
    else:
        reason = "the Hugging Face Hub is unreachable or has no such metric"
    return (
        f"Cannot load metric {name!r}: it is not bundled with mtl_hf, not a local path, and {reason}. "
        f"Bundled metrics that work offline: {_bundled_names()}. Original error: {err}"
    )


__all__ = ["BUNDLED_METRICS", "METRIC_ALIASES", "bundled_metric_path", "is_bundled_metric", "load_metric"]

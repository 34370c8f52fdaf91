"""Data pipeline: task settings, loading and checks, tokenisation, collation and multi-task batch sampling."""

from .collator import MultiTaskDataCollator
from .loading import label_namer, load_task_splits, read_conll, read_label_text, resolve_format
from .preprocessing import MultiTaskDatasets, align_tags, build_datasets, preprocess_task
from .sampler import MultiTaskBatchSampler, TaskSamplingStrategy, padding_waste
from .tasks import FORMATS, SPLIT_ROLES, TaskDataConfig, parse_task_configs

__all__ = [
    "FORMATS",
    "SPLIT_ROLES",
    "MultiTaskBatchSampler",
    "MultiTaskDataCollator",
    "MultiTaskDatasets",
    "TaskDataConfig",
    "TaskSamplingStrategy",
    "align_tags",
    "build_datasets",
    "label_namer",
    "load_task_splits",
    "padding_waste",
    "parse_task_configs",
    "preprocess_task",
    "read_conll",
    "read_label_text",
    "resolve_format",
]

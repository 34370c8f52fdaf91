"""Tokenise each task's splits into the columns `MultiTaskModel.forward` takes, and build all tasks at once."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset, DatasetDict
from transformers import PreTrainedTokenizerBase

from ..modeling.heads import IGNORE_INDEX
from .loading import label_namer, load_task_splits
from .tasks import TaskDataConfig, parse_task_configs

#: The columns a preprocessed split holds (`token_type_ids` only when the tokenizer returns them).
MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels", "task_ids")


@dataclass
class MultiTaskDatasets:
    """Tokenised datasets per role, each a `{task name: Dataset}` dict in task order (tasks lacking a role are
    absent from that role's dict)."""

    train: dict[str, Dataset] = field(default_factory=dict)
    validation: dict[str, Dataset] = field(default_factory=dict)
    test: dict[str, Dataset] = field(default_factory=dict)


def preprocess_task(
    task: TaskDataConfig,
    splits: DatasetDict,
    tokenizer: PreTrainedTokenizerBase,
    task_id: int,
    max_length: int | None = None,
) -> DatasetDict:
    """Tokenise the splits of one task (from `load_task_splits`).

    Each split keeps exactly `input_ids`, `attention_mask` (`token_type_ids` if the tokenizer gives them),
    `labels` and `task_ids`; the raw columns are dropped (STYLE.md P1). `labels` is the class id, the float
    target, or (token tasks) one tag id per sub-token: -100 for special tokens and, unless
    `task.label_all_subtokens`, for every sub-token after a word's first.
    """
    if task.type != "regression" and task.labels is None:
        raise ValueError(f"Task {task.name!r}: `labels` are unknown; run `load_task_splits(task)` first.")
    processed = {}
    for role, dataset in splits.items():
        encode = _encoder(task, tokenizer, task_id, max_length, label_namer(task, dataset))
        processed[role] = dataset.map(
            encode,
            batched=True,
            remove_columns=dataset.column_names,
            desc=f"Tokenizing {task.name}/{role}",
        )
    return DatasetDict(processed)


def build_datasets(
    tasks: list[TaskDataConfig | dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    max_length: int | None = None,
    main_process_first: Callable[[], AbstractContextManager] | None = None,
    seed: int = 42,
) -> MultiTaskDatasets:
    """Load and tokenise every task; task ids follow the order of `tasks`.

    `main_process_first` is a context-manager factory such as the Trainer's `args.main_process_first` (or
    `accelerator.main_process_first`): under it, rank 0 loads and tokenises first and writes the `datasets`
    cache, and the other ranks then read it (STYLE.md P16). `seed` drives `max_*_samples` subsampling.
    """
    tasks = parse_task_configs(tasks)
    result = MultiTaskDatasets()
    for task_id, task in enumerate(tasks):
        with main_process_first() if main_process_first is not None else contextlib.nullcontext():
            splits = preprocess_task(task, load_task_splits(task, seed=seed), tokenizer, task_id, max_length)
        for role, dataset in splits.items():
            getattr(result, role)[task.name] = dataset
    return result


def _encoder(
    task: TaskDataConfig,
    tokenizer: PreTrainedTokenizerBase,
    task_id: int,
    max_length: int | None,
    namer: Callable[[Any], str | None],
) -> Callable[[dict[str, list]], dict[str, list]]:
    """The batched `map` function of one task."""
    label2id = {label: i for i, label in enumerate(task.labels or [])}
    inside = _inside_ids(task.labels or []) if task.label_all_subtokens else None

    def encode(batch: dict[str, list]) -> dict[str, list]:
        texts = [batch[column] for column in task.text_columns]
        encoded = tokenizer(*texts, truncation=True, max_length=max_length, is_split_into_words=task.is_token_task)
        out = {key: encoded[key] for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}
        raw_labels = batch[task.label_column]
        if task.type == "regression":
            out["labels"] = [float(value) for value in raw_labels]
        elif task.is_token_task:
            out["labels"] = [
                align_tags([label2id[namer(tag)] for tag in tags], encoded.word_ids(i), inside)
                for i, tags in enumerate(raw_labels)
            ]
        else:
            out["labels"] = [label2id[namer(value)] for value in raw_labels]
        out["task_ids"] = [task_id] * len(raw_labels)
        return out

    return encode


def align_tags(word_tags: list[int], word_ids: list[int | None], inside: dict[int, int] | None = None) -> list[int]:
    """One tag id per sub-token from one tag id per word.

    Special tokens (word id None) get -100. A word's first sub-token gets the word's tag; the others get -100,
    or, when `inside` is given (`label_all_subtokens`), `inside[tag]`: the I- tag of a B- tag.
    """
    aligned = []
    previous = None
    for word_id in word_ids:
        if word_id is None:
            aligned.append(IGNORE_INDEX)
        elif word_id != previous:
            aligned.append(word_tags[word_id])
        else:
            aligned.append(IGNORE_INDEX if inside is None else inside[word_tags[word_id]])
        previous = word_id
    return aligned


def _inside_ids(labels: list[str]) -> dict[int, int]:
    """Tag id -> the id continuation sub-tokens get: `I-X` for `B-X` when `I-X` exists, else the tag itself
    (as transformers' `run_ner.py` does)."""
    ids = {label: i for i, label in enumerate(labels)}
    return {i: ids.get("I-" + label[2:], i) if label.startswith("B-") else i for label, i in ids.items()}


__all__ = ["MODEL_COLUMNS", "MultiTaskDatasets", "align_tags", "build_datasets", "preprocess_task"]

"""Load a task's splits from local files (csv, tsv, json, parquet, CoNLL, label-first lines) or the Hub, and check
them before any training: every problem is raised here, naming the file or column and the fix."""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict
from transformers.utils import logging

from .tasks import EXTENSION_FORMATS, TaskDataConfig

logger = logging.get_logger(__name__)

#: Format -> `datasets` packaged builder.
BUILDER_FORMATS = {"csv": "csv", "tsv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}
CONLL_OPTIONS = ("delimiter", "encoding", "token_column", "tag_column", "column_names")
LABEL_TEXT_OPTIONS = ("separator", "label_transform", "encoding", "column_names")
LABEL_TRANSFORMS = ("coarse",)
MAX_SHOWN = 10


# ---------------------------------------------------------------------------------------------- line readers


def read_conll(
    paths: str | list[str],
    delimiter: str | None = None,
    encoding: str = "utf-8",
    token_column: int = 0,
    tag_column: int = -1,
    column_names: tuple[str, str] | list[str] = ("tokens", "tags"),
) -> Dataset:
    """Read CoNLL-style files (`token<TAB or space>tag`, blank line between sentences) into a `Dataset`.

    Lines holding only whitespace end a sentence; `-DOCSTART-` lines are skipped. `delimiter` None splits on
    any whitespace; with more than two fields the token and tag come from `token_column` / `tag_column`
    (CoNLL-2003's 4 columns work with the defaults). A line with fewer than 2 fields raises `ValueError`
    naming the file and its 1-based line number.
    """
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    for path in _as_list(paths):
        words: list[str] = []
        word_tags: list[str] = []
        with open(path, encoding=encoding) as handle:
            for line_number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.startswith("-DOCSTART-"):
                    if words:
                        tokens.append(words)
                        tags.append(word_tags)
                        words, word_tags = [], []
                    continue
                parts = line.split(delimiter)
                try:
                    token, tag = parts[token_column], parts[tag_column].strip()
                except IndexError:
                    token = tag = ""
                if len(parts) < 2 or not token or not tag:
                    raise ValueError(
                        f"{path}, line {line_number}: malformed CoNLL line {line!r}; expected `token<TAB>tag` "
                        f"(delimiter {'whitespace' if delimiter is None else repr(delimiter)}) or a blank line "
                        "between sentences. Fix the line or set `reader: {delimiter: ...}`."
                    )
                words.append(token)
                word_tags.append(tag)
        if words:
            tokens.append(words)
            tags.append(word_tags)
    token_name, tag_name = column_names
    return Dataset.from_dict({token_name: tokens, tag_name: tags})


def read_label_text(
    paths: str | list[str],
    separator: str = " ",
    label_transform: str | None = None,
    encoding: str = "utf-8",
    column_names: tuple[str, str] | list[str] = ("label", "text"),
) -> Dataset:
    """Read `LABEL<separator>text` lines (TREC's `NUM:dist How far is ...`) into a `Dataset` of label and text.

    The label is the part before the first `separator`. `label_transform: coarse` keeps only the part of the
    label before its first `:` (TREC's 6 coarse classes). Blank lines are skipped; a line without the
    separator raises `ValueError` naming the file and line.
    """
    if label_transform is not None and label_transform not in LABEL_TRANSFORMS:
        raise ValueError(f"`label_transform` must be one of {LABEL_TRANSFORMS} or None, got {label_transform!r}.")
    labels: list[str] = []
    texts: list[str] = []
    for path in _as_list(paths):
        with open(path, encoding=encoding) as handle:
            for line_number, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                label, sep, text = line.partition(separator)
                if not sep or not label:
                    raise ValueError(
                        f"{path}, line {line_number}: expected `LABEL{separator}text`, got {line!r}. "
                        "Fix the line or set `reader: {separator: ...}`."
                    )
                if label_transform == "coarse":
                    label = label.split(":", 1)[0]
                labels.append(label)
                texts.append(text.strip())
    label_name, text_name = column_names
    return Dataset.from_dict({label_name: labels, text_name: texts})


LINE_READERS: dict[str, tuple[Callable[..., Dataset], tuple[str, ...]]] = {
    "conll": (read_conll, CONLL_OPTIONS),
    "label_text": (read_label_text, LABEL_TEXT_OPTIONS),
}


# ---------------------------------------------------------------------------------------------- loading


def load_task_splits(task: TaskDataConfig, seed: int = 42) -> DatasetDict:
    """Load, check and (optionally) subsample a task's splits.

    Returns a `DatasetDict` keyed by role (`train`, `validation`, `test`; whichever exist) with the raw columns.
    Raises `FileNotFoundError` / `ValueError` for a missing file, a missing column, an empty split, labels
    outside `task.labels` and non-numeric regression targets. When `task.labels` is None for a classification
    or token task it is set here from the train split (sorted unique values, or a Hub `ClassLabel`'s names).
    """
    raw = _load_hub(task) if task.hub is not None else _load_files(task)
    splits = _select_roles(task, raw)
    for role, dataset in splits.items():
        _check_split(task, role, dataset)
    if task.type == "regression":
        for role, dataset in splits.items():
            _check_regression_labels(task, role, dataset)
    else:
        if task.labels is None:
            task.labels = _infer_labels(task, splits)
        for role, dataset in splits.items():
            _check_class_labels(task, role, dataset)
    return DatasetDict({role: _subsample(task, role, dataset, seed) for role, dataset in splits.items()})


def resolve_format(task: TaskDataConfig) -> str:
    """`task.format`, or the format every data file's extension implies."""
    if task.format is not None:
        return task.format
    files = [path for paths in (task.data_files or {}).values() for path in _as_list(paths)]
    formats = {EXTENSION_FORMATS.get(Path(path).suffix.lower()) for path in files}
    if len(formats) != 1 or None in formats:
        raise ValueError(
            f"Task {task.name!r}: cannot infer the file format from {files}; set `format` to one of "
            f"csv, tsv, json, jsonl, parquet, conll, label_text (known extensions: {sorted(EXTENSION_FORMATS)})."
        )
    return formats.pop()


def _load_files(task: TaskDataConfig) -> DatasetDict:
    data_files = dict(task.data_files or {})
    for split, paths in data_files.items():
        for path in _as_list(paths):
            if not (glob.glob(path) if glob.has_magic(path) else os.path.isfile(path)):
                raise FileNotFoundError(
                    f"Task {task.name!r}: data file for split {split!r} not found: {path}. Fix `data_files` "
                    "(relative paths are resolved against the folder of the YAML file)."
                )
    file_format = resolve_format(task)
    if file_format in LINE_READERS:
        reader, options = LINE_READERS[file_format]
        unknown = sorted(set(task.reader) - set(options))
        if unknown:
            raise ValueError(
                f"Task {task.name!r}: unknown `reader` options {unknown} for format {file_format!r}; "
                f"valid options: {list(options)}."
            )
        return DatasetDict({split: reader(_expand(paths), **task.reader) for split, paths in data_files.items()})
    kwargs = dict(task.reader)
    if file_format == "tsv" and "delimiter" not in kwargs and "sep" not in kwargs:
        kwargs["delimiter"] = "\t"
    try:
        return datasets.load_dataset(BUILDER_FORMATS[file_format], data_files=data_files, **kwargs)
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err
        raise ValueError(
            f"Task {task.name!r}: could not read {data_files} as {file_format}: {cause}. Check `format` and the "
            "`reader` options (delimiter, column_names, quoting, usecols, encoding)."
        ) from err
    except ValueError as err:  # `datasets` refuses to build a split without rows
        empty = re.search(r'Instruction "(.+)" corresponds to no data', str(err))
        if empty is None:
            raise
        raise ValueError(
            f"Task {task.name!r}, split {empty.group(1)!r} has no rows ({data_files[empty.group(1)]}); check the "
            "file and the `reader` options (header, delimiter)."
        ) from err


def _load_hub(task: TaskDataConfig) -> DatasetDict:
    hub = dict(task.hub or {})
    loaded = datasets.load_dataset(hub.pop("path"), hub.pop("name", None), **hub, **task.reader)
    if not isinstance(loaded, DatasetDict):
        raise ValueError(f"Task {task.name!r}: the Hub dataset {task.hub} did not return named splits.")
    return loaded


def _select_roles(task: TaskDataConfig, raw: DatasetDict) -> dict[str, Dataset]:
    splits: dict[str, Dataset] = {}
    for role, split in task.splits.items():
        if split is None:
            continue
        if split in raw:
            splits[role] = raw[split]
        elif split != role:  # only an explicitly renamed split must exist
            raise ValueError(
                f"Task {task.name!r}: split {split!r} (for role {role!r}) does not exist; the splits are "
                f"{list(raw)}. Fix `splits` or the keys of `data_files`."
            )
    if not splits:
        raise ValueError(
            f"Task {task.name!r}: none of the splits {list(raw)} plays a role train/validation/test. "
            "Name the `data_files` keys train/validation/test or map them with `splits: {validation: dev}`."
        )
    return splits


# ---------------------------------------------------------------------------------------------- checks


def _check_split(task: TaskDataConfig, role: str, dataset: Dataset) -> None:
    where = f"Task {task.name!r}, split {role!r}"
    if len(dataset) == 0:
        raise ValueError(f"{where} has no rows; check the file and the `reader` options (header, delimiter).")
    for column in [*task.text_columns, task.label_column]:
        if column not in dataset.column_names:
            which = "label_column" if column == task.label_column else "text_columns"
            raise ValueError(
                f"{where}: column {column!r} not found; the columns are {dataset.column_names}. Set `{which}` "
                "(or `reader: {column_names: [...]}` for files without a header)."
            )
    for column in task.text_columns:
        values = dataset[column]
        bad = [i for i, value in enumerate(values) if not _is_text(value, task.is_token_task)]
        if bad:
            expected = "a list of words" if task.is_token_task else "a string"
            raise ValueError(
                f"{where}: column {column!r} must hold {expected} in every row; rows {bad[:MAX_SHOWN]} "
                f"({len(bad)} in all) hold e.g. {values[bad[0]]!r}. Fix the data or `text_columns`."
            )
    if task.is_token_task:
        words, tags = dataset[task.text_columns[0]], dataset[task.label_column]
        bad = [i for i, (w, t) in enumerate(zip(words, tags)) if not isinstance(t, list) or len(w) != len(t)]
        if bad:
            raise ValueError(
                f"{where}: rows {bad[:MAX_SHOWN]} ({len(bad)} in all) do not have one tag in "
                f"{task.label_column!r} per word in {task.text_columns[0]!r}."
            )


def _is_text(value: Any, token_task: bool) -> bool:
    if token_task:
        return isinstance(value, list) and all(isinstance(word, str) for word in value)
    return isinstance(value, str)


def _check_regression_labels(task: TaskDataConfig, role: str, dataset: Dataset) -> None:
    values = dataset[task.label_column]
    bad = [value for value in values if not _is_number(value)]
    if bad:
        raise ValueError(
            f"Task {task.name!r}, split {role!r}: regression labels in {task.label_column!r} must be numbers; "
            f"found {len(bad)} that are not, e.g. {_show(bad)}. Fix the data, `label_column` or the `reader` "
            "options (a wrong delimiter shifts columns)."
        )


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def label_namer(task: TaskDataConfig, dataset: Dataset) -> Callable[[Any], str | None]:
    """A function from a raw label value to its label name (None when `label_map` has no entry for it).

    Applies `task.label_map`, else a `ClassLabel` feature's names (Hub datasets), else `str(value)`.
    """
    if task.label_map is not None:
        label_map = task.label_map
        return lambda value: label_map.get(str(value))
    feature = dataset.features[task.label_column]
    if task.is_token_task:
        feature = getattr(feature, "feature", None)
    if isinstance(feature, ClassLabel):
        names = feature.names
        return lambda value: names[value] if isinstance(value, int) and 0 <= value < len(names) else str(value)
    return str


def _raw_label_values(task: TaskDataConfig, dataset: Dataset) -> list[Any]:
    values = dataset[task.label_column]
    if task.is_token_task:
        return list(dict.fromkeys(tag for row in values for tag in row))
    return list(dict.fromkeys(values))


def _infer_labels(task: TaskDataConfig, splits: dict[str, Dataset]) -> list[str]:
    if "train" not in splits:
        raise ValueError(
            f"Task {task.name!r}: `labels` are not given and there is no train split to infer them from; "
            "list them in the task entry."
        )
    feature = splits["train"].features[task.label_column]
    feature = getattr(feature, "feature", None) if task.is_token_task else feature
    if task.label_map is None and isinstance(feature, ClassLabel):
        labels = list(feature.names)
    else:
        namer = label_namer(task, splits["train"])
        labels = sorted({name for name in map(namer, _raw_label_values(task, splits["train"])) if name is not None})
    if len(labels) < 2:
        raise ValueError(
            f"Task {task.name!r}: the train split has {len(labels)} distinct label(s) {labels}; a "
            f"{task.type} task needs at least 2. Check `label_column`."
        )
    logger.warning(
        f"Task {task.name!r}: `labels` not given; inferred {labels} from the train split. Put them in the task "
        "entry to pin the label ids."
    )
    return labels


def _check_class_labels(task: TaskDataConfig, role: str, dataset: Dataset) -> None:
    where = f"Task {task.name!r}, split {role!r}"
    raw_values = _raw_label_values(task, dataset)
    namer = label_namer(task, dataset)
    unmapped = [value for value in raw_values if namer(value) is None]
    if unmapped:
        raise ValueError(
            f"{where}: label values {_show(unmapped)} in {task.label_column!r} have no entry in `label_map` "
            f"{task.label_map}. Add them to `label_map`."
        )
    valid = set(task.labels or [])
    unknown = [value for value in raw_values if namer(value) not in valid]
    if unknown:
        raise ValueError(
            f"{where}: {len(unknown)} label value(s) in {task.label_column!r} are not in the task's labels: "
            f"{_show(unknown)}. Valid labels: {task.labels}. Add them to `labels`, map them with `label_map`, "
            "or fix `label_column`."
        )


def _subsample(task: TaskDataConfig, role: str, dataset: Dataset, seed: int) -> Dataset:
    limit = task.max_train_samples if role == "train" else task.max_eval_samples
    if limit is None or len(dataset) <= limit:
        return dataset
    rows = np.random.default_rng(seed).choice(len(dataset), size=limit, replace=False)
    return dataset.select(np.sort(rows))


def _show(values: list[Any]) -> str:
    shown = ", ".join(repr(v) for v in values[:MAX_SHOWN])
    return f"[{shown}{', ...' if len(values) > MAX_SHOWN else ''}]"


def _as_list(paths: str | Iterable[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def _expand(paths: str | Iterable[str]) -> list[str]:
    """File paths with glob patterns expanded (sorted), as `datasets` does for its builders."""
    expanded = []
    for path in _as_list(paths):
        expanded.extend(sorted(glob.glob(path)) if glob.has_magic(path) else [path])
    return expanded


__all__ = ["label_namer", "load_task_splits", "read_conll", "read_label_text", "resolve_format"]

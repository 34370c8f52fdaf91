"""Per-task data settings: where a task's data lives, how to read it and which columns hold text and labels."""

from __future__ import annotations

import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..modeling.configuration_mtl import TASK_TYPES

#: Formats `load_task_splits` reads. csv/tsv/json/parquet go through the `datasets` builders; conll and
#: label_text through small line readers in `mtl_hf.data.loading`.
FORMATS = ("csv", "tsv", "json", "jsonl", "parquet", "conll", "label_text")

#: File extension -> format, used when `format` is not given.
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
    ".conll": "conll",
}

#: The roles a split can play; `splits` maps each role to the split name in `data_files` or on the Hub.
SPLIT_ROLES = ("train", "validation", "test")

HUB_KEYS = ("path", "name", "revision", "data_dir")


@dataclass
class TaskDataConfig:
    """Data settings of one task, as written in a run config's `tasks:` list (see `from_dict`).

    After `mtl_hf.data.load_task_splits` has run, `labels` is always set (inferred from the train split when the
    entry left it out), so `model_task_spec()` can build the model's task list.
    """

    name: str = field(metadata={"help": "Task name: a Python identifier, unique within a run (e.g. `sst2`)."})
    type: str = field(
        default="classification",
        metadata={"help": f"Task type, one of {TASK_TYPES}."},
    )
    labels: list[str] | None = field(
        default=None,
        metadata={
            "help": "Label names in id order (tags for token tasks). None for classification/token tasks: "
            "the sorted unique labels of the train split (or a Hub ClassLabel's names). Must be None for regression."
        },
    )
    text_columns: list[str] | None = field(
        default=None,
        metadata={
            "help": "Column(s) holding the text: one column, or two for sentence pairs (e.g. `[sentence1, "
            "sentence2]`). For token tasks one column holding a list of words. Default `[text]` (`[tokens]` for "
            "token tasks)."
        },
    )
    label_column: str | None = field(
        default=None,
        metadata={"help": "Column holding the label (a list of tags for token tasks). Default `label` (`tags`)."},
    )
    data_files: dict[str, str] | None = field(
        default=None,
        metadata={
            "help": "Split name -> local file (or list of files), e.g. `{train: train.tsv, validation: dev.tsv}`. "
            "Relative paths are resolved against the YAML file's folder."
        },
    )
    format: str | None = field(
        default=None,
        metadata={"help": f"File format, one of {FORMATS}; inferred from the file extension when None."},
    )
    reader: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Options for the reader: for csv/tsv/json/parquet (and Hub datasets) the `datasets` builder's "
            "options (e.g. `{delimiter: ';', column_names: [...], quoting: 3, encoding: latin-1, usecols: [...]}`); "
            "for conll `{delimiter, encoding, token_column, tag_column}`; for label_text "
            "`{separator, label_transform: coarse, encoding, column_names}`."
        },
    )
    hub: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "`{path, name, revision, data_dir}` for `datasets.load_dataset` from the Hub (needs network)."
        },
    )
    splits: dict[str, str | None] = field(
        default_factory=dict,
        metadata={
            "help": "Role -> split name, for roles train/validation/test, e.g. `{validation: dev}`. Roles not given "
            "map to the split of the same name; map a role to null to leave it out."
        },
    )
    loss_weight: float = field(default=1.0, metadata={"help": "Weight of this task's loss in the summed loss."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep at most this many train rows (deterministic, seeded subsample)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many validation and test rows (deterministic, seeded subsample)."},
    )
    label_all_subtokens: bool = field(
        default=False,
        metadata={
            "help": "Token tasks: give every sub-token of a word a label (the I- version of a B- tag) instead of "
            "labelling only the first sub-token and ignoring (-100) the rest."
        },
    )
    label_map: dict[str, str] | None = field(
        default=None,
        metadata={"help": "Raw label value -> label name, e.g. `{0: negative, 1: positive}` for SST-2's integers."},
    )
    metrics: list[str] | None = field(
        default=None,
        metadata={
            "help": "Evaluation metrics for this task: bundled offline names (classification, seqeval, regression) "
            "or Hub `evaluate` metrics (need network). Default: the bundled metric of the task type."
        },
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Task `name` must be an identifier (letters, digits, underscores), got {self.name!r}.")
        if self.type not in TASK_TYPES:
            raise ValueError(f"Task {self.name!r}: `type` must be one of {TASK_TYPES}, got {self.type!r}.")
        is_token = self.type == "token_classification"
        self.text_columns = _as_str_list(self.text_columns) or (["tokens"] if is_token else ["text"])
        if len(self.text_columns) not in ((1,) if is_token else (1, 2)):
            allowed = "exactly 1 column (a list of words)" if is_token else "1 column, or 2 for sentence pairs"
            raise ValueError(f"Task {self.name!r}: `text_columns` must name {allowed}, got {self.text_columns}.")
        self.label_column = self.label_column or ("tags" if is_token else "label")
        self._check_labels()
        self._check_source()
        self._check_splits()
        self._check_numbers()

    def _check_labels(self) -> None:
        if self.type == "regression":
            if self.labels:
                raise ValueError(f"Task {self.name!r}: a regression task takes no `labels`, got {self.labels}.")
            if self.label_map:
                raise ValueError(f"Task {self.name!r}: a regression task takes no `label_map`.")
            return
        if self.labels is not None:
            self.labels = [str(label) for label in self.labels]
            if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
                raise ValueError(
                    f"Task {self.name!r}: `labels` must list at least 2 distinct names, got {self.labels}."
                )
        if self.label_map is not None:
            if not isinstance(self.label_map, dict):
                raise TypeError(f"Task {self.name!r}: `label_map` must be a mapping, got {self.label_map!r}.")
            self.label_map = {str(raw): str(name) for raw, name in self.label_map.items()}

    def _check_source(self) -> None:
        if (self.data_files is None) == (self.hub is None):
            raise ValueError(
                f"Task {self.name!r}: give exactly one of `data_files` (local files) or `hub` ({{path, name}})."
            )
        if self.data_files is not None:
            if not isinstance(self.data_files, dict) or not self.data_files:
                raise ValueError(
                    f"Task {self.name!r}: `data_files` must map split names to files, e.g. "
                    f"{{train: train.csv, validation: dev.csv}}; got {self.data_files!r}."
                )
            self.data_files = {str(split): _as_paths(paths) for split, paths in self.data_files.items()}
        if self.hub is not None:
            if not isinstance(self.hub, dict) or "path" not in self.hub:
                raise ValueError(f"Task {self.name!r}: `hub` must be a mapping with a `path`, got {self.hub!r}.")
            unknown = sorted(set(self.hub) - set(HUB_KEYS))
            if unknown:
                raise ValueError(f"Task {self.name!r}: unknown `hub` keys {unknown}; valid keys: {list(HUB_KEYS)}.")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"Task {self.name!r}: `format` must be one of {FORMATS}, got {self.format!r}.")
        if not isinstance(self.reader, dict):
            raise TypeError(f"Task {self.name!r}: `reader` must be a mapping of reader options, got {self.reader!r}.")

    def _check_splits(self) -> None:
        unknown = sorted(set(self.splits) - set(SPLIT_ROLES))
        if unknown:
            raise ValueError(
                f"Task {self.name!r}: unknown `splits` roles {unknown}; valid roles: {list(SPLIT_ROLES)} "
                "(map a role to the split name, e.g. `{validation: dev}`)."
            )
        self.splits = {role: self.splits.get(role, role) for role in SPLIT_ROLES}

    def _check_numbers(self) -> None:
        weight = self.loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"Task {self.name!r}: `loss_weight` must be a number >= 0, got {self.loss_weight!r}.")
        self.loss_weight = float(self.loss_weight)
        for key in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"Task {self.name!r}: `{key}` must be a positive integer or None, got {value!r}.")

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_dict(cls, d: dict[str, Any], base_dir: str | os.PathLike | None = None) -> TaskDataConfig:
        """Build from one YAML/dict task entry; relative `data_files` are resolved against `base_dir`.

        Raises `ValueError` naming unknown keys and listing the valid ones.
        """
        if not isinstance(d, dict):
            raise TypeError(f"A task entry must be a mapping like {{name: ..., type: ...}}, got {type(d).__name__}.")
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ValueError(
                f"Task {d.get('name', '?')!r}: unknown keys {unknown}. Valid keys: {valid}. "
                "Reader options such as `delimiter` go under `reader:`."
            )
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        if any(key not in d for key in missing):
            raise ValueError(f"Task entry {d!r} lacks required keys {[k for k in missing if k not in d]}.")
        d = dict(d)
        if d.get("data_files") is not None and base_dir is not None and isinstance(d["data_files"], dict):
            d["data_files"] = {split: _resolve(paths, Path(base_dir)) for split, paths in d["data_files"].items()}
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict copy (the inverse of `from_dict` with absolute paths)."""
        return asdict(self)

    def model_task_spec(self) -> dict[str, Any]:
        """The task entry `MultiTaskConfig(tasks=[...])` wants: `{name, type, labels, loss_weight}`."""
        if self.type != "regression" and self.labels is None:
            raise ValueError(
                f"Task {self.name!r}: `labels` are not known yet; list them in the task entry or call "
                "`load_task_splits(task)` first, which infers them from the train split."
            )
        return {
            "name": self.name,
            "type": self.type,
            "labels": list(self.labels or []),
            "loss_weight": self.loss_weight,
        }

    @property
    def is_token_task(self) -> bool:
        return self.type == "token_classification"


def parse_task_configs(
    entries: list[dict[str, Any] | TaskDataConfig], base_dir: str | os.PathLike | None = None
) -> list[TaskDataConfig]:
    """Turn a YAML `tasks:` list into `TaskDataConfig`s, checking that task names are unique."""
    tasks = [e if isinstance(e, TaskDataConfig) else TaskDataConfig.from_dict(e, base_dir) for e in entries]
    names = [task.name for task in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Task names must be unique, got duplicates {duplicates} in {names}.")
    return tasks


def _as_str_list(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _as_paths(paths: str | os.PathLike | list) -> str | list[str]:
    if isinstance(paths, (str, os.PathLike)):
        return os.fspath(paths)
    return [os.fspath(p) for p in paths]


def _resolve(paths: str | os.PathLike | list, base_dir: Path) -> str | list[str]:
    if isinstance(paths, (str, os.PathLike)):
        path = Path(paths).expanduser()
        return str(path if path.is_absolute() else base_dir / path)
    return [_resolve(p, base_dir) for p in paths]


__all__ = ["EXTENSION_FORMATS", "FORMATS", "SPLIT_ROLES", "TaskDataConfig", "parse_task_configs"]

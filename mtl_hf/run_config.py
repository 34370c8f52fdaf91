"""Run configuration: YAML fills three dataclasses, `--key value` flags override, unknown keys fail.

The dataclasses are `ModelArguments`, `DataArguments` and `MultiTaskTrainingArguments`; keys are flat (one
mapping fills all three, as `HfArgumentParser.parse_dict` does).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .training_args import MultiTaskTrainingArguments


@dataclass
class ModelArguments:
    """Which encoder to start from and how sentence vectors are made."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hugging Face encoder (Hub name or folder) or an mtl_hf checkpoint to continue from. "
            "Default: sentence-transformers/all-MiniLM-L6-v2 (packaged copy when offline)."
        },
    )
    pooling: str | None = field(
        default=None, metadata={"help": "mean, cls, max or mean_sqrt_len (default: the checkpoint's, else mean)."}
    )
    normalize: bool | None = field(default=None, metadata={"help": "L2-normalise sentence embeddings."})
    projection_dim: int | None = field(default=None, metadata={"help": "Optional projection of the pooled vector."})
    head_dropout: float = field(default=0.1, metadata={"help": "Dropout before each task head."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom code from the Hub."})
    freeze: str | list | dict | None = field(
        default=None,
        metadata={
            "help": "none | all | backbone | embeddings | {layers_below: N} | {heads: [names]}, or a list of these."
        },
    )
    peft: dict | None = field(
        default=None, metadata={"help": "LoRA on the backbone: {method: lora, r, alpha, dropout, target_modules}."}
    )
    loss_weighting: str = field(
        default="static", metadata={"help": "static (loss_weight per task) or uncertainty (Kendall et al., 2018)."}
    )


@dataclass
class DataArguments:
    """Tasks and their data."""

    tasks: list | None = field(default=None, metadata={"help": "Task entries (see README: config schema)."})
    max_length: int = field(default=128, metadata={"help": "Truncate inputs to this many tokens."})
    base_dir: str | None = field(
        default=None, metadata={"help": "Folder that relative data paths start from (default: the YAML's folder)."}
    )
    only_tasks: list[str] | None = field(
        default=None, metadata={"help": "Use only these entries of `tasks` (e.g. a single-task baseline)."}
    )
    train_tasks: list[str] | None = field(
        default=None, metadata={"help": "Train on these tasks only; the others are evaluated (default: all)."}
    )


RUN_DATACLASSES = (ModelArguments, DataArguments, MultiTaskTrainingArguments)


def valid_keys() -> dict[str, type]:
    """Every accepted key and the dataclass that owns it."""
    return {f.name: cls for cls in RUN_DATACLASSES for f in dataclasses.fields(cls) if f.init}


def _field_types() -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for cls in RUN_DATACLASSES:
        hints.update(typing.get_type_hints(cls))
    return hints


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Turn YAML/command-line strings into the field's scalar type (YAML reads `2e-5` as a string)."""
    options = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    if value is False and bool not in options and str in options:
        return "no"  # YAML 1.1 reads an unquoted `no` (e.g. `save_strategy: no`) as False
    if not isinstance(value, str):
        return value
    structured = any(o in (dict, list) or typing.get_origin(o) in (dict, list) for o in options)
    if structured and value.lstrip().startswith(("{", "[")):
        return yaml.safe_load(value)
    # A string field keeps "none" (e.g. `report_to: none`, the Trainer's "no integrations"); YAML's null is None.
    if value.lower() in ("none", "null") and type(None) in options and str not in options:
        return None
    for option in options:
        if option is bool and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if option in (int, float):
            try:
                return option(value)
            except ValueError:
                continue
    if str in options or any(typing.get_origin(o) is typing.Literal for o in options):
        return value
    if structured:
        return yaml.safe_load(value)
    if options and all(o in (int, float, bool, type(None)) for o in options):
        raise ValueError(f"`{key}` expects {annotation}, got {value!r}.")
    return value


def parse_overrides(argv: list[str]) -> dict[str, Any]:
    """`--key value` / `--key=value` / `--flag` pairs -> dict of strings (typed later by `_coerce`)."""
    overrides: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--"):
            raise ValueError(f"Expected `--key value`, got {token!r}.")
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            else:
                value = "true"
        # Kept as text: `_coerce` converts it with the field's type (YAML would read `no` as False).
        overrides[key.replace("-", "_")] = value
        i += 1
    return overrides


def read_yaml_config(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML run config as a dict; `extends: other.yaml` (relative to this file) is read first and overridden."""
    if not path.is_file():
        raise FileNotFoundError(f"Run config {path} does not exist.")
    if path.resolve() in _seen:
        raise ValueError(f"Run config {path} extends itself (through {[str(p) for p in _seen]}).")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"Run config {path} must be a YAML mapping of keys to values.")
    values: dict[str, Any] = {}
    if "extends" in loaded:
        values = read_yaml_config(path.parent / str(loaded.pop("extends")), (*_seen, path.resolve()))
    values.update(loaded)
    if "tasks" in loaded and "base_dir" not in loaded:
        # Relative data paths start from the file that lists the tasks (not from a parent that listed others).
        values["base_dir"] = str(path.resolve().parent)
    values.setdefault("base_dir", str(path.resolve().parent))
    return values


def load_run_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> tuple[ModelArguments, DataArguments, MultiTaskTrainingArguments]:
    """Read the YAML at `path`, apply `overrides`, check keys, and build the three argument dataclasses."""
    values = read_yaml_config(Path(path)) if path is not None else {}
    values.update(overrides or {})
    known = valid_keys()
    unknown = sorted(set(values) - set(known))
    if unknown:
        hints = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        did_you_mean = ", ".join(f"{k} -> {m[0]}" for k, m in hints.items() if m)
        raise ValueError(
            f"Unknown config keys {unknown}"
            + (f" (did you mean: {did_you_mean})" if did_you_mean else "")
            + f". Valid keys: {sorted(known)}."
        )
    hints = _field_types()
    values = {k: _coerce(k, v, hints.get(k, Any)) for k, v in values.items()}
    if not values.get("tasks"):
        raise ValueError("The run config lists no `tasks`; add at least one task entry.")
    # As `HfArgumentParser.parse_dict`, without building an argparse parser (it cannot express `tasks`).
    model_args, data_args, training_args = (
        cls(**{k: v for k, v in values.items() if k in _init_names(cls)}) for cls in RUN_DATACLASSES
    )
    return model_args, data_args, training_args


def _init_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.init}


def resolved_config(*args_objects: Any) -> dict[str, Any]:
    """The run's effective settings as a YAML-ready dict (explicit values, defaults included)."""
    result: dict[str, Any] = {}
    for obj in args_objects:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        names = {f.name for f in dataclasses.fields(obj) if f.init and not f.name.startswith("_")}
        result.update({k: v for k, v in values.items() if k in names})
    return yaml.safe_load(yaml.safe_dump(result, default_flow_style=False, sort_keys=True, allow_unicode=True))

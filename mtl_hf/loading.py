"""One entry point for "give me a model": an mtl_hf checkpoint, or any encoder wrapped as a new MultiTaskModel."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .modeling import MultiTaskConfig, MultiTaskModel


def is_mtl_checkpoint(name_or_path: str | os.PathLike | None) -> bool:
    """True for a local folder whose config.json says `model_type: mtl_hf`."""
    if name_or_path is None:
        return False
    config_file = Path(name_or_path) / "config.json"
    if not config_file.is_file():
        return False
    try:
        return json.loads(config_file.read_text()).get("model_type") == MultiTaskConfig.model_type
    except json.JSONDecodeError as err:
        raise OSError(f"{config_file} is not valid JSON ({err}); the checkpoint is corrupt.") from err


def load_model(
    name_or_path: str | os.PathLike | None = None,
    tasks: list[dict] | tuple = (),
    pooling: str | None = None,
    normalize: bool | None = None,
    **kwargs: Any,
) -> MultiTaskModel:
    """Load an mtl_hf checkpoint as it was saved, or build a `MultiTaskModel` around a pretrained encoder.

    For a checkpoint, `pooling`/`normalize` (when given) override the saved settings; `tasks` must be empty.
    None means the default backbone (sentence-transformers/all-MiniLM-L6-v2, packaged copy when offline).
    """
    if is_mtl_checkpoint(name_or_path):
        if tasks:
            raise ValueError(f"{name_or_path} is an mtl_hf checkpoint with its own tasks; do not pass `tasks`.")
        model = MultiTaskModel.from_pretrained(name_or_path, **kwargs)
        if pooling is not None:
            model.config.pooling = model.pooler.mode = pooling
        if normalize is not None:
            model.config.normalize = normalize
        return model
    if name_or_path is not None and str(name_or_path).startswith((".", "/")) and not Path(name_or_path).exists():
        raise FileNotFoundError(f"Model folder {name_or_path} does not exist.")
    return MultiTaskModel.from_backbone(
        name_or_path, tasks=list(tasks), pooling=pooling, normalize=normalize, **kwargs
    )

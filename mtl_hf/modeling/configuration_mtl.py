"""Configuration of a multi-task sentence encoder.

This file travels with every checkpoint (``trust_remote_code``): it imports only the standard library,
``huggingface_hub`` and ``transformers``.
"""

# No `from __future__ import annotations` here: `@strict` validates field types from the annotations, and
# string annotations would silently turn that validation off.
from dataclasses import fields
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.generation.configuration_utils import GenerationConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")
TASK_TYPES = ("classification", "token_classification", "regression")
TASK_KEYS = ("name", "type", "labels", "loss_weight")
LOSS_WEIGHTINGS = ("static", "uncertainty")

# Keys that `PreTrainedConfig.__post_init__` consumes without declaring them as dataclass fields.
_BASE_CONFIG_KWARGS = {
    "torch_dtype",
    "num_labels",
    "name_or_path",
    "_commit_hash",
    "output_attentions",
    "attn_implementation",
    "experts_implementation",
    "per_layer_config",
    "rope_scaling",
    "rope_theta",
    "auto_map",
    "transformers_version",
    "model_type",
    "_attn_implementation_internal",
    "_experts_implementation_internal",
    # The Trainer aligns special-token ids of the config with the tokenizer before saving.
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
}


def normalize_task_spec(spec: dict[str, Any], index: int) -> dict[str, Any]:
    """Validate one task spec and return it in canonical form (name, type, labels, loss_weight)."""
    if not isinstance(spec, dict):
        raise TypeError(f"Task #{index} must be a dict like {{'name': ..., 'type': ...}}, got {type(spec).__name__}.")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or not name.isidentifier():
        raise ValueError(
            f"Task #{index}: `name` must be a non-empty identifier (letters, digits, underscores), got {name!r}."
        )
    task_type = spec.get("type", "classification")
    if task_type not in TASK_TYPES:
        raise ValueError(f"Task {name!r}: `type` must be one of {TASK_TYPES}, got {task_type!r}.")
    labels = spec.get("labels")
    if task_type == "regression":
        if labels:
            raise ValueError(f"Task {name!r}: a regression task has no `labels`, got {labels!r}.")
        labels = []
    else:
        if not isinstance(labels, (list, tuple)) or len(labels) < 2:
            raise ValueError(
                f"Task {name!r}: `labels` must list at least 2 label names for type {task_type!r}, got {labels!r}."
            )
        labels = [str(label) for label in labels]
        if len(set(labels)) != len(labels):
            raise ValueError(f"Task {name!r}: `labels` must be unique, got {labels}.")
    loss_weight = spec.get("loss_weight", 1.0)
    if not isinstance(loss_weight, (int, float)) or isinstance(loss_weight, bool) or loss_weight < 0:
        raise ValueError(f"Task {name!r}: `loss_weight` must be a number >= 0, got {loss_weight!r}.")
    unknown = sorted(set(spec) - set(TASK_KEYS))
    if unknown:
        logger.warning(f"Task {name!r}: ignoring unknown keys {unknown} (valid keys: {list(TASK_KEYS)}).")
    return {"name": name, "type": task_type, "labels": labels, "loss_weight": float(loss_weight)}


@strict
class MultiTaskConfig(PreTrainedConfig):
    r"""
    Configuration of [`MultiTaskModel`]: a shared encoder, a pooler and one head per task.

    Args:
        encoder_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the backbone (any Hugging Face encoder: BERT, DistilBERT, MiniLM, RoBERTa, ...).
        tasks (`list[dict]`, *optional*):
            Ordered task specs `{"name", "type", "labels", "loss_weight"}`. `type` is one of `classification`,
            `token_classification`, `regression`; `labels` gives each task's `id2label` (none for regression).
            The order defines the task ids used by `task_ids`, and survives `save_pretrained`.
        pooling (`str`, *optional*, defaults to `"mean"`):
            How token states become one sentence vector: `mean` (masked), `cls`, `max`, `mean_sqrt_len`.
        projection_dim (`int`, *optional*):
            If set, a linear projection of the pooled vector to this size.
        normalize (`bool`, *optional*, defaults to `False`):
            L2-normalise `sentence_embedding` (heads still see the unnormalised vector).
        head_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before every task head.
        max_seq_length (`int`, *optional*):
            Truncation length used by `encode` / `predict`; defaults to the tokenizer's limit.
        backbone_name_or_path (`str`, *optional*):
            Where the backbone weights came from (provenance only).
        loss_weighting (`str`, *optional*, defaults to `"static"`):
            `static`: loss = sum of `loss_weight * task_loss`. `uncertainty` (Kendall et al., 2018): learned
            log-variances `s_t`, loss = sum of `loss_weight * (c_t * exp(-s_t) * task_loss + s_t / 2)` with
            `c_t` = 1 for classification and 1/2 for regression.
    """

    model_type = "mtl_hf"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}
    keys_to_ignore_at_inference = ["task_logits", "task_losses", "sentence_embedding"]

    encoder_config: dict | PreTrainedConfig | None = None
    tasks: list | None = None
    pooling: str = "mean"
    projection_dim: int | None = None
    normalize: bool = False
    head_dropout: float | int = 0.1
    max_seq_length: int | None = None
    backbone_name_or_path: str | None = None
    loss_weighting: str = "static"

    def __post_init__(self, **kwargs):
        known = _BASE_CONFIG_KWARGS | set(GenerationConfig._get_default_generation_params())
        unknown = sorted(k for k in kwargs if k not in known)
        if unknown:
            logger.warning(
                f"MultiTaskConfig: dropping unknown keys {unknown} (written by a newer mtl_hf?). "
                f"Valid keys: {sorted(f.name for f in fields(self) if not f.name.startswith('_'))}."
            )
            kwargs = {k: v for k, v in kwargs.items() if k not in unknown}
        self.tasks = [normalize_task_spec(spec, i) for i, spec in enumerate(self.tasks or [])]
        names = [task["name"] for task in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Task names must be unique, got duplicates {duplicates} in {names}.")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"`pooling` must be one of {POOLING_MODES}, got {self.pooling!r}.")
        if self.projection_dim is not None and self.projection_dim <= 0:
            raise ValueError(f"`projection_dim` must be a positive integer or None, got {self.projection_dim!r}.")
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"`head_dropout` must be in [0, 1), got {self.head_dropout!r}.")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"`loss_weighting` must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}.")
        if self.max_seq_length is not None and self.max_seq_length <= 0:
            raise ValueError(f"`max_seq_length` must be a positive integer or None, got {self.max_seq_length!r}.")
        super().__post_init__(**kwargs)

    @property
    def task_names(self) -> list[str]:
        """Task names in id order."""
        return [task["name"] for task in self.tasks]

    def task_id(self, name: str) -> int:
        """The id of task `name`; raises naming the known tasks if there is none."""
        names = self.task_names
        if name not in names:
            raise ValueError(f"Unknown task {name!r}. This model has tasks {names}.")
        return names.index(name)

    def get_task(self, name: str) -> dict[str, Any]:
        """The spec of task `name`."""
        return self.tasks[self.task_id(name)]

    @property
    def embedding_dim(self) -> int:
        """Width of `sentence_embedding` (the projection size, else the encoder's hidden size)."""
        return self.projection_dim or self.encoder_hidden_size

    @property
    def encoder_hidden_size(self) -> int:
        """Hidden size of the backbone, whatever the architecture calls it."""
        enc = self.encoder_config
        for attr in ("hidden_size", "dim", "d_model"):
            if getattr(enc, attr, None):
                return int(getattr(enc, attr))
        raise ValueError(f"Cannot find the hidden size of encoder config {type(enc).__name__}.")


__all__ = ["MultiTaskConfig", "POOLING_MODES", "TASK_TYPES", "normalize_task_spec"]

"""`MultiTaskTrainingArguments`: the Trainer's arguments plus the multi-task knobs.

> Defaults that differ from `TrainingArguments`: `label_names=["labels"]` (P2), `ddp_find_unused_parameters=True`
> (P6), `ddp_broadcast_buffers=False`, non-reentrant activation checkpointing (P6),
> `train_sampling_strategy="group_by_length"` (length-grouped batches inside each task), `report_to="none"`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from .data.sampler import TaskSamplingStrategy
from .freezing import UnfreezeSchedule


def _as_mapping(value: Any, name: str) -> dict | None:
    """Accept a dict, a JSON string (from the command line) or None."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"`{name}` must be a mapping or a JSON object string, got {value!r} ({err}).") from err
        if isinstance(parsed, dict):
            return parsed
    raise ValueError(f"`{name}` must be a mapping, got {type(value).__name__}: {value!r}.")


def _cpu_only_multi_process() -> bool:
    """True when launched as several processes (torchrun/accelerate set WORLD_SIZE) on a machine with no GPU."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    accelerator = getattr(torch, "accelerator", None)
    has_device = accelerator.is_available() if accelerator is not None else torch.cuda.is_available()
    return not has_device


@dataclass
class MultiTaskTrainingArguments(TrainingArguments):
    """[`TrainingArguments`] for [`MultiTaskTrainer`].

    > Parameters that control layer-wise learning rates

    Args:
        layer_lr_decay (`float`, *optional*):
            Form (a): `lr_layer = learning_rate * layer_lr_decay ** (num_layers - layer_index)`, embeddings lowest.
        head_learning_rate (`float`, *optional*):
            Learning rate of the task heads (defaults to `learning_rate`).
        layer_lr_groups (`dict`, *optional*):
            Form (b): `{embeddings: lr, lower: {layers: "0-1", lr}, middle: {...}, upper: {...}, heads: lr}`.
        learning_rate_mapping (`dict`, *optional*):
            `{regex: lr}` over parameter names, applied after (a)/(b); a regex that matches nothing raises.

    > Parameters that control task sampling

    Args:
        task_sampling (`str`, defaults to `"proportional"`): `proportional`, `temperature` or `round_robin`.
        sampling_temperature (`float`, defaults to 2.0): T of the `temperature` strategy.
        mixed_task_batches (`bool`, defaults to `False`): draw batches from all tasks at once.
        pad_to_multiple_of (`int`, *optional*): pad each batch to a multiple of this (8 for fp16/bf16 on GPU).
    """

    layer_lr_decay: float | None = field(
        default=None, metadata={"help": "Per-layer lr decay: lr * decay ** (num_layers - layer_index)."}
    )
    head_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the task heads (default: learning_rate)."}
    )
    layer_lr_groups: dict | str | None = field(
        default=None,
        metadata={"help": "Explicit groups: {embeddings: lr, lower: {layers: '0-1', lr: ...}, middle, upper, heads}."},
    )
    learning_rate_mapping: dict | str | None = field(
        default=None, metadata={"help": "{regex: lr} over parameter names; a regex matching nothing raises."}
    )
    task_sampling: str = field(
        default="proportional", metadata={"help": "Task sampling: proportional, temperature or round_robin."}
    )
    sampling_temperature: float = field(default=2.0, metadata={"help": "T for temperature sampling (p ~ n^(1/T))."})
    mixed_task_batches: bool = field(default=False, metadata={"help": "Mix tasks inside a batch."})
    pad_to_multiple_of: int | None = field(default=None, metadata={"help": "Pad batches to a multiple of this."})
    gradual_unfreezing: dict | str | bool | None = field(
        default=None,
        metadata={
            "help": "Heads first, then the encoder top-down: {layers_per_stage: 1, every_epochs: 1} "
            "or {layers_per_stage: 2, every_steps: 100}."
        },
    )
    train_sampling_strategy: str = field(
        default="group_by_length",
        metadata={
            "help": "Order inside each task: 'group_by_length' (batches of similar length, less padding) or 'random'."
        },
    )
    label_names: list[str] | None = field(default_factory=lambda: ["labels"], metadata={"help": "Label keys."})
    ddp_find_unused_parameters: bool | None = field(
        default=True, metadata={"help": "Needed with one task per batch: other heads get no gradient (P6)."}
    )
    ddp_broadcast_buffers: bool | None = field(default=False, metadata={"help": "See sentence-transformers."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Integrations to report to."})

    def __post_init__(self):
        import torch

        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinning needs an accelerator; torch warns on every loader otherwise
        self.layer_lr_groups = _as_mapping(self.layer_lr_groups, "layer_lr_groups")
        self.learning_rate_mapping = _as_mapping(self.learning_rate_mapping, "learning_rate_mapping")
        if isinstance(self.gradual_unfreezing, str):
            self.gradual_unfreezing = _as_mapping(self.gradual_unfreezing, "gradual_unfreezing")
        UnfreezeSchedule.from_dict(self.gradual_unfreezing)  # validates early
        valid = [s.value for s in TaskSamplingStrategy]
        if self.task_sampling not in valid:
            raise ValueError(f"`task_sampling` must be one of {valid}, got {self.task_sampling!r}.")
        if self.train_sampling_strategy not in ("group_by_length", "random"):
            raise ValueError(
                "`train_sampling_strategy` must be 'group_by_length' or 'random' for MultiTaskTrainer, "
                f"got {self.train_sampling_strategy!r}."
            )
        if self.layer_lr_decay is not None and self.layer_lr_groups:
            raise ValueError("Set either `layer_lr_decay` or `layer_lr_groups`, not both.")
        if self.layer_lr_decay is not None and not 0.0 < self.layer_lr_decay <= 1.0:
            raise ValueError(f"`layer_lr_decay` must be in (0, 1], got {self.layer_lr_decay}.")
        if self.sampling_temperature <= 0:
            raise ValueError(f"`sampling_temperature` must be > 0, got {self.sampling_temperature}.")
        if self.load_best_model_at_end and self.metric_for_best_model is None:
            self.metric_for_best_model = "average"
            self.greater_is_better = True
        if not self.use_cpu and _cpu_only_multi_process():
            # Without this every rank of `torchrun` on a CPU-only machine trains alone (world_size 1) and they
            # race to write output_dir; with it, accelerate sets up gloo DDP across the ranks.
            self.use_cpu = True
        super().__post_init__()
        # Non-reentrant checkpointing works with unused parameters under DDP (P6); the field was renamed in 5.x.
        name = "activation_checkpointing_kwargs" if hasattr(self, "activation_checkpointing_kwargs") else None
        name = name or "gradient_checkpointing_kwargs"
        if getattr(self, name) is None:
            setattr(self, name, {"use_reentrant": False})

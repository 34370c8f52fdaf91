"""Freezing switches and gradual unfreezing.

`freeze` specs (YAML `freeze:` or the Python API), combinable in a list:

- `none`: everything trains (the default);
- `all`: nothing trains (zero-shot heads: evaluation and encoding still work);
- `backbone`: the shared encoder is frozen, heads (and projection) train;
- `embeddings`: only the encoder's embedding layer is frozen;
- `{layers_below: N}`: embeddings and encoder layers 0..N-1 are frozen;
- `{heads: [names]}`: those task heads are frozen.

Freezing only toggles `requires_grad`. The optimizer built by `mtl_hf.optim` still holds frozen parameters
(in their usual groups), so that unfreezing later reaches it (STYLE.md P17); AdamW skips parameters without a
gradient, so frozen weights provably do not change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import TrainerCallback

from .optim import find_backbone, find_encoder_layers, split_model_parts

logger = logging.getLogger(__name__)

FREEZE_WORDS = ("none", "all", "backbone", "embeddings")
FREEZE_KEYS = ("layers_below", "heads")


def _base(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def normalize_freeze_spec(spec: Any) -> list[Any]:
    """Validate a freeze spec and return it as a list of words and one-key dicts."""
    if spec is None:
        return []
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    result: list[Any] = []
    for item in items:
        if isinstance(item, str):
            if item not in FREEZE_WORDS:
                raise ValueError(
                    f"Unknown freeze option {item!r}; valid: {list(FREEZE_WORDS)} or {list(FREEZE_KEYS)}."
                )
            if item != "none":
                result.append(item)
        elif isinstance(item, Mapping):
            unknown = sorted(set(item) - set(FREEZE_KEYS))
            if unknown:
                raise ValueError(f"Unknown freeze keys {unknown}; valid keys: {list(FREEZE_KEYS)}.")
            if "layers_below" in item:
                n = item["layers_below"]
                if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                    raise ValueError(f"`freeze: {{layers_below: N}}` needs an integer N >= 0, got {n!r}.")
            if "heads" in item:
                heads = item["heads"]
                if isinstance(heads, str):
                    heads = [heads]
                if not isinstance(heads, Sequence) or not all(isinstance(h, str) for h in heads):
                    raise ValueError(f"`freeze: {{heads: [...]}}` needs a list of task names, got {heads!r}.")
                item = {**item, "heads": list(heads)}
            result.append(dict(item))
        else:
            raise ValueError(f"A freeze option must be a word or a mapping, got {item!r}.")
    return result


def frozen_parameter_names(model: nn.Module, spec: Any) -> set[str]:
    """Names of the parameters `spec` freezes (names as `model.named_parameters()` gives them)."""
    items = normalize_freeze_spec(spec)
    base = _base(model)
    parts = split_model_parts(model)
    names: set[str] = set()
    backbone = set(parts.embeddings) | set(parts.encoder_other) | {n for layer in parts.layers for n in layer}
    for item in items:
        if item == "all":
            names |= {name for name, _ in model.named_parameters()}
        elif item == "backbone":
            names |= backbone
        elif item == "embeddings":
            names |= set(parts.embeddings)
        elif "layers_below" in item:
            n = item["layers_below"]
            if n > len(parts.layers):
                raise ValueError(f"`layers_below: {n}` exceeds the encoder's {len(parts.layers)} layers.")
            names |= set(parts.embeddings) | {name for layer in parts.layers[:n] for name in layer}
        if isinstance(item, dict) and "heads" in item:
            known = list(base.heads.keys())
            unknown = [h for h in item["heads"] if h not in known]
            if unknown:
                raise ValueError(f"Cannot freeze heads {unknown}: the model's heads are {known}.")
            for head in item["heads"]:
                head_params = {id(p) for p in base.heads[head].parameters()}
                names |= {name for name, p in model.named_parameters() if id(p) in head_params}
    return names


def apply_freeze(model: nn.Module, spec: Any) -> set[str]:
    """Set `requires_grad=False` on what `spec` freezes (everything else is left as it is); return those names."""
    names = frozen_parameter_names(model, spec)
    for name, param in model.named_parameters():
        if name in names:
            param.requires_grad_(False)
    return names


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


@dataclass
class UnfreezeSchedule:
    """When gradual unfreezing opens the next block: every `every_epochs` epochs or every `every_steps` steps."""

    layers_per_stage: int = 1
    every_epochs: int | None = 1
    every_steps: int | None = None
    unfreeze_embeddings: bool = True

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | bool | None) -> UnfreezeSchedule | None:
        if spec in (None, False):
            return None
        if spec is True:
            return cls()
        unknown = sorted(set(spec) - {"layers_per_stage", "every_epochs", "every_steps", "unfreeze_embeddings"})
        if unknown:
            raise ValueError(
                f"Unknown gradual_unfreezing keys {unknown}; valid: layers_per_stage, every_epochs, every_steps, "
                "unfreeze_embeddings."
            )
        schedule = cls(**{"every_epochs": None if "every_steps" in spec else 1, **spec})
        if schedule.layers_per_stage < 1:
            raise ValueError(f"`layers_per_stage` must be >= 1, got {schedule.layers_per_stage}.")
        if (schedule.every_epochs is None) == (schedule.every_steps is None):
            raise ValueError("Give gradual_unfreezing exactly one of `every_epochs` or `every_steps`.")
        for key in ("every_epochs", "every_steps"):
            # 0 would never open a stage (the callbacks test `if every`): the backbone would stay frozen silently.
            every = getattr(schedule, key)
            if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
                raise ValueError(f"`{key}` must be an integer >= 1, got {every!r}.")
        return schedule


class GradualUnfreezeCallback(TrainerCallback):
    """Train the heads first, then unfreeze the encoder top-down, `layers_per_stage` layers per stage.

    Stage 0 (start of training) freezes the whole encoder. Each later stage (per epoch or per N steps) unfreezes the
    next block of layers from the top; the embeddings come last. The optimizer already holds every parameter
    (`mtl_hf.optim` includes frozen ones), so newly unfrozen weights are updated from the next step on.
    """

    def __init__(self, schedule: UnfreezeSchedule):
        self.schedule = schedule
        self.stage = 0
        self.history: list[tuple[int, int]] = []  # (global_step, trainable parameters)

    def _blocks(self, model: nn.Module) -> list[list[nn.Parameter]]:
        backbone = find_backbone(model)
        layers = list(find_encoder_layers(backbone))
        in_layers = {id(p) for layer in layers for p in layer.parameters()}
        blocks = []
        top_down = layers[::-1]
        for start in range(0, len(top_down), self.schedule.layers_per_stage):
            blocks.append(
                [p for layer in top_down[start : start + self.schedule.layers_per_stage] for p in layer.parameters()]
            )
        if self.schedule.unfreeze_embeddings:
            blocks.append([p for p in backbone.parameters() if id(p) not in in_layers])
        return blocks

    def _set_stage(self, model: nn.Module, stage: int, step: int) -> None:
        blocks = self._blocks(model)
        for p in find_backbone(model).parameters():
            p.requires_grad_(False)
        for block in blocks[:stage]:
            for p in block:
                p.requires_grad_(True)
        self.stage = stage
        trainable, total = count_parameters(model)
        self.history.append((step, trainable))
        logger.info(
            "Gradual unfreezing: stage %d at step %d, %d of %d parameters trainable.", stage, step, trainable, total
        )

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._set_stage(model, 0, state.global_step)

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        every = self.schedule.every_epochs
        epoch = int(round(state.epoch or 0))
        if every and epoch > 0 and epoch % every == 0:
            self._set_stage(model, epoch // every, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        every = self.schedule.every_steps
        if every and state.global_step % every == 0:
            self._set_stage(model, state.global_step // every, state.global_step)


def trainable_names(model: nn.Module) -> Iterable[str]:
    """Names of the parameters that currently require gradients."""
    return [name for name, p in model.named_parameters() if p.requires_grad]

"""Layer-wise learning-rate parameter groups, as a pure function the trainer and tests call.

Two forms (see `build_param_groups`):

- decay: `lr_layer = lr * decay ** (num_layers - layer_index)`; embeddings sit below layer 0 (index 0, lowest lr),
  encoder layer `i` has index `i + 1`, heads use `head_lr`.
- explicit groups: embeddings / lower / middle / upper / heads, each with its own lr and layer range.

Every group carries an absolute `lr` (the Trainer's `LambdaLR` scales each group's own lr, STYLE.md P13) and is
split into a decay and a no-decay half. Frozen parameters are included, so a later unfreeze reaches the optimizer
(STYLE.md P17): AdamW skips parameters whose `.grad` is None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

GROUP_NAMES = ("embeddings", "lower", "middle", "upper", "heads")


@dataclass
class ParamGroupSummary:
    """One row of the table logged at the start of training."""

    name: str
    lr: float
    weight_decay: float
    num_tensors: int
    num_params: int


@dataclass
class ModelParts:
    """Parameter names of a model, split by role: embeddings, each encoder layer, the rest of the encoder, heads."""

    embeddings: list[str] = field(default_factory=list)
    layers: list[list[str]] = field(default_factory=list)
    encoder_other: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)


def find_backbone(model: nn.Module) -> nn.Module:
    """The shared encoder of an mtl_hf model, also through PEFT or DDP wrappers."""
    for candidate in (model, getattr(model, "module", None), _peft_base(model)):
        if candidate is not None and isinstance(getattr(candidate, "backbone", None), nn.Module):
            return candidate.backbone
    raise ValueError(f"{type(model).__name__} has no `backbone` submodule; layer-wise learning rates need one.")


def _peft_base(model: nn.Module) -> nn.Module | None:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else None


def find_encoder_layers(backbone: nn.Module) -> nn.ModuleList:
    """The transformer blocks of any encoder: the longest `nn.ModuleList` whose children share one class.

    Works for BERT/RoBERTa (`encoder.layer`), DistilBERT (`transformer.layer`) and others without hard-coding names.
    """
    best: nn.ModuleList | None = None
    for module in backbone.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            if len({type(child) for child in module}) == 1 and (best is None or len(module) > len(best)):
                best = module
    if best is None:
        raise ValueError(f"Cannot find the layer stack (an nn.ModuleList) in {type(backbone).__name__}.")
    return best


def split_model_parts(model: nn.Module) -> ModelParts:
    """Assign every parameter name of `model` to embeddings, an encoder layer, the rest of the encoder, or heads."""
    backbone = find_backbone(model)
    layers = find_encoder_layers(backbone)
    layer_of = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    in_backbone = {id(p) for p in backbone.parameters()}
    parts = ModelParts(layers=[[] for _ in layers])
    for name, param in model.named_parameters():
        if id(param) in layer_of:
            parts.layers[layer_of[id(param)]].append(name)
        elif id(param) in in_backbone:
            (parts.embeddings if "embed" in name.lower() else parts.encoder_other).append(name)
        else:
            parts.heads.append(name)
    return parts


def parse_layer_range(spec: Any, num_layers: int, group: str) -> list[int]:
    """`"0-1"`, `[0, 1]`, `3` or `"2"` -> a list of layer indices, checked against `num_layers`."""
    if isinstance(spec, int):
        indices = [spec]
    elif isinstance(spec, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", spec):
        start, end = (int(x) for x in spec.split("-"))
        indices = list(range(start, end + 1))
    elif isinstance(spec, str) and spec.strip().isdigit():
        indices = [int(spec)]
    elif isinstance(spec, (list, tuple)) and all(isinstance(x, int) for x in spec):
        indices = list(spec)
    else:
        raise ValueError(f"Layer group {group!r}: `layers` must be like '0-1', [0, 1] or 2, got {spec!r}.")
    bad = [i for i in indices if not 0 <= i < num_layers]
    if bad or not indices:
        raise ValueError(f"Layer group {group!r}: layers {bad or indices} are outside 0..{num_layers - 1}.")
    return indices


def layer_lrs_from_decay(lr: float, decay: float, num_layers: int) -> list[float]:
    """lr per depth index 0..num_layers (0 = embeddings, i+1 = layer i): `lr * decay ** (num_layers - index)`."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"`layer_lr_decay` must be in (0, 1], got {decay}.")
    return [lr * decay ** (num_layers - index) for index in range(num_layers + 1)]


def _names_per_group_decay(
    parts: ModelParts, lr: float, decay: float, head_lr: float
) -> dict[str, tuple[list, float]]:
    num_layers = len(parts.layers)
    lrs = layer_lrs_from_decay(lr, decay, num_layers)
    groups = {"embeddings": (parts.embeddings, lrs[0])}
    for i, names in enumerate(parts.layers):
        extra = parts.encoder_other if i == num_layers - 1 else []
        groups[f"layer_{i}"] = (names + extra, lrs[i + 1])
    groups["heads"] = (parts.heads, head_lr)
    return groups


def _names_per_group_explicit(parts: ModelParts, spec: Mapping[str, Any], head_lr: float) -> dict[str, tuple]:
    unknown = sorted(set(spec) - set(GROUP_NAMES))
    if unknown:
        raise ValueError(f"Unknown layer groups {unknown}; valid groups are {list(GROUP_NAMES)}.")
    num_layers = len(parts.layers)
    owner: dict[int, str] = {}
    groups: dict[str, tuple[list, float]] = {}
    for group in ("lower", "middle", "upper"):
        if group not in spec:
            continue
        entry = spec[group]
        if not isinstance(entry, Mapping) or "layers" not in entry or "lr" not in entry:
            raise ValueError(f"Layer group {group!r} needs `layers` and `lr`, e.g. {{layers: '0-1', lr: 2.0e-5}}.")
        names: list[str] = []
        for index in parse_layer_range(entry["layers"], num_layers, group):
            if index in owner:
                raise ValueError(
                    f"Layer {index} is in both {owner[index]!r} and {group!r}; give each layer one group."
                )
            owner[index] = group
            names += parts.layers[index] + (parts.encoder_other if index == num_layers - 1 else [])
        groups[group] = (names, float(entry["lr"]))
    missing = [i for i in range(num_layers) if i not in owner]
    if missing:
        raise ValueError(
            f"Encoder layers {missing} belong to no group; cover 0..{num_layers - 1} with lower/middle/upper."
        )
    groups["embeddings"] = (parts.embeddings, float(_plain_lr(spec.get("embeddings"), "embeddings")))
    groups["heads"] = (parts.heads, float(_plain_lr(spec.get("heads", head_lr), "heads")))
    return groups


def _plain_lr(value: Any, group: str) -> float:
    if isinstance(value, Mapping):
        value = value.get("lr")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"Layer group {group!r} needs a learning rate, e.g. `{group}: 1.0e-5`, got {value!r}.")
    return float(value)


def build_param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    decay_parameter_names: Iterable[str] | None = None,
    layer_lr_decay: float | None = None,
    head_lr: float | None = None,
    layer_groups: Mapping[str, Any] | None = None,
    lr_mapping: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with absolute learning rates.

    Args:
        model: an mtl_hf model (optionally wrapped by PEFT/DDP).
        lr: base learning rate (the top encoder layer's lr under decay).
        weight_decay: applied to parameters in `decay_parameter_names` only (bias/LayerNorm excluded by the caller).
        decay_parameter_names: names that get weight decay; None means all.
        layer_lr_decay: form (a), per-layer decay factor in (0, 1].
        head_lr: lr of the task heads (defaults to `lr`).
        layer_groups: form (b), `{embeddings: lr, lower: {layers, lr}, middle: ..., upper: ..., heads: lr}`.
        lr_mapping: `{regex: lr}` applied last to matching parameter names; a regex matching nothing raises.

    Returns:
        Groups `{"name", "params", "param_names", "lr", "weight_decay"}`; every parameter is in exactly one group.
    """
    if layer_lr_decay is not None and layer_groups:
        raise ValueError("Set either `layer_lr_decay` or `layer_lr_groups`, not both.")
    head_lr = lr if head_lr is None else head_lr
    named = dict(model.named_parameters())
    parts = split_model_parts(model)
    if layer_groups:
        assignment = _names_per_group_explicit(parts, layer_groups, head_lr)
    else:
        assignment = _names_per_group_decay(parts, lr, layer_lr_decay or 1.0, head_lr)
    lr_of = {name: group_lr for names, group_lr in assignment.values() for name in names}
    group_of = {name: group for group, (names, _) in assignment.items() for name in names}
    for pattern, pattern_lr in (lr_mapping or {}).items():
        matched = [name for name in named if re.search(pattern, name)]
        if not matched:
            raise ValueError(f"No parameters found matching the pattern {pattern!r} in `learning_rate_mapping`.")
        for name in matched:
            lr_of[name], group_of[name] = float(pattern_lr), f"{group_of[name]}@{pattern}"
    decay_names = set(named) if decay_parameter_names is None else set(decay_parameter_names)
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for name, param in named.items():
        decays = name in decay_names and weight_decay > 0
        key = (group_of[name], decays)
        if key not in groups:
            groups[key] = {
                "name": group_of[name] + ("" if decays else "_no_decay"),
                "params": [],
                "param_names": [],
                "lr": lr_of[name],
                "weight_decay": weight_decay if decays else 0.0,
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    result = list(groups.values())
    check_coverage(model, result)
    return result


def check_coverage(model: nn.Module, groups: list[dict[str, Any]]) -> None:
    """Raise unless every parameter of `model` is in exactly one group (minGPT's two asserts, as exceptions)."""
    seen: dict[int, str] = {}
    for group in groups:
        for param in group["params"]:
            if id(param) in seen:
                raise RuntimeError(f"A parameter is in both groups {seen[id(param)]!r} and {group['name']!r}.")
            seen[id(param)] = group["name"]
    missing = [name for name, p in model.named_parameters() if id(p) not in seen]
    if missing:
        raise RuntimeError(f"Parameters in no optimizer group: {missing[:10]}.")


def summarize_groups(groups: list[dict[str, Any]]) -> list[ParamGroupSummary]:
    """Rows (name, lr, weight decay, tensors, parameters) for the start-of-training table."""
    return [
        ParamGroupSummary(g["name"], g["lr"], g["weight_decay"], len(g["params"]), sum(p.numel() for p in g["params"]))
        for g in groups
    ]


def format_group_table(groups: list[dict[str, Any]]) -> str:
    """A plain-text table of the parameter groups."""
    rows = summarize_groups(groups)
    lines = [f"{'group':<28} {'lr':>10} {'wd':>6} {'tensors':>8} {'params':>12}"]
    lines += [
        f"{r.name:<28} {r.lr:>10.3g} {r.weight_decay:>6.3g} {r.num_tensors:>8} {r.num_params:>12,}" for r in rows
    ]
    return "\n".join(lines)

"""PEFT / LoRA on the shared encoder, with the task heads trained fully (`modules_to_save`, STYLE.md P14).

peft_model = apply_lora(model, r=8, alpha=16, dropout=0.1)        # backbone LoRA, heads trainable
save_lora(peft_model, "out/adapter")                               # adapters + heads + config + tokenizer
peft_model = load_lora("out/adapter")                              # rebuilds the base model, loads adapters
merged = merge_lora(peft_model)                                    # a plain MultiTaskModel
merged.save_pretrained("out/merged")                               # AutoModel.from_pretrained loads it
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from torch import nn

from .loading import is_mtl_checkpoint
from .modeling import MultiTaskConfig, MultiTaskModel

# Attention projections for encoders PEFT has no default for.
EXTRA_TARGET_MODULES = {"distilbert": ["q_lin", "v_lin"]}
LORA_KEYS = ("method", "r", "alpha", "dropout", "target_modules", "bias")


def default_target_modules(model: MultiTaskModel) -> list[str]:
    """PEFT's default LoRA targets for the backbone's architecture (query/value projections)."""
    model_type = model.config.encoder_config.model_type
    targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type) or EXTRA_TARGET_MODULES.get(
        model_type
    )
    if not targets:
        raise ValueError(
            f"No default LoRA target modules for backbone type {model_type!r}; set `peft: {{target_modules: [...]}}` "
            "to the names of its attention projections."
        )
    return list(targets)


def lora_config_for(model: MultiTaskModel, spec: dict[str, Any]) -> LoraConfig:
    """A `LoraConfig` from the run config's `peft:` mapping; heads (and the projection) are fully trainable."""
    unknown = sorted(set(spec) - set(LORA_KEYS))
    if unknown:
        raise ValueError(f"Unknown `peft` keys {unknown}; valid keys: {list(LORA_KEYS)}.")
    if spec.get("method", "lora") != "lora":
        raise ValueError(f"Only `peft: {{method: lora}}` is supported, got {spec.get('method')!r}.")
    modules_to_save = [f"heads.{name}" for name in model.config.task_names]
    if model.projection is not None:
        modules_to_save.append("projection")
    return LoraConfig(
        r=int(spec.get("r", 8)),
        lora_alpha=int(spec.get("alpha", 16)),
        lora_dropout=float(spec.get("dropout", 0.1)),
        target_modules=spec.get("target_modules") or default_target_modules(model),
        bias=spec.get("bias", "none"),
        modules_to_save=modules_to_save,
    )


def apply_lora(model: MultiTaskModel, **spec: Any) -> PeftModel:
    """Wrap `model` with LoRA adapters on the backbone; every head stays fully trainable."""
    if model.config.loss_weighting == "uncertainty":
        raise ValueError("LoRA with `loss_weighting: uncertainty` is not supported (PEFT freezes the log-variances).")
    peft_model = get_peft_model(model, lora_config_for(model, spec))
    peft_model.tokenizer = model.tokenizer
    return peft_model


def save_lora(peft_model: PeftModel, output_dir: str | os.PathLike) -> Path:
    """Adapters + heads (`adapter_model.safetensors`), the mtl_hf config and the tokenizer."""
    output_dir = Path(output_dir)
    peft_model.save_pretrained(output_dir)
    base = peft_model.get_base_model()
    base.config.save_pretrained(output_dir)
    if base.tokenizer is not None:
        base.tokenizer.save_pretrained(output_dir)
    return output_dir


def load_lora(adapter_dir: str | os.PathLike, base_model: MultiTaskModel | None = None) -> PeftModel:
    """Rebuild the base model and load adapters + heads onto it.

    The base is `base_model` when given, else the mtl_hf checkpoint the adapters were trained on (when it is still
    there), else a new model around the saved config's backbone.
    """
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise OSError(f"{adapter_dir} has no adapter_config.json; is it the output of `save_lora`?")
    if base_model is None:
        base_path = PeftConfig.from_pretrained(adapter_dir).base_model_name_or_path
        if is_mtl_checkpoint(base_path):
            # The run started from an mtl_hf checkpoint: the adapters were trained on its (fine-tuned) backbone,
            # not on the original encoder that `backbone_name_or_path` names.
            base_model = MultiTaskModel.from_pretrained(base_path)
        else:
            config = MultiTaskConfig.from_pretrained(adapter_dir)
            base_model = MultiTaskModel.from_backbone(
                config.backbone_name_or_path,
                tasks=config.tasks,
                pooling=config.pooling,
                normalize=config.normalize,
                projection_dim=config.projection_dim,
                head_dropout=config.head_dropout,
                max_seq_length=config.max_seq_length,
            )
    peft_model = PeftModel.from_pretrained(base_model, adapter_dir)
    peft_model.tokenizer = base_model.tokenizer
    return peft_model


def merge_lora(peft_model: PeftModel) -> MultiTaskModel:
    """Fold the adapters into the backbone weights and return the plain `MultiTaskModel`."""
    tokenizer = peft_model.get_base_model().tokenizer
    merged = peft_model.merge_and_unload()
    if not isinstance(merged, MultiTaskModel):
        raise TypeError(f"Merging gave {type(merged).__name__}, expected MultiTaskModel.")
    merged.tokenizer = tokenizer
    return merged


def is_peft_model(model: nn.Module) -> bool:
    return isinstance(model, PeftModel)

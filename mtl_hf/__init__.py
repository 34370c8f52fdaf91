"""mtl_hf: multi-task fine-tuning of transformer sentence encoders on the Hugging Face stack."""

from transformers import AutoConfig, AutoModel

from .loading import is_mtl_checkpoint, load_model
from .modeling import (
    DEFAULT_BACKBONE,
    POOLING_MODES,
    TASK_TYPES,
    MultiTaskConfig,
    MultiTaskModel,
    MultiTaskOutput,
    MultiTaskPreTrainedModel,
    resolve_backbone,
)

__version__ = "0.1.0"

# The one place that registers the model with the Auto classes. `register_for_auto_class` also makes every
# checkpoint carry `auto_map` and a copy of `mtl_hf/modeling/`, so it loads with `trust_remote_code=True`
# where mtl_hf is not installed.
AutoConfig.register(MultiTaskConfig.model_type, MultiTaskConfig, exist_ok=True)
AutoModel.register(MultiTaskConfig, MultiTaskModel, exist_ok=True)
MultiTaskConfig.register_for_auto_class()
MultiTaskModel.register_for_auto_class("AutoModel")

# Training-side names load lazily: `import mtl_hf` for inference does not import datasets/evaluate/peft.
_LAZY = {
    "MultiTaskTrainer": "trainer",
    "MultiTaskTrainingArguments": "training_args",
    "MultiTaskDataCollator": "data",
    "MultiTaskBatchSampler": "data",
    "TaskDataConfig": "data",
    "GradualUnfreezeCallback": "freezing",
    "apply_freeze": "freezing",
    "apply_lora": "lora",
    "load_lora": "lora",
    "merge_lora": "lora",
    "save_lora": "lora",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BACKBONE",
    "GradualUnfreezeCallback",
    "MultiTaskBatchSampler",
    "MultiTaskDataCollator",
    "MultiTaskTrainer",
    "MultiTaskTrainingArguments",
    "TaskDataConfig",
    "POOLING_MODES",
    "TASK_TYPES",
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "MultiTaskPreTrainedModel",
    "__version__",
    "apply_freeze",
    "apply_lora",
    "is_mtl_checkpoint",
    "load_lora",
    "load_model",
    "merge_lora",
    "resolve_backbone",
    "save_lora",
]

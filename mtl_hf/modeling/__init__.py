"""Everything that travels with a checkpoint: config, model, pooling, heads. Flat and self-contained."""

from .configuration_mtl import POOLING_MODES, TASK_TYPES, MultiTaskConfig
from .modeling_mtl import MultiTaskModel, MultiTaskOutput, MultiTaskPreTrainedModel
from .resolve import DEFAULT_BACKBONE, resolve_backbone

__all__ = [
    "DEFAULT_BACKBONE",
    "POOLING_MODES",
    "TASK_TYPES",
    "MultiTaskConfig",
    "MultiTaskModel",
    "MultiTaskOutput",
    "MultiTaskPreTrainedModel",
    "resolve_backbone",
]

"""Task heads: a registry from task type to head class; each head owns its loss (travels with checkpoints)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IGNORE_INDEX = -100


class TaskHead(nn.Module):
    """Dropout + linear layer. Subclasses say what they read (sentence or token states) and own their loss."""

    level: str = "sentence"

    def __init__(self, in_features: int, num_outputs: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_features, num_outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ClassificationHead(TaskHead):
    """Sentence classification: cross-entropy over the task's labels."""

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), labels.long(), ignore_index=IGNORE_INDEX)


class TokenClassificationHead(TaskHead):
    """Token classification on token states; label -100 marks tokens without a tag."""

    level = "token"

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels[:, : logits.shape[1]].long()
        return F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
        )


class RegressionHead(TaskHead):
    """One real-valued output (similarity scores and the like): mean squared error."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features).squeeze(-1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(logits.float(), labels.float())


HEAD_TYPES: dict[str, type[TaskHead]] = {
    "classification": ClassificationHead,
    "token_classification": TokenClassificationHead,
    "regression": RegressionHead,
}


def build_head(task: dict, sentence_dim: int, token_dim: int, dropout: float) -> TaskHead:
    """Build the head for one (already validated) task spec."""
    if task["type"] not in HEAD_TYPES:
        raise ValueError(f"Unknown task type {task['type']!r}. Known types: {sorted(HEAD_TYPES)}.")
    head_cls = HEAD_TYPES[task["type"]]
    num_outputs = len(task["labels"]) if task["labels"] else 1
    in_features = token_dim if head_cls.level == "token" else sentence_dim
    return head_cls(in_features, num_outputs, dropout)

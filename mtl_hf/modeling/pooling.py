"""Parameter-free pooling of token states into one sentence vector (travels with checkpoints)."""

from __future__ import annotations

import torch
from torch import nn

from .configuration_mtl import POOLING_MODES


def pool(token_states: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool `token_states` (batch, seq, hidden) over the real tokens given by `attention_mask` (batch, seq).

    `mean` averages real tokens, `mean_sqrt_len` divides their sum by sqrt(length) (as Sentence Transformers
    does), `max` takes the per-dimension maximum over real tokens, `cls` takes the first token.
    """
    if mode == "cls":
        return token_states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    if mode == "max":
        masked = token_states.masked_fill(mask == 0, torch.finfo(token_states.dtype).min)
        return masked.max(dim=1).values
    summed = (token_states * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    if mode == "mean":
        return summed / counts
    if mode == "mean_sqrt_len":
        return summed / counts.sqrt()
    raise ValueError(f"Unknown pooling mode {mode!r}. Valid pooling modes are: {POOLING_MODES}.")


class Pooler(nn.Module):
    """`nn.Module` wrapper around [`pool`] so the mode shows in `print(model)`."""

    def __init__(self, mode: str = "mean"):
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"Unknown pooling mode {mode!r}. Valid pooling modes are: {POOLING_MODES}.")
        self.mode = mode

    def forward(self, token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pool(token_states, attention_mask, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

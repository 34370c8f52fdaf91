"""Batch collation for multi-task batches: pad the model inputs, keep `task_ids`, shape `labels` per task type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import pad_without_fast_tokenizer_warning

from ..modeling.heads import IGNORE_INDEX

#: Keys padded by the tokenizer; every other key except `labels` and `task_ids` is dropped.
PADDED_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class MultiTaskDataCollator:
    """Collate rows of [`preprocess_task`] outputs, possibly from several tasks, into one batch.

    Returns `input_ids`, `attention_mask` (and `token_type_ids`) padded to the longest row (rounded up to
    `pad_to_multiple_of`), `task_ids` as a `(batch,)` LongTensor, and `labels` shaped as
    `MultiTaskModel.forward` expects:

    - one task per batch: `(batch,)` long for classification, `(batch,)` float for regression,
      `(batch, seq)` long padded with -100 for token classification;
    - mixed tasks: `(batch, seq)` when any row is a token task, with sentence-level labels in column 0 and -100
      elsewhere (float if any row is a regression row, else long); otherwise `(batch,)`, float if any row is
      a regression row, else long.

    A row's kind is read from its label: a list is a token task, a float a regression target, an int a class id.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the tokenizer that made the rows (its pad token and padding side).
        pad_to_multiple_of (`int`, *optional*): round the padded length up to a multiple of this (8 for fp16/bf16).
    """

    tokenizer: PreTrainedTokenizerBase
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("Cannot collate an empty list of rows.")
        inputs = [{key: row[key] for key in PADDED_KEYS if key in row} for row in features]
        batch = pad_without_fast_tokenizer_warning(
            self.tokenizer,
            inputs,
            padding=True,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        batch = dict(batch)
        if "task_ids" in features[0]:
            batch["task_ids"] = torch.tensor([int(row["task_ids"]) for row in features], dtype=torch.long)
        if "labels" in features[0]:
            batch["labels"] = self._labels([row["labels"] for row in features], batch["input_ids"].shape[1])
        return batch

    def _labels(self, labels: list[Any], seq_len: int) -> torch.Tensor:
        kinds = [_label_kind(label) for label in labels]
        dtype = torch.float if "regression" in kinds else torch.long
        if "token" not in kinds:
            return torch.tensor([_scalar(label) for label in labels], dtype=dtype)
        left = self.tokenizer.padding_side == "left"
        rows = []
        for label, kind in zip(labels, kinds):
            if kind != "token":
                rows.append([_scalar(label)] + [IGNORE_INDEX] * (seq_len - 1))
                continue
            tags = [int(tag) for tag in _to_list(label)]
            if len(tags) > seq_len:
                raise ValueError(
                    f"A token-task row has {len(tags)} labels but its input is {seq_len} tokens long; labels must "
                    "align one-to-one with `input_ids` (see `preprocess_task`)."
                )
            padding = [IGNORE_INDEX] * (seq_len - len(tags))
            rows.append(padding + tags if left else tags + padding)
        return torch.tensor(rows, dtype=dtype)


def _label_kind(label: Any) -> str:
    """`token` for a sequence of tags, `regression` for a float, `classification` for an int."""
    if isinstance(label, (list, tuple)) or (isinstance(label, (torch.Tensor, np.ndarray)) and label.ndim > 0):
        return "token"
    if isinstance(label, (torch.Tensor, np.ndarray, np.generic)):
        is_float = label.dtype.is_floating_point if isinstance(label, torch.Tensor) else label.dtype.kind == "f"
        return "regression" if is_float else "classification"
    if isinstance(label, float):
        return "regression"
    if isinstance(label, int):
        return "classification"
    raise TypeError(f"Unsupported label {label!r} of type {type(label).__name__}; expected an int, float or list.")


def _scalar(label: Any) -> float | int:
    return label.item() if isinstance(label, (torch.Tensor, np.ndarray, np.generic)) else label


def _to_list(label: Any) -> list:
    return label.tolist() if isinstance(label, (torch.Tensor, np.ndarray)) else list(label)


__all__ = ["MultiTaskDataCollator"]

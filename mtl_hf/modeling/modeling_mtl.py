"""Multi-task sentence encoder: one shared backbone, a pooler and one head per task.

This file and its siblings travel with every checkpoint (`trust_remote_code`), so they import only torch,
numpy, transformers and each other.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from torch import nn
from torch.nn import functional as F
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import ModelOutput, logging

from .configuration_mtl import POOLING_MODES, MultiTaskConfig
from .heads import IGNORE_INDEX, build_head
from .inference import decode_predictions, encode_sorted, prepare_texts
from .pooling import Pooler
from .resolve import resolve_backbone

logger = logging.get_logger(__name__)


@dataclass
class MultiTaskOutput(ModelOutput):
    """Output of [`MultiTaskModel`].

    Args:
        loss: weighted sum of the per-task losses over the tasks present in the batch (when `labels` is given).
        logits: logits of the batch's task when the batch holds exactly one task, else None.
        task_logits: per-task logits; each covers the rows of that task (all rows when `task_ids` is None).
        task_losses: per-task unweighted losses (detached from nothing: they are part of the graph).
        sentence_embedding: pooled (projected, optionally normalised) sentence vectors, one per row.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    task_logits: dict[str, torch.Tensor] | None = None
    task_losses: dict[str, torch.Tensor] | None = None
    sentence_embedding: torch.Tensor | None = None


class MultiTaskPreTrainedModel(PreTrainedModel):
    """Class attributes shared by mtl_hf models (see STYLE.md rules 3, P3-P5, P9)."""

    config_class = MultiTaskConfig
    config: MultiTaskConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    accepts_loss_kwargs = False
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, MultiTaskModel) and getattr(module, "task_log_vars", None) is not None:
            module.task_log_vars.zero_()
        std = getattr(self.config.encoder_config, "initializer_range", None) or 0.02
        if isinstance(module, nn.Linear):
            module.weight.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()


class MultiTaskModel(MultiTaskPreTrainedModel):
    """Shared encoder -> pooler -> (projection) -> one head per task.

    Example:

    ```python
    >>> from mtl_hf import MultiTaskModel
    >>> model = MultiTaskModel.from_backbone(tasks=[{"name": "sentiment", "labels": ["neg", "pos"]}])
    >>> model.encode(["A sentence."]).shape
    (1, 384)
    ```
    """

    def __init__(self, config: MultiTaskConfig):
        super().__init__(config)
        self.backbone = _backbone_from_config(config.encoder_config)
        self.pooler = Pooler(config.pooling)
        hidden = config.encoder_hidden_size
        self.projection = nn.Linear(hidden, config.projection_dim) if config.projection_dim else None
        self.heads = nn.ModuleDict(
            {
                task["name"]: build_head(task, config.embedding_dim, hidden, config.head_dropout)
                for task in config.tasks
            }
        )
        if config.loss_weighting == "uncertainty":
            self.task_log_vars = nn.Parameter(torch.zeros(len(config.tasks)))
        self._backbone_takes_token_types = "token_type_ids" in inspect.signature(self.backbone.forward).parameters
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self._warned_truncation = False
        self.post_init()

    # ------------------------------------------------------------------ forward

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states (batch, seq, hidden) and pooled (projected) sentence features (batch, embedding_dim)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._backbone_takes_token_types:
            kwargs["token_type_ids"] = token_type_ids
        token_states = self.backbone(**kwargs)[0]
        features = self.pooler(token_states, attention_mask)
        if self.projection is not None:
            features = self.projection(features)
        return token_states, features

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> MultiTaskOutput:
        r"""
        Args:
            input_ids, attention_mask, token_type_ids: the tokenizer's outputs, (batch, seq).
            task_ids (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Index into `config.tasks` per row. Without it every head runs on every row (inference); with one
                task only it may be left out even when `labels` are given.
            labels (`torch.Tensor`, *optional*):
                `(batch,)` class ids or float targets for sentence tasks, `(batch, seq)` tag ids for token tasks
                (-100 = ignored). A mixed batch with token tasks uses `(batch, seq)` and puts sentence-level
                labels in column 0.
        """
        if input_ids is None:
            raise ValueError("`input_ids` is required.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        token_states, features = self.embed(input_ids, attention_mask, token_type_ids)
        embedding = F.normalize(features, p=2, dim=-1) if self.config.normalize else features

        task_rows = self._rows_per_task(task_ids, input_ids.shape[0], labels is not None)
        task_logits: dict[str, torch.Tensor] = {}
        task_losses: dict[str, torch.Tensor] = {}
        loss = None
        for name, rows in task_rows.items():
            head = self.heads[name]
            inputs = token_states if head.level == "token" else features
            logits = head(inputs if rows is None else inputs[rows])
            task_logits[name] = logits
            if labels is not None:
                task_labels = self._task_labels(name, labels if rows is None else labels[rows], head.level)
                task_losses[name] = head.loss(logits, task_labels)
        if task_losses:
            loss = self.combine_task_losses(task_losses)
        single = next(iter(task_logits.values())) if len(task_logits) == 1 else None
        return MultiTaskOutput(
            loss=loss,
            logits=single,
            task_logits=task_logits,
            task_losses=task_losses or None,
            sentence_embedding=embedding,
        )

    def combine_task_losses(self, task_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The summed loss over the tasks present: static weights, or learned uncertainty weights."""
        total = None
        for name, task_loss in task_losses.items():
            task_id = self.config.task_id(name)
            task = self.config.tasks[task_id]
            if self.config.loss_weighting == "uncertainty":
                log_var = self.task_log_vars[task_id]
                scale = 0.5 if task["type"] == "regression" else 1.0
                task_loss = scale * torch.exp(-log_var) * task_loss + 0.5 * log_var
            weighted = task["loss_weight"] * task_loss
            total = weighted if total is None else total + weighted
        return total

    def task_loss_weights(self) -> dict[str, float]:
        """The effective weight of each task's loss (`loss_weight`, times `c_t * exp(-s_t)` under uncertainty)."""
        weights = {}
        for task_id, task in enumerate(self.config.tasks):
            weight = task["loss_weight"]
            if self.config.loss_weighting == "uncertainty":
                scale = 0.5 if task["type"] == "regression" else 1.0
                weight *= scale * float(torch.exp(-self.task_log_vars[task_id].detach()))
            weights[task["name"]] = weight
        return weights

    def _rows_per_task(
        self, task_ids: torch.Tensor | None, batch_size: int, has_labels: bool
    ) -> dict[str, torch.Tensor | None]:
        """Map each task present to the boolean row mask of its rows (None = all rows)."""
        names = self.config.task_names
        if not names:
            return {}
        if task_ids is None:
            if has_labels and len(names) > 1:
                raise ValueError(f"`labels` were given without `task_ids`; this model has several tasks {names}.")
            return {name: None for name in names}
        task_ids = task_ids.view(-1)
        if task_ids.shape[0] != batch_size:
            raise ValueError(f"`task_ids` has {task_ids.shape[0]} entries for a batch of {batch_size} rows.")
        present = torch.unique(task_ids).tolist()
        bad = [t for t in present if not 0 <= t < len(names)]
        if bad:
            raise ValueError(f"Unknown task ids {bad}. This model has tasks {dict(enumerate(names))}.")
        if len(present) == 1:
            return {names[present[0]]: None}
        return {names[t]: task_ids == t for t in present}

    def _task_labels(self, name: str, labels: torch.Tensor, level: str) -> torch.Tensor:
        """Pick the labels of one task and check they fit its label set."""
        task = self.config.get_task(name)
        if level == "sentence" and labels.dim() == 2:
            labels = labels[:, 0]
        if task["type"] == "regression":
            return labels
        num_labels = len(task["labels"])
        valid = (labels == IGNORE_INDEX) | ((labels >= 0) & (labels < num_labels))
        if not bool(valid.all()):
            bad = sorted(set(labels[~valid].long().tolist()))
            raise ValueError(
                f"Task {name!r}: labels {bad} are outside its label set; expected ids 0..{num_labels - 1} "
                f"for {task['labels']} (or {IGNORE_INDEX} to ignore a position)."
            )
        return labels

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_backbone(
        cls,
        name_or_path: str | os.PathLike | None = None,
        tasks: list[dict] | tuple = (),
        pooling: str | None = None,
        normalize: bool | None = None,
        projection_dim: int | None = None,
        head_dropout: float = 0.1,
        max_seq_length: int | None = None,
        loss_weighting: str = "static",
        **backbone_kwargs: Any,
    ) -> MultiTaskModel:
        """Build a model around real pretrained encoder weights, loaded strictly (STYLE.md P9).

        `name_or_path` is any Hugging Face encoder (Hub name or folder); None means the default
        `sentence-transformers/all-MiniLM-L6-v2`, which resolves to its packaged copy when offline. `pooling`,
        `normalize` and `max_seq_length` left as None follow the checkpoint's sentence-transformers files when
        it has them (mean pooling, no normalisation otherwise).
        """
        source = resolve_backbone(name_or_path)
        _check_backbone_folder(source)
        backbone = AutoModel.from_pretrained(source, **backbone_kwargs)
        st_settings = _sentence_transformers_settings(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = MultiTaskConfig(
            encoder_config=backbone.config.to_dict(),
            tasks=list(tasks),
            pooling=pooling or st_settings.get("pooling", "mean"),
            normalize=st_settings.get("normalize", False) if normalize is None else normalize,
            projection_dim=projection_dim,
            head_dropout=head_dropout,
            max_seq_length=max_seq_length or st_settings.get("max_seq_length"),
            backbone_name_or_path=str(name_or_path) if name_or_path is not None else None,
            loss_weighting=loss_weighting,
        )
        model = cls(config)
        # Strict except for the encoder's own pooling layer, which mtl_hf replaces with its pooler (P6).
        missing, unexpected = model.backbone.load_state_dict(backbone.state_dict(), strict=False)
        unexpected = [key for key in unexpected if not key.startswith("pooler.")]
        if missing or unexpected:
            raise RuntimeError(
                f"Backbone weights from {source} do not fit {type(model.backbone).__name__}: "
                f"missing {missing}, unexpected {unexpected}."
            )
        model.tokenizer = tokenizer
        # The Trainer aligns the config's special-token ids with the tokenizer (and says so); record them up front.
        model.config.pad_token_id = tokenizer.pad_token_id
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        """`PreTrainedModel.from_pretrained`, plus the tokenizer saved beside the weights (if any)."""
        _check_checkpoint_folder(Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or ""))
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        # `output_loading_info=True` returns `(model, loading_info)`.
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(model, MultiTaskModel) and model.tokenizer is None:
            model.tokenizer = _load_tokenizer_if_present(pretrained_model_name_or_path, kwargs)
        return loaded

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """`PreTrainedModel.save_pretrained` plus the attached tokenizer."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None and kwargs.get("is_main_process", True):
            self.tokenizer.save_pretrained(save_directory)

    # ------------------------------------------------------------------ inference

    def encode(
        self,
        sentences: str | list[str],
        batch_size: int = 32,
        normalize_embeddings: bool | None = None,
        convert_to: str = "numpy",
        show_progress_bar: bool = False,
        max_length: int | None = None,
    ) -> np.ndarray | torch.Tensor | list:
        """Sentence embeddings, one row per input in input order (batched, sorted by length, no autograd).

        `normalize_embeddings` None follows `config.normalize`. `convert_to` is `numpy`, `torch` or `list`.
        A single string returns a single vector.
        """
        if convert_to not in ("numpy", "torch", "list"):
            raise ValueError(f"`convert_to` must be 'numpy', 'torch' or 'list', got {convert_to!r}.")
        single = isinstance(sentences, str)
        texts = prepare_texts([sentences] if single else sentences)
        normalize = self.config.normalize if normalize_embeddings is None else normalize_embeddings

        def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            features = self.embed(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))[1]
            return F.normalize(features, p=2, dim=-1) if normalize else features

        rows = encode_sorted(self, texts, run, batch_size, max_length, show_progress_bar, self.config.embedding_dim)
        embeddings = rows[0] if single else rows
        if convert_to == "torch":
            return embeddings
        return embeddings.numpy() if convert_to == "numpy" else embeddings.tolist()

    def predict(
        self,
        texts: str | list[str] | list[tuple[str, str]],
        tasks: list[str] | str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
    ) -> list[dict[str, Any]]:
        """Labels and scores of every requested head, from one backbone pass per batch.

        Returns one dict per input: `{task: result}`. Classification gives `{"label", "score", "scores"}`,
        regression `{"score"}`, token classification `{"entities": [...], "tags": [(word, tag), ...]}`.
        Items of `texts` may be `(text, text_pair)` tuples for pair tasks.
        """
        names = [tasks] if isinstance(tasks, str) else list(tasks or self.config.task_names)
        if not names:
            raise ValueError("This model has no task heads; use `encode` for embeddings.")
        for name in names:
            self.config.task_id(name)
        single = isinstance(texts, str)
        items = prepare_texts([texts] if single else texts, allow_pairs=True)
        results = decode_predictions(self, items, names, batch_size, max_length)
        return results[0] if single else results


def _backbone_from_config(encoder_config) -> PreTrainedModel:
    """An encoder without its own pooling layer where the architecture allows it (STYLE.md P6)."""
    try:
        return AutoModel.from_config(encoder_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(encoder_config)


_ST_POOLING_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_ST_POOLING_NAMES = {"mean_sqrt_len_tokens": "mean_sqrt_len"}


def _sentence_transformers_settings(source: str) -> dict[str, Any]:
    """Pooling, normalisation and max length from a local sentence-transformers folder, if it is one."""
    folder = Path(source)
    if not (folder / "modules.json").is_file():
        return {}
    settings: dict[str, Any] = {}
    modules = json.loads((folder / "modules.json").read_text())
    settings["normalize"] = any(m.get("type", "").endswith("Normalize") for m in modules)
    for module in modules:
        pooling_file = folder / module.get("path", "") / "config.json"
        if module.get("type", "").endswith("Pooling") and pooling_file.is_file():
            pooling = json.loads(pooling_file.read_text())
            # sentence-transformers >= 6 writes `"pooling_mode": "cls"` (or a list); older versions one flag per mode.
            modes = pooling.get("pooling_mode") or []
            modes = [modes] if isinstance(modes, str) else list(modes)
            modes += [mode for key, mode in _ST_POOLING_FLAGS if pooling.get(key)]
            modes = [_ST_POOLING_NAMES.get(mode, mode) for mode in dict.fromkeys(modes)]
            if len(modes) == 1 and modes[0] in POOLING_MODES:
                settings["pooling"] = modes[0]
            elif modes:
                logger.warning(
                    f"{pooling_file} asks for pooling {modes}, which mtl_hf does not support; 'mean' is used "
                    f"unless you pass `pooling=` (one of {POOLING_MODES})."
                )
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        settings["max_seq_length"] = json.loads(st_config.read_text()).get("max_seq_length")
    return settings


def _check_backbone_folder(source: str) -> None:
    """Name the problem with a local backbone path, where transformers would talk about repo ids or `model_type`."""
    folder = Path(source).expanduser()
    looks_local = folder.is_absolute() or source.startswith((".", "~"))
    if looks_local and not folder.exists():
        raise OSError(f"Backbone path {source} does not exist; pass an existing model folder or a Hub name.")
    if folder.is_dir() and not (folder / "config.json").is_file():
        raise OSError(f"Backbone folder {source} has no config.json; is it a Hugging Face model folder?")


def _check_checkpoint_folder(path: str | os.PathLike) -> None:
    """Fail early, naming the problem, on a local folder that cannot be a complete checkpoint."""
    folder = Path(path)
    if not folder.is_dir():
        return
    if not (folder / "config.json").is_file():
        raise OSError(f"Checkpoint folder {folder} has no config.json; is it the output of `save_pretrained`?")
    weights = (
        list(folder.glob("*.safetensors")) + list(folder.glob("*.bin")) + list(folder.glob("*.safetensors.index.json"))
    )
    if not weights:
        raise OSError(f"Checkpoint folder {folder} has config.json but no weights (model.safetensors is missing).")
    for file in folder.glob("*.safetensors"):
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors raises its own error types for truncated/corrupt headers
            raise OSError(
                f"Checkpoint file {file} is corrupt or truncated ({err}). Re-save or re-download the checkpoint."
            ) from err


def _load_tokenizer_if_present(path: str | os.PathLike, kwargs: dict) -> PreTrainedTokenizerBase | None:
    local = Path(path) / (kwargs.get("subfolder") or "")
    if local.is_dir() and not any(
        (local / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
    ):
        return None
    passthrough = {
        k: kwargs[k]
        for k in ("revision", "token", "cache_dir", "local_files_only", "trust_remote_code", "subfolder")
        if k in kwargs
    }
    try:
        return AutoTokenizer.from_pretrained(path, **passthrough)
    except (OSError, ValueError) as err:
        logger.warning(f"No tokenizer loaded from {path} ({err}); set `model.tokenizer` before `encode`/`predict`.")
        return None


__all__ = ["MultiTaskModel", "MultiTaskOutput", "MultiTaskPreTrainedModel"]

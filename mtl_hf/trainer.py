"""`MultiTaskTrainer`: the Hugging Face Trainer with task-aware batches, layer-wise LRs and per-task metrics.

Only public Trainer hooks are overridden (STYLE.md rule 6): `get_train_dataloader`, `get_eval_dataloader`,
`create_optimizer`, `compute_loss`, `log` and `evaluate`. The training loop, checkpoints, mixed precision,
gradient accumulation and devices stay the Trainer's and Accelerate's.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from transformers import Trainer
from transformers.trainer_utils import seed_worker, speed_metrics

from .data.collator import MultiTaskDataCollator
from .data.sampler import MultiTaskBatchSampler
from .freezing import GradualUnfreezeCallback, UnfreezeSchedule
from .metrics import average_score, make_compute_metrics
from .optim import build_param_groups, format_group_table
from .training_args import MultiTaskTrainingArguments

logger = logging.getLogger(__name__)


class MultiTaskTrainer(Trainer):
    """[`Trainer`] for [`MultiTaskModel`] on a dict of task datasets.

    Args:
        model: a `MultiTaskModel` (or a PEFT wrapper around one).
        args: [`MultiTaskTrainingArguments`].
        train_dataset: `{task_name: Dataset}` with `input_ids`, `attention_mask`, `labels`, `task_ids` columns.
        eval_dataset: `{task_name: Dataset}`; evaluation reports `eval_<task>_<metric>` and `eval_average`.
        task_metrics: optional `{task_name: [metric names]}` overriding the offline defaults per task type.
        Other arguments are the Trainer's.
    """

    loss_is_scaled_for_ga = False  # compute_loss returns a per-batch mean; the Trainer divides it (STYLE.md P3)

    def __init__(
        self,
        model: nn.Module | None = None,
        args: MultiTaskTrainingArguments | None = None,
        train_dataset: Mapping[str, Dataset] | None = None,
        eval_dataset: Mapping[str, Dataset] | None = None,
        task_metrics: Mapping[str, list[str]] | None = None,
        data_collator=None,
        processing_class=None,
        **kwargs: Any,
    ):
        if args is None:
            args = MultiTaskTrainingArguments(output_dir="outputs/mtl_hf")
        if not isinstance(args, MultiTaskTrainingArguments):
            raise TypeError(f"`args` must be MultiTaskTrainingArguments, got {type(args).__name__}.")
        config = _mtl_config(model)
        for role, datasets in (("train_dataset", train_dataset), ("eval_dataset", eval_dataset)):
            _check_task_datasets(role, datasets, config.task_names)
        tokenizer = (
            processing_class if processing_class is not None else getattr(_base_model(model), "tokenizer", None)
        )
        if data_collator is None:
            if tokenizer is None:
                raise ValueError("Pass `processing_class=tokenizer` (or attach `model.tokenizer`) to pad batches.")
            data_collator = MultiTaskDataCollator(tokenizer, pad_to_multiple_of=args.pad_to_multiple_of)
        task_metrics = dict(task_metrics or {})
        unknown = [name for name in task_metrics if name not in config.task_names]
        if unknown:
            raise ValueError(
                f"`task_metrics` names tasks {unknown} that the model lacks; its tasks: {config.task_names}."
            )
        # Load every task's metrics now (before the Trainer creates output_dir), so a bad metric name fails early.
        compute_metrics_per_task = {
            t["name"]: make_compute_metrics(t, task_metrics.get(t["name"])) for t in config.tasks
        }
        super().__init__(
            model=model,
            args=args,
            train_dataset=dict(train_dataset) if train_dataset is not None else None,
            eval_dataset=dict(eval_dataset) if eval_dataset is not None else None,
            data_collator=data_collator,
            processing_class=tokenizer,
            **kwargs,
        )
        schedule = UnfreezeSchedule.from_dict(args.gradual_unfreezing)
        if schedule is not None:
            self.add_callback(GradualUnfreezeCallback(schedule))
        self.task_specs = {task["name"]: task for task in config.tasks}
        self.task_metrics = task_metrics
        self._compute_metrics_per_task = compute_metrics_per_task
        self._task_loss_sums: dict[str, torch.Tensor] = {}
        self._task_loss_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ data

    def get_train_dataloader(self) -> DataLoader:
        """One task per batch (by default), sampled by `task_sampling`, in blocks aligned across DDP ranks (P7)."""
        if self.train_dataset is None:
            raise ValueError("MultiTaskTrainer: training requires a train_dataset.")
        datasets = list(self.train_dataset.values())
        drop_last = self.args.dataloader_drop_last
        group_by_length = self.args.train_sampling_strategy == "group_by_length"
        if self.args.world_size > 1 and not drop_last:
            logger.warning("Setting dataloader_drop_last=True: every process needs full batches of the same task.")
            drop_last = True
        sampler = MultiTaskBatchSampler(
            dataset_sizes=[len(ds) for ds in datasets],
            batch_size=self._train_batch_size,
            strategy=self.args.task_sampling,
            temperature=self.args.sampling_temperature,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            drop_last=drop_last,
            num_processes=self.args.world_size,
            mixed=self.args.mixed_task_batches,
            lengths=[_lengths(ds) for ds in datasets] if group_by_length else None,
            group_by_length=group_by_length,
        )
        loader = DataLoader(
            ConcatDataset(datasets),
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0,
            worker_init_fn=partial(
                seed_worker, num_workers=self.args.dataloader_num_workers, rank=self.args.process_index
            ),
        )
        # Batches of one task come in blocks of world_size; uneven tails must not be padded with another task.
        self.accelerator.even_batches = False
        return self.accelerator.prepare(loader)

    def get_eval_dataloader(self, eval_dataset: str | Dataset | None = None) -> DataLoader:
        # even_batches=False hangs evaluation under DDP (sentence-transformers' comment); restore it.
        self.accelerator.even_batches = True
        return super().get_eval_dataloader(eval_dataset)

    # ------------------------------------------------------------------ optimizer

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """Layer-wise learning-rate groups (`mtl_hf.optim`) with the optimizer class `--optim` selects."""
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            groups = build_param_groups(
                opt_model,
                lr=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                decay_parameter_names=self.get_decay_parameter_names(opt_model),
                layer_lr_decay=self.args.layer_lr_decay,
                head_lr=self.args.head_learning_rate,
                layer_groups=self.args.layer_lr_groups,
                lr_mapping=self.args.learning_rate_mapping,
            )
            if self.optimizer_cls_and_kwargs is not None:
                optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
            else:
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs = {k: v for k, v in optimizer_kwargs.items() if k != "lr"}
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
            if self.args.should_log:
                logger.info("Optimizer parameter groups:\n%s", format_group_table(groups))
        return self.optimizer

    # ------------------------------------------------------------------ loss

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ):
        """The weighted sum of the per-task losses of the batch; each task's part is logged as `loss_<task>`."""
        outputs = model(**inputs)
        task_losses = outputs.get("task_losses")
        if not task_losses:
            raise ValueError(
                "The model returned no per-task losses; batches need `labels` and `task_ids` columns "
                f"(got {sorted(inputs)})."
            )
        if not model.training and len(task_losses) == 1:
            # Evaluation runs one task at a time: report its own (unweighted) loss as `eval_<task>_loss`, the same
            # quantity as the training log's `loss_<task>`.
            loss = next(iter(task_losses.values()))
        else:
            loss = self.combine_task_losses(task_losses)
        if model.training:
            for name, value in task_losses.items():
                value = value.detach()
                self._task_loss_sums[name] = self._task_loss_sums.get(name, 0.0) + value
                self._task_loss_counts[name] = self._task_loss_counts.get(name, 0) + 1
        return (loss, outputs) if return_outputs else loss

    def combine_task_losses(self, task_losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum over the tasks present, as the model's `loss_weighting` says (static or uncertainty)."""
        return _base_model(self.accelerator.unwrap_model(self.model)).combine_task_losses(dict(task_losses))

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        """The Trainer's rule (no decay for bias/LayerNorm), and none for the uncertainty log-variances."""
        return [name for name in super().get_decay_parameter_names(model) if "task_log_vars" not in name]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean loss of each task since the last training log as `loss_<task>`."""
        if "loss" in logs and self._task_loss_counts:
            for name, total in self._task_loss_sums.items():
                logs[f"loss_{name}"] = round(float(total) / self._task_loss_counts[name], 4)
            self._task_loss_sums, self._task_loss_counts = {}, {}
            base = _base_model(self.accelerator.unwrap_model(self.model))
            if base.config.loss_weighting == "uncertainty":
                logs.update({f"weight_{k}": round(v, 4) for k, v in base.task_loss_weights().items()})
        super().log(logs, start_time)

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self,
        eval_dataset: Dataset | Mapping[str, Dataset] | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Evaluate each task on its own data with its own metrics: `<prefix>_<task>_<metric>`, `<prefix>_average`."""
        datasets = eval_dataset if eval_dataset is not None else self.eval_dataset
        if not isinstance(datasets, Mapping):
            raise ValueError("MultiTaskTrainer.evaluate needs `{task_name: Dataset}`.")
        _check_task_datasets("eval_dataset", datasets, list(self.task_specs))
        metrics: dict[str, float] = {}
        per_task: dict[str, dict[str, float]] = {}
        start_time = time.time()
        default_compute_metrics = self.compute_metrics
        try:
            for name, dataset in datasets.items():
                prefix = f"{metric_key_prefix}_{name}"
                self.compute_metrics = self._compute_metrics_per_task[name]
                output = self.evaluation_loop(
                    self.get_eval_dataloader(dataset),
                    description=f"Evaluation ({name})",
                    prediction_loss_only=False,
                    ignore_keys=ignore_keys,
                    metric_key_prefix=prefix,
                )
                metrics.update(output.metrics)
                per_task[name] = {k[len(prefix) + 1 :]: v for k, v in output.metrics.items()}
        finally:
            self.compute_metrics = default_compute_metrics
        losses = [m["loss"] for m in per_task.values() if "loss" in m]
        if losses:
            metrics[f"{metric_key_prefix}_loss"] = sum(losses) / len(losses)
        metrics[f"{metric_key_prefix}_average"] = average_score(per_task, self.task_specs.values())
        num_samples = sum(len(ds) for ds in datasets.values())
        metrics.update(
            speed_metrics(
                metric_key_prefix,
                start_time,
                num_samples=num_samples,
                num_steps=math.ceil(num_samples / (self.args.eval_batch_size * self.args.world_size)),
            )
        )
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def _base_model(model: nn.Module | None) -> nn.Module | None:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _mtl_config(model: nn.Module | None):
    base = _base_model(model)
    config = getattr(base, "config", None)
    if config is None or not hasattr(config, "task_names"):
        raise TypeError(f"MultiTaskTrainer needs a MultiTaskModel, got {type(model).__name__}.")
    return config


def _check_task_datasets(role: str, datasets: Mapping[str, Dataset] | None, task_names: list[str]) -> None:
    """Raise early when a dataset dict names a task the model has not, or is not a dict at all."""
    if datasets is None:
        return
    if not isinstance(datasets, Mapping):
        raise TypeError(f"`{role}` must be a dict {{task_name: Dataset}}, got {type(datasets).__name__}.")
    unknown = [name for name in datasets if name not in task_names]
    if unknown:
        raise ValueError(f"`{role}` has tasks {unknown} that the model does not have; model tasks: {task_names}.")
    for name, dataset in datasets.items():
        if len(dataset) == 0:
            raise ValueError(f"`{role}` for task {name!r} is empty; check its data files and splits.")
        expected = task_names.index(name)
        wrong = sorted(i for i in _task_id_values(dataset) if i != expected)
        if wrong:
            raise ValueError(
                f"`{role}` for task {name!r} has task_ids={wrong[0]} but the model's id for it is {expected}; "
                "tokenise with the model's task order."
            )


def _task_id_values(dataset: Dataset) -> set[int]:
    """The distinct `task_ids` of a dataset: every row of a `datasets.Dataset` (one Arrow pass), else the first."""
    if hasattr(dataset, "unique") and hasattr(dataset, "column_names"):
        return {int(i) for i in dataset.unique("task_ids")} if "task_ids" in dataset.column_names else set()
    first = dataset[0].get("task_ids") if hasattr(dataset[0], "get") else None
    return set() if first is None else {int(first)}


def _lengths(dataset: Dataset) -> list[int]:
    """Token count per row (for length-grouped batches)."""
    column = dataset["input_ids"] if hasattr(dataset, "column_names") else [row["input_ids"] for row in dataset]
    return [len(ids) for ids in column]

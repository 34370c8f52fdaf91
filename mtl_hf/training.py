"""The train / evaluate pipeline behind `mtl-hf train` and `mtl-hf evaluate`.

Every check that can fail (config keys, data files, columns, labels, tasks vs model heads) runs before the
Trainer starts or any output folder is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from datasets import DatasetDict
from peft import PeftModel

from .data import MultiTaskDatasets, TaskDataConfig, load_task_splits, parse_task_configs, preprocess_task
from .freezing import apply_freeze, count_parameters
from .loading import is_mtl_checkpoint, load_model
from .lora import apply_lora, merge_lora, save_lora
from .modeling import MultiTaskModel
from .reporting import format_metrics_table
from .run_config import DataArguments, ModelArguments, resolved_config
from .trainer import MultiTaskTrainer
from .training_args import MultiTaskTrainingArguments

logger = logging.getLogger(__name__)


@dataclass
class TrainingRun:
    """What `run_training` produced."""

    model: MultiTaskModel
    trainer: MultiTaskTrainer
    metrics: dict[str, float]
    output_dir: Path


def load_tasks(data_args: DataArguments, seed: int) -> tuple[list[TaskDataConfig], dict[str, DatasetDict]]:
    """Parse the task entries and load/check every split (labels are inferred here when not given)."""
    tasks = parse_task_configs(data_args.tasks or [], base_dir=data_args.base_dir)
    names = [task.name for task in tasks]
    for key in ("only_tasks", "train_tasks"):
        unknown = [name for name in getattr(data_args, key) or [] if name not in names]
        if unknown:
            raise ValueError(f"`{key}` names tasks {unknown} that are not in `tasks` {names}.")
    if data_args.only_tasks:
        tasks = [task for task in tasks if task.name in data_args.only_tasks]
        left_out = [name for name in data_args.train_tasks or [] if name not in data_args.only_tasks]
        if left_out:
            raise ValueError(
                f"`train_tasks` names tasks {left_out} that `only_tasks` {data_args.only_tasks} leaves out."
            )
    raw = {task.name: load_task_splits(task, seed=seed) for task in tasks}
    for task in tasks:
        if data_args.train_tasks is not None and task.name not in data_args.train_tasks:
            raw[task.name].pop("train", None)
    for task in tasks:
        if "train" not in raw[task.name]:
            logger.info("Task %s has no train split; it is evaluated only.", task.name)
    return tasks, raw


def build_model(model_args: ModelArguments, tasks: list[TaskDataConfig]) -> MultiTaskModel:
    """A new model around the backbone, or an mtl_hf checkpoint whose heads must fit the configured tasks."""
    specs = [task.model_task_spec() for task in tasks]
    if is_mtl_checkpoint(model_args.model_name_or_path):
        model = load_model(model_args.model_name_or_path, pooling=model_args.pooling, normalize=model_args.normalize)
        check_tasks_match(model, specs, model_args.model_name_or_path)
        for spec in specs:  # this run's loss weights, not the ones the checkpoint was trained with
            model.config.get_task(spec["name"])["loss_weight"] = spec["loss_weight"]
        if model.config.loss_weighting != model_args.loss_weighting:
            raise ValueError(
                f"Checkpoint {model_args.model_name_or_path} uses loss_weighting={model.config.loss_weighting!r}, "
                f"the config asks for {model_args.loss_weighting!r}; loss weighting is fixed when a model is created."
            )
        return model
    return load_model(
        model_args.model_name_or_path,
        tasks=specs,
        pooling=model_args.pooling,
        normalize=model_args.normalize,
        projection_dim=model_args.projection_dim,
        head_dropout=model_args.head_dropout,
        loss_weighting=model_args.loss_weighting,
        trust_remote_code=model_args.trust_remote_code,
    )


def check_tasks_match(model: MultiTaskModel, specs: list[dict[str, Any]], source: Any) -> None:
    """Raise when a configured task is missing from the checkpoint or its type/labels differ."""
    for spec in specs:
        if spec["name"] not in model.config.task_names:
            raise ValueError(
                f"Task {spec['name']!r} is in the config but checkpoint {source} has no head for it; "
                f"its tasks are {model.config.task_names}. Start from a backbone to add new tasks."
            )
        have = model.config.get_task(spec["name"])
        if have["type"] != spec["type"] or have["labels"] != spec["labels"]:
            raise ValueError(
                f"Task {spec['name']!r}: checkpoint {source} has type {have['type']!r} with "
                f"{len(have['labels'])} labels {have['labels']}, but the config/data give type {spec['type']!r} "
                f"with {len(spec['labels'])} labels {spec['labels']} (num_labels mismatch). "
                "Use the checkpoint's labels or start from a backbone."
            )


def tokenize_tasks(
    model: MultiTaskModel,
    tasks: list[TaskDataConfig],
    raw: dict[str, DatasetDict],
    max_length: int,
    training_args: MultiTaskTrainingArguments,
) -> MultiTaskDatasets:
    """Tokenise every task under `main_process_first` (P16), with task ids in the *model's* task order."""
    result = MultiTaskDatasets()
    for task in tasks:
        with training_args.main_process_first(desc=f"tokenizing {task.name}"):
            splits = preprocess_task(
                task, raw[task.name], model.tokenizer, model.config.task_id(task.name), max_length
            )
        for role, dataset in splits.items():
            getattr(result, role)[task.name] = dataset
    return result


def run_training(
    model_args: ModelArguments, data_args: DataArguments, training_args: MultiTaskTrainingArguments
) -> TrainingRun:
    """Load and check data, build the model, train, evaluate (validation and test), save model and results."""
    tasks, raw = load_tasks(data_args, training_args.seed)
    model = build_model(model_args, tasks)
    if model_args.peft:
        model = apply_lora(model, **model_args.peft)
    # After LoRA: PEFT makes the `modules_to_save` heads and the new adapters trainable, which would undo a freeze.
    apply_freeze(model, model_args.freeze)
    datasets = tokenize_tasks(_base(model), tasks, raw, data_args.max_length, training_args)
    if not datasets.train:
        raise ValueError("No task has a train split; add `train` to `data_files` (or `splits`) of a task.")
    trainable, total = count_parameters(model)
    trainer = MultiTaskTrainer(
        model=model,
        args=training_args,
        train_dataset=datasets.train,
        eval_dataset=datasets.validation or None,
        processing_class=model.tokenizer,
        task_metrics={task.name: task.metrics for task in tasks if task.metrics},
    )
    metrics: dict[str, float] = {"trainable_parameters": trainable, "total_parameters": total}
    if trainable == 0 and not training_args.gradual_unfreezing:
        logger.warning(
            "Nothing is trainable (freeze=%r leaves 0 of %d parameters): skipping training; evaluating and saving the "
            "model as it is (zero-shot heads).",
            model_args.freeze,
            total,
        )
    else:
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        metrics.update({k if k.startswith("train_") else f"train_{k}": v for k, v in train_result.metrics.items()})
    if datasets.validation:
        metrics.update(trainer.evaluate(datasets.validation, metric_key_prefix="eval"))
    if datasets.test:
        metrics.update(trainer.evaluate(datasets.test, metric_key_prefix="test"))
    output_dir = Path(training_args.output_dir)
    if trainer.is_world_process_zero():
        save_trained_model(trainer.model, output_dir)
        trainer.save_state()  # trainer_state.json: the log history (per-task losses and metrics per step)
        write_run_files(output_dir, metrics, model_args, data_args, training_args, tasks)
        print(format_metrics_table(metrics, [t.name for t in tasks]))
        print(f"Saved model, tokenizer, eval_results.json and run_config.yaml to {output_dir}")
    return TrainingRun(model=trainer.model, trainer=trainer, metrics=metrics, output_dir=output_dir)


def save_trained_model(model: MultiTaskModel | PeftModel, output_dir: Path) -> None:
    """Save for `AutoModel.from_pretrained`; a LoRA run saves adapters + heads, and the merged model in `merged/`."""
    if isinstance(model, PeftModel):
        save_lora(model, output_dir)
        merge_lora(model).save_pretrained(output_dir / "merged")
    else:
        model.save_pretrained(output_dir)


def _base(model: MultiTaskModel | PeftModel) -> MultiTaskModel:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def run_evaluation(model_path: str, data_args: DataArguments, training_args: MultiTaskTrainingArguments) -> dict:
    """Evaluate a saved model on the validation and test splits of the configured tasks."""
    tasks, raw = load_tasks(data_args, training_args.seed)
    model = load_model(model_path)
    check_tasks_match(model, [task.model_task_spec() for task in tasks], model_path)
    datasets = tokenize_tasks(model, tasks, raw, data_args.max_length, training_args)
    splits = [(prefix, split) for prefix, split in (("eval", datasets.validation), ("test", datasets.test)) if split]
    if not splits:
        raise ValueError("None of the configured tasks has a validation or test split to evaluate on.")
    # An eval_dataset keeps the Trainer from rejecting a run config's `eval_strategy: epoch` (a training setting).
    trainer = MultiTaskTrainer(
        model=model,
        args=training_args,
        eval_dataset=splits[0][1],
        processing_class=model.tokenizer,
        task_metrics={task.name: task.metrics for task in tasks if task.metrics},
    )
    metrics: dict[str, float] = {}
    for prefix, split in splits:
        metrics.update(trainer.evaluate(split, metric_key_prefix=prefix))
    print(format_metrics_table(metrics, [t.name for t in tasks]))
    return metrics


def write_run_files(
    output_dir: Path,
    metrics: dict[str, float],
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: MultiTaskTrainingArguments,
    tasks: list[TaskDataConfig],
) -> None:
    """`eval_results.json` (every metric) and `run_config.yaml` (the resolved settings, tasks with their labels)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "eval_results.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    config = resolved_config(model_args, data_args, training_args)
    config["tasks"] = [task.to_dict() for task in tasks]
    (output_dir / "run_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

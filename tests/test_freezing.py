"""Freezing switches and gradual unfreezing on tiny BERT and DistilBERT models.

What is checked: each `freeze` spec sets `requires_grad=False` on exactly its parameters; through
`MultiTaskTrainer.train()` (weight decay on) frozen weights stay bit-identical while every other weight changes; frozen
parameters are still in the optimizer (STYLE.md P17), so gradual unfreezing really trains the layers it opens; bad
specs and schedules fail with clear messages; and `freeze: all` in a run skips training but still evaluates and saves.
"""

import copy
import json
import logging
import re

import pytest
import torch
from transformers import AutoModel, TrainerCallback

from mtl_hf import MultiTaskModel
from mtl_hf.cli import main
from mtl_hf.freezing import (
    GradualUnfreezeCallback,
    UnfreezeSchedule,
    apply_freeze,
    count_parameters,
    frozen_parameter_names,
    normalize_freeze_spec,
)
from mtl_hf.testing import (
    TINY_TASKS,
    TINY_TEXTS,
    changed_parameters,
    parameter_snapshot,
    save_tiny_checkpoint,
    tiny_model,
    tiny_task_datasets,
    tiny_training_args,
    write_tiny_run_config,
)
from mtl_hf.trainer import MultiTaskTrainer

ARCHITECTURES = ["bert", "distilbert"]
# Where each architecture keeps its encoder layers; the expected names below are written from these prefixes, not
# computed with the code under test.
LAYER_PREFIX = {"bert": "backbone.encoder.layer.", "distilbert": "backbone.transformer.layer."}
EMBEDDINGS = "backbone.embeddings."

# spec id -> (freeze spec, prefixes of the parameter names it freezes, given the architecture's layer prefix)
SPECS = {
    "all": ("all", lambda layer: ("",)),
    "backbone": ("backbone", lambda layer: ("backbone.",)),
    "embeddings": ("embeddings", lambda layer: (EMBEDDINGS,)),
    "layers_below_1": ({"layers_below": 1}, lambda layer: (EMBEDDINGS, f"{layer}0.")),
    "heads_topic": ({"heads": ["topic"]}, lambda layer: ("heads.topic.",)),
    "combination": (
        ["none", {"layers_below": 1}, {"heads": ["topic", "ner"]}],
        lambda layer: (EMBEDDINGS, f"{layer}0.", "heads.topic.", "heads.ner."),
    ),
}

TEXTS = TINY_TEXTS


# ---------------------------------------------------------------- helpers


def expected_frozen(model, arch: str, spec_id: str) -> set[str]:
    prefixes = SPECS[spec_id][1](LAYER_PREFIX[arch])
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}


class Snapshots(TrainerCallback):
    """Parameters after every optimizer step and epoch, and the backbone parameters each step trained with."""

    def __init__(self):
        self.after_step: dict[int, dict[str, torch.Tensor]] = {}
        self.after_epoch: list[dict[str, torch.Tensor]] = []
        self.trainable_in_step: dict[int, set[str]] = {}

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        trainable = {name for name, p in model.named_parameters() if p.requires_grad and name.startswith("backbone.")}
        self.trainable_in_step[state.global_step + 1] = trainable

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.after_step[state.global_step] = parameter_snapshot(model)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.after_epoch.append(parameter_snapshot(model))


@pytest.fixture(scope="module")
def base_models():
    """A tiny 4-task model per architecture, with a projection (which `freeze: backbone` must leave trainable)."""
    torch.manual_seed(0)
    return {arch: tiny_model(TINY_TASKS, architecture=arch, projection_dim=16) for arch in ARCHITECTURES}


# ---------------------------------------------------------------- which parameters freeze


@pytest.mark.parametrize("spec_id", list(SPECS))
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_freeze_spec_freezes_exactly_its_parameters(base_models, arch, spec_id):
    model = copy.deepcopy(base_models[arch])
    expected = expected_frozen(model, arch, spec_id)
    all_names = {name for name, _ in model.named_parameters()}
    assert expected and (expected == all_names) == (spec_id == "all")

    assert frozen_parameter_names(model, SPECS[spec_id][0]) == expected
    assert all(p.requires_grad for p in model.parameters())  # computing the names changes nothing
    assert apply_freeze(model, SPECS[spec_id][0]) == expected
    assert {name for name, p in model.named_parameters() if not p.requires_grad} == expected
    trainable, total = count_parameters(model)
    assert total == sum(p.numel() for p in model.parameters())
    assert trainable == sum(p.numel() for name, p in model.named_parameters() if name not in expected)
    if spec_id == "backbone":
        assert {"projection.weight", "projection.bias"} <= all_names - expected


def test_freeze_none_and_empty_specs_freeze_nothing(base_models):
    model = copy.deepcopy(base_models["bert"])
    for spec in (None, "none", ["none"], []):
        assert apply_freeze(model, spec) == set()
    assert all(p.requires_grad for p in model.parameters())


def test_apply_freeze_adds_to_what_is_frozen_and_never_unfreezes(base_models):
    model = copy.deepcopy(base_models["bert"])
    apply_freeze(model, {"heads": ["sentiment"]})
    apply_freeze(model, "embeddings")
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == expected_frozen(model, "bert", "embeddings") | {
        "heads.sentiment.linear.weight",
        "heads.sentiment.linear.bias",
    }


def test_normalize_freeze_spec_forms():
    assert normalize_freeze_spec(None) == []
    assert normalize_freeze_spec("backbone") == ["backbone"]
    assert normalize_freeze_spec(["none", "embeddings"]) == ["embeddings"]
    assert normalize_freeze_spec({"heads": "topic"}) == [{"heads": ["topic"]}]
    assert normalize_freeze_spec([{"layers_below": 0}, {"heads": ("ner",)}]) == [
        {"layers_below": 0},
        {"heads": ["ner"]},
    ]


BAD_SPECS = {
    "unknown-word": (
        "everything",
        "Unknown freeze option 'everything'; valid: ['none', 'all', 'backbone', 'embeddings'] or "
        "['layers_below', 'heads'].",
    ),
    "unknown-key": ({"layers": 1}, "Unknown freeze keys ['layers']; valid keys: ['layers_below', 'heads']."),
    "negative-n": ({"layers_below": -1}, "`freeze: {layers_below: N}` needs an integer N >= 0, got -1."),
    "n-not-an-int": ({"layers_below": "1"}, "`freeze: {layers_below: N}` needs an integer N >= 0, got '1'."),
    "n-above-layer-count": ({"layers_below": 3}, "`layers_below: 3` exceeds the encoder's 2 layers."),
    "unknown-head": (
        {"heads": ["topic", "sentiments"]},
        "Cannot freeze heads ['sentiments']: the model's heads are ['topic', 'sentiment', 'ner', 'similarity'].",
    ),
    "heads-not-names": ({"heads": [1]}, "`freeze: {heads: [...]}` needs a list of task names, got [1]."),
    "not-a-word-or-mapping": (2, "A freeze option must be a word or a mapping, got 2."),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_freeze_spec_raises_and_freezes_nothing(base_models, case):
    spec, message = BAD_SPECS[case]
    model = copy.deepcopy(base_models["distilbert"])
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_freeze(model, ["backbone", spec])  # a valid part first: the spec is all-or-nothing
    assert all(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------- frozen weights do not change in training


@pytest.mark.parametrize("spec_id", [spec_id for spec_id in SPECS if spec_id != "all"])
@pytest.mark.parametrize(("arch", "optim"), [("bert", "adamw_torch"), ("distilbert", "sgd")])
def test_training_changes_exactly_the_unfrozen_weights(base_models, tmp_path, arch, optim, spec_id):
    model = copy.deepcopy(base_models[arch])
    frozen = apply_freeze(model, SPECS[spec_id][0])
    initial = parameter_snapshot(model)
    lr = 1e-2 if optim == "adamw_torch" else 0.5
    args = tiny_training_args(tmp_path, max_steps=4, optim=optim, learning_rate=lr, weight_decay=0.1)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=tiny_task_datasets(model.tokenizer))
    trainer.train()

    # One batch of each of the four tasks, so every head took a step.
    assert {key for entry in trainer.state.log_history for key in entry if key.startswith("loss_")} == {
        f"loss_{task['name']}" for task in TINY_TASKS
    }
    assert changed_parameters(initial, parameter_snapshot(model)) == set(initial) - frozen
    assert {name for name, p in model.named_parameters() if not p.requires_grad} == frozen
    # P17: frozen parameters are in the optimizer too, and weight decay was on.
    groups = trainer.optimizer.param_groups
    in_optimizer = {id(p) for group in groups for p in group["params"]}
    assert [name for name, p in model.named_parameters() if id(p) not in in_optimizer] == []
    assert any(group["weight_decay"] == pytest.approx(0.1) and group["params"] for group in groups)


# ---------------------------------------------------------------- gradual unfreezing


def test_gradual_unfreezing_every_steps_opens_top_layer_first_then_lower_then_embeddings(base_models, tmp_path):
    model = copy.deepcopy(base_models["bert"])
    # Frozen before `train()` builds the optimizer (as with `freeze: backbone`): only an optimizer that holds frozen
    # parameters (P17) can train them once they are opened.
    apply_freeze(model, "backbone")
    initial = parameter_snapshot(model)
    snapshots = Snapshots()
    args = tiny_training_args(
        tmp_path, max_steps=7, weight_decay=0.1, gradual_unfreezing={"layers_per_stage": 1, "every_steps": 2}
    )
    trainer = MultiTaskTrainer(
        model=model, args=args, train_dataset=tiny_task_datasets(model.tokenizer), callbacks=[snapshots]
    )
    unfreezers = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, GradualUnfreezeCallback)]
    assert len(unfreezers) == 1
    assert unfreezers[0].schedule == UnfreezeSchedule(layers_per_stage=1, every_epochs=None, every_steps=2)
    trainer.train()

    layer = LAYER_PREFIX["bert"]
    names = set(initial)
    top, lower = {n for n in names if n.startswith(f"{layer}1.")}, {n for n in names if n.startswith(f"{layer}0.")}
    embeddings = {n for n in names if n.startswith(EMBEDDINGS)}
    assert top | lower | embeddings == {n for n in names if n.startswith("backbone.")}
    stages = {1: set(), 2: set(), 3: top, 4: top, 5: top | lower, 6: top | lower, 7: top | lower | embeddings}
    assert snapshots.trainable_in_step == stages
    assert unfreezers[0].stage == 3
    assert [step for step, _ in unfreezers[0].history] == [0, 2, 4, 6]
    heads_and_projection = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    assert unfreezers[0].history[0] == (0, heads_and_projection)

    # In each step exactly the opened blocks change: a block frozen at step 0 trains once opened (the optimizer
    # holds it, P17), and the blocks not reached yet stay bit-identical.
    previous = initial
    for step in range(1, 8):
        current = snapshots.after_step[step]
        changed = changed_parameters(previous, current)
        assert {n for n in changed if n.startswith("backbone.")} == stages[step], f"step {step}"
        previous = current
    assert changed_parameters(initial, snapshots.after_step[4]) & (lower | embeddings) == set()
    assert changed_parameters(initial, snapshots.after_step[6]) & embeddings == set()
    assert changed_parameters(initial, parameter_snapshot(model)) >= top | lower | embeddings


def test_gradual_unfreezing_every_epochs(base_models, tmp_path):
    """DistilBERT, one layer per epoch, embeddings kept frozen; two tasks of one batch each = 2 steps per epoch."""
    model = copy.deepcopy(base_models["distilbert"])
    initial = parameter_snapshot(model)
    snapshots = Snapshots()
    schedule = {"layers_per_stage": 1, "every_epochs": 1, "unfreeze_embeddings": False}
    args = tiny_training_args(tmp_path, num_train_epochs=3, weight_decay=0.1, gradual_unfreezing=schedule)
    data = tiny_task_datasets(model.tokenizer, names=("topic", "ner"))
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=data, callbacks=[snapshots])
    trainer.train()

    layer = LAYER_PREFIX["distilbert"]
    top = {n for n in initial if n.startswith(f"{layer}1.")}
    lower = {n for n in initial if n.startswith(f"{layer}0.")}
    unfreezer = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, GradualUnfreezeCallback))
    assert [step for step, _ in unfreezer.history] == [0, 2, 4]  # train begin, then the start of epochs 2 and 3
    assert len(snapshots.after_epoch) == 3
    backbone_changes = [
        {n for n in changed_parameters(before, after) if n.startswith("backbone.")}
        for before, after in zip([initial] + snapshots.after_epoch[:-1], snapshots.after_epoch, strict=True)
    ]
    assert backbone_changes == [set(), top, top | lower]
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(EMBEDDINGS))


def test_unfreeze_schedule_from_dict(tmp_path):
    assert UnfreezeSchedule.from_dict(None) is None
    assert UnfreezeSchedule.from_dict(False) is None
    assert UnfreezeSchedule.from_dict(True) == UnfreezeSchedule(layers_per_stage=1, every_epochs=1)
    assert UnfreezeSchedule.from_dict({"every_steps": 5}) == UnfreezeSchedule(every_epochs=None, every_steps=5)
    assert UnfreezeSchedule.from_dict({"layers_per_stage": 2}) == UnfreezeSchedule(layers_per_stage=2)
    # The command line passes the schedule as a JSON string.
    args = tiny_training_args(tmp_path, gradual_unfreezing='{"every_steps": 3}')
    assert args.gradual_unfreezing == {"every_steps": 3}


BAD_SCHEDULES = {
    "no-layers": ({"layers_per_stage": 0, "every_steps": 2}, "`layers_per_stage` must be >= 1, got 0."),
    "both": (
        {"every_epochs": 1, "every_steps": 2},
        "Give gradual_unfreezing exactly one of `every_epochs` or `every_steps`.",
    ),
    "neither": ({"every_epochs": None}, "Give gradual_unfreezing exactly one of `every_epochs` or `every_steps`."),
    "zero-steps": ({"every_steps": 0}, "`every_steps` must be an integer >= 1, got 0."),
    "negative-epochs": ({"every_epochs": -1}, "`every_epochs` must be an integer >= 1, got -1."),
    "unknown-key": (
        {"every_step": 2},
        "Unknown gradual_unfreezing keys ['every_step']; valid: layers_per_stage, every_epochs, every_steps, "
        "unfreeze_embeddings.",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SCHEDULES))
def test_bad_unfreeze_schedule_raises(tmp_path, case):
    schedule, message = BAD_SCHEDULES[case]
    with pytest.raises(ValueError, match=re.escape(message)):
        UnfreezeSchedule.from_dict(schedule)
    with pytest.raises(ValueError, match=re.escape(message)):  # the training arguments check it up front
        tiny_training_args(tmp_path, gradual_unfreezing=schedule)


# ---------------------------------------------------------------- `freeze` in a run (mtl-hf train)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


def test_freeze_all_skips_training_but_evaluates_and_saves(tmp_path, checkpoint, caplog, capsys):
    config = write_tiny_run_config(tmp_path, checkpoint, num_train_epochs=1, freeze="all")
    with caplog.at_level(logging.WARNING, logger="mtl_hf"):
        code = main(["train", str(config)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "mtl_hf.training"]
    assert len(warnings) == 1 and warnings[0].startswith("Nothing is trainable (freeze='all' leaves 0 of ")

    out = tmp_path / "out"
    results = json.loads((out / "eval_results.json").read_text())
    assert results["trainable_parameters"] == 0 and results["total_parameters"] > 0
    assert {"eval_sentiment_accuracy", "eval_sentiment_loss", "eval_ner_f1", "eval_average"} <= set(results)
    assert not any(key.startswith("train_") for key in results)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 0 and not any("loss" in entry for entry in state["log_history"])

    reloaded = AutoModel.from_pretrained(out)
    assert isinstance(reloaded, MultiTaskModel) and reloaded.config.task_names == ["sentiment", "ner"]
    start = AutoModel.from_pretrained(checkpoint).state_dict()
    after = reloaded.state_dict()
    assert set(after) == set(start)
    assert changed_parameters(start, after) == set()


def test_bad_freeze_spec_in_a_run_fails_before_training(tmp_path, checkpoint, capsys):
    config = write_tiny_run_config(tmp_path, checkpoint, num_train_epochs=1, freeze={"heads": ["topic"]})
    code = main(["train", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Cannot freeze heads ['topic']: the model's heads are ['sentiment', 'ner']." in err
    assert not (tmp_path / "out").exists()

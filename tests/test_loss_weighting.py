"""Static and uncertainty loss weighting (Kendall et al., 2018): the loss formula, learning the log-variances with
`MultiTaskTrainer` (logged as `weight_<task>`, no weight decay), saving and reloading them, and bad values."""

import math
import re

import pytest
import torch
from transformers import AutoModel

from mtl_hf.data import MultiTaskDataCollator
from mtl_hf.modeling import MultiTaskConfig, MultiTaskModel
from mtl_hf.testing import (
    TINY_TEXTS,
    tiny_encoder_config,
    tiny_model,
    tiny_task_datasets,
    tiny_tokenizer,
    tiny_training_args,
)
from mtl_hf.trainer import MultiTaskTrainer

# Distinct loss weights, a token task (c = 1) and a regression task (c = 1/2), in a non-alphabetical order.
TASKS = [
    {"name": "topic", "labels": ["sports", "politics", "science"], "loss_weight": 0.5},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "B-LOC"], "loss_weight": 1.5},
    {"name": "similarity", "type": "regression", "loss_weight": 3.0},
    {"name": "sentiment", "labels": ["negative", "positive"], "loss_weight": 2.0},
]
WEIGHTS = {task["name"]: task["loss_weight"] for task in TASKS}
C = {"topic": 1.0, "ner": 1.0, "similarity": 0.5, "sentiment": 1.0}
TEXTS = TINY_TEXTS


def hand_uncertainty_loss(task_losses: dict[str, torch.Tensor], log_vars: torch.Tensor) -> torch.Tensor:
    """sum over the tasks present of loss_weight * (c * exp(-s) * L + s / 2)."""
    ids = {task["name"]: i for i, task in enumerate(TASKS)}
    return sum(
        WEIGHTS[name] * (C[name] * torch.exp(-log_vars[ids[name]]) * loss + log_vars[ids[name]] / 2)
        for name, loss in task_losses.items()
    )


@pytest.fixture
def uncertainty_model():
    torch.manual_seed(0)
    return tiny_model(TASKS, loss_weighting="uncertainty")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Uncertainty weighting, AdamW with weight decay, 8 steps (each task twice), a log every step."""
    torch.manual_seed(0)
    model = tiny_model(TASKS, loss_weighting="uncertainty")
    output_dir = tmp_path_factory.mktemp("uncertainty")
    args = tiny_training_args(output_dir, max_steps=8, learning_rate=5e-2, weight_decay=0.5)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=tiny_task_datasets(model.tokenizer, TASKS))
    trainer.train()
    return trainer


# ---------------------------------------------------------------- the loss


def test_uncertainty_model_has_one_zero_log_variance_per_task(uncertainty_model):
    log_vars = uncertainty_model.task_log_vars
    assert isinstance(log_vars, torch.nn.Parameter) and log_vars.requires_grad
    assert torch.equal(log_vars.detach(), torch.zeros(len(TASKS)))
    assert "task_log_vars" in dict(uncertainty_model.named_parameters())
    assert uncertainty_model.task_loss_weights() == pytest.approx({n: WEIGHTS[n] * C[n] for n in WEIGHTS})

    static = tiny_model(TASKS)
    assert getattr(static, "task_log_vars", None) is None
    assert not any("task_log_vars" in name for name, _ in static.named_parameters())


def test_uncertainty_combine_task_losses_is_the_hand_formula(uncertainty_model):
    with torch.no_grad():
        uncertainty_model.task_log_vars.copy_(torch.tensor([0.3, -0.5, 0.8, -1.2]))
    log_vars = uncertainty_model.task_log_vars
    losses = {"topic": 1.1, "ner": 0.7, "similarity": 0.25, "sentiment": 0.4}
    task_losses = {name: torch.tensor(value, requires_grad=True) for name, value in losses.items()}

    combined = uncertainty_model.combine_task_losses(task_losses)
    torch.testing.assert_close(combined, hand_uncertainty_loss(task_losses, log_vars.detach()))
    # Only the tasks present in a batch count.
    subset = {name: task_losses[name] for name in ("similarity", "topic")}
    torch.testing.assert_close(
        uncertainty_model.combine_task_losses(subset), hand_uncertainty_loss(subset, log_vars.detach())
    )
    # The log-variances are in the graph: d/ds_t = w_t * (-c_t * exp(-s_t) * L_t + 1/2).
    combined.backward()
    expected_grad = torch.tensor(
        [
            WEIGHTS[name] * (-C[name] * math.exp(-log_vars[i].item()) * losses[name] + 0.5)
            for i, name in enumerate(WEIGHTS)
        ]
    )
    torch.testing.assert_close(log_vars.grad, expected_grad)
    weights = uncertainty_model.task_loss_weights()
    for i, name in enumerate(WEIGHTS):
        assert weights[name] == pytest.approx(WEIGHTS[name] * C[name] * math.exp(-log_vars[i].item()))


def test_uncertainty_forward_loss_on_a_mixed_batch(uncertainty_model):
    with torch.no_grad():
        uncertainty_model.task_log_vars.copy_(torch.tensor([0.2, 0.4, -0.6, 1.0]))
    uncertainty_model.eval()
    datasets = tiny_task_datasets(uncertainty_model.tokenizer, TASKS)
    batch = MultiTaskDataCollator(uncertainty_model.tokenizer)([datasets[name][0] for name in WEIGHTS])
    out = uncertainty_model(**batch)
    assert set(out.task_losses) == set(WEIGHTS)
    torch.testing.assert_close(out.loss, hand_uncertainty_loss(out.task_losses, uncertainty_model.task_log_vars))
    assert not torch.allclose(out.loss, sum(WEIGHTS[n] * loss for n, loss in out.task_losses.items()))


def test_static_weighting_is_the_weighted_sum():
    model = tiny_model(TASKS)
    assert model.config.loss_weighting == "static"
    task_losses = {"topic": torch.tensor(1.1), "similarity": torch.tensor(0.25), "sentiment": torch.tensor(0.4)}
    expected = 0.5 * 1.1 + 3.0 * 0.25 + 2.0 * 0.4
    torch.testing.assert_close(model.combine_task_losses(task_losses), torch.tensor(expected))
    assert model.task_loss_weights() == WEIGHTS


# ---------------------------------------------------------------- learning the log-variances


def test_log_variances_are_learned(trained):
    log_vars = trained.model.task_log_vars.detach()
    assert log_vars.shape == (len(TASKS),)
    assert torch.all(log_vars != 0), log_vars  # every task had batches, so every log-variance moved


def test_task_weights_are_logged(trained):
    logs = [entry for entry in trained.state.log_history if "loss" in entry]
    assert len(logs) == 8
    for entry in logs:
        assert {f"weight_{name}" for name in WEIGHTS} <= set(entry), entry
    # The last log came after the last step: it shows the final weights.
    final = trained.model.task_loss_weights()
    assert {name: logs[-1][f"weight_{name}"] for name in WEIGHTS} == pytest.approx(final, abs=1e-4)
    assert logs[0]["weight_similarity"] != logs[-1]["weight_similarity"]
    # Each logged total is its batch's task loss weighted with the log-variance of before the step (the previous
    # log's weight w * c * exp(-s) gives s): w * (c * exp(-s) * L + s / 2), not the static w * L.
    differs_from_static = 0
    for previous, entry in zip(logs, logs[1:]):
        (part,) = [key for key in entry if key.startswith("loss_")]
        name = part.removeprefix("loss_")
        weight = previous[f"weight_{name}"]
        log_var = -math.log(weight / (WEIGHTS[name] * C[name]))
        assert entry["loss"] == pytest.approx(weight * entry[part] + WEIGHTS[name] * log_var / 2, abs=2e-3)
        differs_from_static += entry["loss"] != pytest.approx(WEIGHTS[name] * C[name] * entry[part], abs=2e-3)
    assert differs_from_static >= 3  # the tasks' second batches, once their log-variances have moved


def test_log_variances_get_no_weight_decay(trained):
    assert not any("task_log_vars" in name for name in trained.get_decay_parameter_names(trained.model))
    groups = trained.optimizer.param_groups
    (group,) = [g for g in groups if any(p is trained.model.task_log_vars for p in g["params"])]
    assert group["weight_decay"] == 0.0
    assert any(g["weight_decay"] == pytest.approx(0.5) for g in groups)  # weight decay was on for others


def test_saving_and_reloading_keeps_the_learned_log_variances(trained, tmp_path):
    trained.save_model(str(tmp_path))
    reloaded, info = MultiTaskModel.from_pretrained(tmp_path, output_loading_info=True)
    assert len(info["missing_keys"]) == 0 and len(info["unexpected_keys"]) == 0
    assert reloaded.config.loss_weighting == "uncertainty"
    assert torch.equal(reloaded.task_log_vars.detach(), trained.model.task_log_vars.detach())
    assert not torch.all(reloaded.task_log_vars == 0)
    auto = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(auto.task_log_vars.detach(), trained.model.task_log_vars.detach())
    losses = {"ner": torch.tensor(0.9), "similarity": torch.tensor(0.3)}
    torch.testing.assert_close(auto.combine_task_losses(losses), trained.model.combine_task_losses(losses))


# ---------------------------------------------------------------- bad values


@pytest.mark.parametrize("value", ["learned", "Uncertainty", ""])
def test_bad_loss_weighting_raises(value):
    message = f"`loss_weighting` must be one of ('static', 'uncertainty'), got {value!r}."
    tokenizer = tiny_tokenizer()
    encoder = tiny_encoder_config("bert", vocab_size=len(tokenizer))
    with pytest.raises(ValueError, match=re.escape(message)):
        MultiTaskConfig(encoder_config=encoder, tasks=TASKS, loss_weighting=value)
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_model(TASKS, loss_weighting=value)

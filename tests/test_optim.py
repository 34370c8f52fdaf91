"""Layer-wise learning-rate groups: membership by parameter name, absolute lrs, coverage, errors, and the Trainer.

The expected groups are written from the parameter *names* of each architecture (STYLE.md rule 7), not from the
code under test: BERT and RoBERTa keep their blocks in `encoder.layer`, DistilBERT in `transformer.layer`.
"""

import re
from collections import Counter

import pytest
import torch
from transformers.optimization import Adafactor

from mtl_hf.modeling import MultiTaskConfig, MultiTaskModel
from mtl_hf.optim import (
    build_param_groups,
    find_encoder_layers,
    format_group_table,
    layer_lrs_from_decay,
    parse_layer_range,
    split_model_parts,
)
from mtl_hf.testing import tiny_encoder_config, tiny_tokenizer
from mtl_hf.trainer import MultiTaskTrainer
from mtl_hf.training_args import MultiTaskTrainingArguments

ARCHITECTURES = ["bert", "distilbert", "roberta"]
LAYER_PREFIX = {
    "bert": "backbone.encoder.layer.",
    "distilbert": "backbone.transformer.layer.",
    "roberta": "backbone.encoder.layer.",
}
TASKS = [
    {"name": "sentiment", "labels": ["negative", "positive"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER"]},
]
LR, HEAD_LR, DECAY = 1e-3, 5e-3, 0.5


def layered_model(architecture: str = "bert", num_layers: int = 2) -> MultiTaskModel:
    """A tiny 2-task model whose encoder has `num_layers` blocks."""
    tokenizer = tiny_tokenizer()
    encoder = tiny_encoder_config(architecture, vocab_size=len(tokenizer))
    encoder["n_layers" if architecture == "distilbert" else "num_hidden_layers"] = num_layers
    torch.manual_seed(0)
    model = MultiTaskModel(MultiTaskConfig(encoder_config=encoder, tasks=TASKS))
    model.tokenizer = tokenizer
    return model


def names_with_prefix(model, prefix: str) -> set[str]:
    return {name for name, _ in model.named_parameters() if name.startswith(prefix)}


def layer_names(model, architecture: str, *indices: int) -> set[str]:
    return set().union(*(names_with_prefix(model, f"{LAYER_PREFIX[architecture]}{i}.") for i in indices))


def by_group(groups: list[dict]) -> dict[str, dict]:
    """Merge each group's decay / no-decay halves: `{base name: {"names": set, "lrs": set}}`."""
    merged: dict[str, dict] = {}
    for group in groups:
        base = group["name"].removesuffix("_no_decay")
        entry = merged.setdefault(base, {"names": set(), "lrs": set()})
        entry["names"] |= set(group["param_names"])
        entry["lrs"].add(group["lr"])
    return merged


def only_lr(entry: dict) -> float:
    (lr,) = entry["lrs"]  # both halves of a group share one lr
    return lr


def assert_exact_cover(model, groups: list[dict]) -> None:
    """Every named parameter in exactly one group, by name and by tensor identity."""
    counts = Counter(name for group in groups for name in group["param_names"])
    assert set(counts) == {name for name, _ in model.named_parameters()}
    assert set(counts.values()) == {1}
    ids = Counter(id(p) for group in groups for p in group["params"])
    assert set(ids) == {id(p) for p in model.parameters()} and set(ids.values()) == {1}
    for group in groups:  # `params` and `param_names` line up
        named = dict(model.named_parameters())
        assert all(named[n] is p for n, p in zip(group["param_names"], group["params"], strict=True))


@pytest.fixture
def trainer_factory(tmp_path):
    def make(model, **kwargs):
        args = MultiTaskTrainingArguments(
            output_dir=str(tmp_path / "out"), save_strategy="no", report_to="none", disable_tqdm=True, **kwargs
        )
        return MultiTaskTrainer(model=model, args=args, processing_class=model.tokenizer)

    return make


# ---------------------------------------------------------------- finding the parts of each architecture


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_find_encoder_layers_finds_the_block_stack(architecture):
    model = layered_model(architecture, num_layers=3)
    expected = model.backbone.transformer.layer if architecture == "distilbert" else model.backbone.encoder.layer
    assert find_encoder_layers(model.backbone) is expected


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_split_model_parts_by_name(architecture):
    model = layered_model(architecture, num_layers=3)
    parts = split_model_parts(model)
    assert set(parts.embeddings) == names_with_prefix(model, "backbone.embeddings.")
    assert "backbone.embeddings.word_embeddings.weight" in parts.embeddings
    assert [set(names) for names in parts.layers] == [layer_names(model, architecture, i) for i in range(3)]
    assert all(len(names) > 0 for names in parts.layers)
    assert parts.encoder_other == []  # no pooler: the backbone is built with add_pooling_layer=False
    assert set(parts.heads) == names_with_prefix(model, "heads.")
    assert set(parts.heads) == {f"heads.{t}.linear.{w}" for t in ("sentiment", "ner") for w in ("weight", "bias")}


def test_projection_goes_with_the_heads():
    tokenizer = tiny_tokenizer()
    config = MultiTaskConfig(
        encoder_config=tiny_encoder_config(vocab_size=len(tokenizer)), tasks=TASKS, projection_dim=16
    )
    parts = split_model_parts(MultiTaskModel(config))
    assert {"projection.weight", "projection.bias"} <= set(parts.heads)


def test_model_without_backbone_is_rejected():
    with pytest.raises(ValueError, match=r"Linear has no `backbone` submodule"):
        build_param_groups(torch.nn.Linear(2, 2), lr=LR)


# ---------------------------------------------------------------- form (a): per-layer decay


def test_layer_lrs_from_decay_formula():
    # index 0 = embeddings (lowest), index i + 1 = layer i, the top layer gets `lr` itself.
    assert layer_lrs_from_decay(1.0, 0.5, 3) == pytest.approx([0.125, 0.25, 0.5, 1.0])
    assert layer_lrs_from_decay(2e-5, 1.0, 2) == pytest.approx([2e-5] * 3)


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5])
def test_layer_lrs_from_decay_rejects_bad_decay(decay):
    with pytest.raises(ValueError, match=re.escape(f"`layer_lr_decay` must be in (0, 1], got {decay}.")):
        layer_lrs_from_decay(1e-3, decay, 2)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_decay_groups_membership_and_lrs(architecture):
    model = layered_model(architecture, num_layers=3)
    groups = build_param_groups(model, lr=LR, layer_lr_decay=DECAY, head_lr=HEAD_LR)
    merged = by_group(groups)
    assert set(merged) == {"embeddings", "layer_0", "layer_1", "layer_2", "heads"}
    assert merged["embeddings"]["names"] == names_with_prefix(model, "backbone.embeddings.")
    for i in range(3):
        assert merged[f"layer_{i}"]["names"] == layer_names(model, architecture, i)
    assert merged["heads"]["names"] == names_with_prefix(model, "heads.")
    # lr * decay ** (L - index): embeddings lowest, layer i at lr * decay ** (L - 1 - i), heads at head_lr.
    assert only_lr(merged["embeddings"]) == pytest.approx(LR * DECAY**3)
    for i in range(3):
        assert only_lr(merged[f"layer_{i}"]) == pytest.approx(LR * DECAY ** (3 - 1 - i))
    assert only_lr(merged["heads"]) == pytest.approx(HEAD_LR)
    assert_exact_cover(model, groups)


def test_no_decay_and_no_head_lr_means_one_lr_everywhere():
    model = layered_model()
    groups = build_param_groups(model, lr=LR)
    assert {group["lr"] for group in groups} == {LR}
    assert_exact_cover(model, groups)


# ---------------------------------------------------------------- form (b): explicit groups


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_explicit_groups_membership_and_lrs(architecture):
    model = layered_model(architecture, num_layers=4)
    spec = {
        "embeddings": 1e-6,
        "lower": {"layers": "0-1", "lr": 1e-5},
        "middle": {"layers": [2], "lr": 2e-5},
        "upper": {"layers": 3, "lr": 3e-5},
        "heads": {"lr": 1e-3},
    }
    groups = build_param_groups(model, lr=LR, layer_groups=spec)
    merged = by_group(groups)
    assert set(merged) == {"embeddings", "lower", "middle", "upper", "heads"}
    assert merged["embeddings"] == {"names": names_with_prefix(model, "backbone.embeddings."), "lrs": {1e-6}}
    assert merged["lower"] == {"names": layer_names(model, architecture, 0, 1), "lrs": {1e-5}}
    assert merged["middle"] == {"names": layer_names(model, architecture, 2), "lrs": {2e-5}}
    assert merged["upper"] == {"names": layer_names(model, architecture, 3), "lrs": {3e-5}}
    assert merged["heads"] == {"names": names_with_prefix(model, "heads."), "lrs": {1e-3}}
    assert_exact_cover(model, groups)


def test_explicit_groups_heads_default_to_head_lr():
    model = layered_model(num_layers=2)
    spec = {"embeddings": 1e-6, "lower": {"layers": "0", "lr": 1e-5}, "upper": {"layers": "1", "lr": 2e-5}}
    merged = by_group(build_param_groups(model, lr=LR, head_lr=HEAD_LR, layer_groups=spec))
    assert merged["heads"]["lrs"] == {HEAD_LR}
    assert "middle" not in merged


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"embeddings": 1e-6, "lower": {"layers": "0-1", "lr": 1e-5}, "upper": {"layers": "1-3", "lr": 2e-5}},
            "Layer 1 is in both 'lower' and 'upper'; give each layer one group.",
        ),
        (
            {"embeddings": 1e-6, "lower": {"layers": "0", "lr": 1e-5}, "upper": {"layers": "2-3", "lr": 2e-5}},
            "Encoder layers [1] belong to no group; cover 0..3 with lower/middle/upper.",
        ),
        (
            {"embeddings": 1e-6, "lower": {"layers": "0-3", "lr": 1e-5}, "top": {"layers": "3", "lr": 1e-4}},
            "Unknown layer groups ['top']; valid groups are ['embeddings', 'lower', 'middle', 'upper', 'heads'].",
        ),
        (
            {"embeddings": 1e-6, "lower": {"layers": "0-4", "lr": 1e-5}},
            "Layer group 'lower': layers [4] are outside 0..3.",
        ),
        (
            {"embeddings": 1e-6, "lower": {"layers": "first", "lr": 1e-5}},
            "Layer group 'lower': `layers` must be like '0-1', [0, 1] or 2, got 'first'.",
        ),
        (
            {"embeddings": 1e-6, "lower": {"layers": "0-3"}},
            "Layer group 'lower' needs `layers` and `lr`",
        ),
        (
            {"lower": {"layers": "0-3", "lr": 1e-5}},
            "Layer group 'embeddings' needs a learning rate, e.g. `embeddings: 1.0e-5`, got None.",
        ),
    ],
    ids=["layer-in-two-groups", "uncovered-layer", "unknown-group", "out-of-range", "bad-range", "no-lr", "no-emb"],
)
def test_explicit_groups_errors(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_param_groups(layered_model(num_layers=4), lr=LR, layer_groups=spec)


def test_parse_layer_range_forms():
    assert parse_layer_range("1-3", 4, "lower") == [1, 2, 3]
    assert parse_layer_range(" 2 ", 4, "lower") == [2]
    assert parse_layer_range([0, 3], 4, "lower") == [0, 3]
    assert parse_layer_range(0, 4, "lower") == [0]
    with pytest.raises(ValueError, match=re.escape("layers [3] are outside 0..2")):
        parse_layer_range("1-3", 3, "upper")


def test_both_forms_at_once_fail():
    spec = {"embeddings": 1e-6, "lower": {"layers": "0-1", "lr": 1e-5}}
    message = "Set either `layer_lr_decay` or `layer_lr_groups`, not both."
    with pytest.raises(ValueError, match=re.escape(message)):
        build_param_groups(layered_model(), lr=LR, layer_lr_decay=0.9, layer_groups=spec)
    with pytest.raises(ValueError, match=re.escape(message)):
        MultiTaskTrainingArguments(output_dir="unused", layer_lr_decay=0.9, layer_lr_groups=spec)


# ---------------------------------------------------------------- learning_rate_mapping


def test_learning_rate_mapping_overrides_matching_names():
    model = layered_model()
    groups = build_param_groups(
        model, lr=LR, layer_lr_decay=DECAY, lr_mapping={r"^heads\.ner\.": 0.1, r"word_embeddings": 0.2}
    )
    lr_of = {name: group["lr"] for group in groups for name in group["param_names"]}
    assert {n: lr for n, lr in lr_of.items() if lr == 0.1} == {
        "heads.ner.linear.weight": 0.1,
        "heads.ner.linear.bias": 0.1,
    }
    assert [n for n, lr in lr_of.items() if lr == 0.2] == ["backbone.embeddings.word_embeddings.weight"]
    assert lr_of["heads.sentiment.linear.weight"] == LR  # head_lr defaults to lr
    assert lr_of["backbone.embeddings.position_embeddings.weight"] == pytest.approx(LR * DECAY**2)
    assert_exact_cover(model, groups)


def test_learning_rate_mapping_regex_matching_nothing_fails():
    pattern = r"^heads\.topic\."  # the model has sentiment and ner heads only
    message = f"No parameters found matching the pattern {pattern!r} in `learning_rate_mapping`."
    with pytest.raises(ValueError, match=re.escape(message)):
        build_param_groups(layered_model(), lr=LR, lr_mapping={r"^heads\.ner\.": 1e-2, pattern: 1e-2})


def test_learning_rate_mapping_json_string_from_the_command_line():
    args = MultiTaskTrainingArguments(output_dir="unused", learning_rate_mapping='{"^heads": 0.01}')
    assert args.learning_rate_mapping == {"^heads": 0.01}
    with pytest.raises(ValueError, match=r"`learning_rate_mapping` must be a mapping or a JSON object string"):
        MultiTaskTrainingArguments(output_dir="unused", learning_rate_mapping="{not json")


# ---------------------------------------------------------------- weight decay, frozen parameters


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_bias_and_layernorm_get_no_weight_decay(architecture, trainer_factory):
    model = layered_model(architecture)
    decay_names = trainer_factory(model).get_decay_parameter_names(model)
    groups = build_param_groups(
        model, lr=LR, weight_decay=0.01, decay_parameter_names=decay_names, layer_lr_decay=DECAY
    )
    wd_of = {name: group["weight_decay"] for group in groups for name in group["param_names"]}
    no_decay = {n for n, wd in wd_of.items() if wd == 0.0}
    # Named by hand: every bias and every LayerNorm parameter (BERT `LayerNorm`, DistilBERT `*_layer_norm`).
    layer_norms = {n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    expected = {n for n in wd_of if n.endswith(".bias") or n.rsplit(".", 1)[0] in layer_norms}
    assert any("layer_norm" in n or "LayerNorm" in n for n in expected)
    assert no_decay == expected
    assert {wd for n, wd in wd_of.items() if n not in expected} == {0.01}
    assert wd_of["backbone.embeddings.word_embeddings.weight"] == 0.01
    for group in groups:  # each half is named after its decay
        assert group["name"].endswith("_no_decay") == (group["weight_decay"] == 0.0)
    assert_exact_cover(model, groups)


def test_zero_weight_decay_puts_everything_in_no_decay_groups():
    groups = build_param_groups(layered_model(), lr=LR, weight_decay=0.0)
    assert {group["weight_decay"] for group in groups} == {0.0}


def test_frozen_parameters_stay_in_groups_and_train_after_unfreezing():
    model = layered_model()
    frozen = names_with_prefix(model, "backbone.embeddings.")
    for name, param in model.named_parameters():
        param.requires_grad = name not in frozen
    groups = build_param_groups(model, lr=LR, layer_lr_decay=DECAY, head_lr=HEAD_LR)
    assert by_group(groups)["embeddings"]["names"] == frozen  # P17: frozen parameters are not dropped
    assert_exact_cover(model, groups)

    optimizer = torch.optim.AdamW(groups, weight_decay=0.1)
    batch = model.tokenizer(["the movie was good", "bad film"], padding=True, return_tensors="pt")
    targets = {"task_ids": torch.tensor([0, 0]), "labels": torch.tensor([1, 0])}

    def step():
        optimizer.zero_grad()
        model(**batch, **targets).loss.backward()
        optimizer.step()

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    step()
    assert all(torch.equal(before[n], model.get_parameter(n)) for n in frozen)  # no grad: skipped, even by wd
    assert not torch.equal(before["heads.sentiment.linear.weight"], model.heads.sentiment.linear.weight)

    for name in frozen:
        model.get_parameter(name).requires_grad = True
    step()
    assert not torch.equal(
        before["backbone.embeddings.word_embeddings.weight"],
        model.get_parameter("backbone.embeddings.word_embeddings.weight"),
    )


def test_group_table_lists_every_group():
    groups = build_param_groups(layered_model(), lr=LR, layer_lr_decay=DECAY, weight_decay=0.01)
    table = format_group_table(groups)
    assert len(table.splitlines()) == len(groups) + 1
    assert all(group["name"] in table for group in groups)


# ---------------------------------------------------------------- through the Trainer


def test_trainer_groups_follow_the_scheduler_each_from_its_own_lr(trainer_factory):
    model = layered_model()
    trainer = trainer_factory(
        model,
        learning_rate=LR,
        layer_lr_decay=DECAY,
        head_learning_rate=HEAD_LR,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        warmup_steps=0,
    )
    optimizer = trainer.create_optimizer()
    scheduler = trainer.create_scheduler(num_training_steps=10)
    initial = {group["name"]: group["lr"] for group in optimizer.param_groups}
    expected = {"embeddings": LR * DECAY**2, "layer_0": LR * DECAY, "layer_1": LR, "heads": HEAD_LR}
    assert set(initial) == {f"{g}{half}" for g in expected for half in ("", "_no_decay")}
    for name, lr in initial.items():
        assert lr == pytest.approx(expected[name.removesuffix("_no_decay")])

    optimizer.step()
    scheduler.step()
    # LambdaLR scales each group's own initial lr by one shared factor (P13): linear decay over 10 steps -> 0.9.
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(0.9 * initial[group["name"]])
    assert scheduler.get_last_lr() == pytest.approx([0.9 * lr for lr in initial.values()])


def test_trainer_keeps_a_user_optimizer(trainer_factory):
    model = layered_model()
    trainer = trainer_factory(model, layer_lr_decay=DECAY)
    mine = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer.optimizer = mine
    assert trainer.create_optimizer() is mine


@pytest.mark.parametrize(
    ("optim", "optimizer_class"),
    [("adamw_torch", torch.optim.AdamW), ("adafactor", Adafactor), ("sgd", torch.optim.SGD)],
)
def test_optim_choice_changes_the_class_and_keeps_the_groups(optim, optimizer_class, trainer_factory):
    model = layered_model()
    trainer = trainer_factory(
        model, optim=optim, learning_rate=LR, layer_lr_decay=DECAY, head_learning_rate=HEAD_LR, weight_decay=0.01
    )
    optimizer = trainer.create_optimizer()
    assert type(optimizer) is optimizer_class
    expected = build_param_groups(
        model,
        lr=LR,
        weight_decay=0.01,
        decay_parameter_names=trainer.get_decay_parameter_names(model),
        layer_lr_decay=DECAY,
        head_lr=HEAD_LR,
    )
    got = [(g["name"], g["lr"], g["weight_decay"], g["param_names"]) for g in optimizer.param_groups]
    assert got == [(g["name"], g["lr"], g["weight_decay"], g["param_names"]) for g in expected]

    # One real step: every group's parameters move (heads by more than the embeddings under decay).
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = model.tokenizer(["the movie was good", "bad film"], padding=True, return_tensors="pt")
    model(**batch, task_ids=torch.tensor([0, 0]), labels=torch.tensor([1, 0])).loss.backward()
    optimizer.step()
    for name in ("backbone.embeddings.word_embeddings.weight", "backbone.encoder.layer.0.output.dense.weight"):
        assert not torch.equal(before[name], model.get_parameter(name)), name
    assert not torch.equal(before["heads.sentiment.linear.weight"], model.heads.sentiment.linear.weight)

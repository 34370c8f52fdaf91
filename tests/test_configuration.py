"""MultiTaskConfig: validation, JSON round trip (task order, nested encoder config) and Auto-class registration."""

import json
import logging
import re

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import AutoConfig, AutoModel, BertConfig, DistilBertConfig, RobertaConfig

from mtl_hf import POOLING_MODES, TASK_TYPES, MultiTaskConfig, MultiTaskModel
from mtl_hf.testing import tiny_encoder_config

# Deliberately not alphabetical, with every task type and non-default loss weights (STYLE.md P8).
ORDERED_TASKS = [
    {"name": "zeta", "type": "classification", "labels": ["no", "yes", "maybe"], "loss_weight": 2.5},
    {"name": "alpha", "type": "regression", "loss_weight": 0.25},
    {"name": "mid", "type": "token_classification", "labels": ["O", "B-X", "I-X"]},
]
CANONICAL_TASKS = [
    {"name": "zeta", "type": "classification", "labels": ["no", "yes", "maybe"], "loss_weight": 2.5},
    {"name": "alpha", "type": "regression", "labels": [], "loss_weight": 0.25},
    {"name": "mid", "type": "token_classification", "labels": ["O", "B-X", "I-X"], "loss_weight": 1.0},
]


def make_config(**kwargs) -> MultiTaskConfig:
    kwargs.setdefault("encoder_config", tiny_encoder_config("bert"))
    kwargs.setdefault("tasks", ORDERED_TASKS)
    return MultiTaskConfig(**kwargs)


# ---------------------------------------------------------------- round trip


def test_round_trip_keeps_task_order_and_settings(tmp_path):
    config = make_config(
        pooling="max",
        projection_dim=16,
        normalize=True,
        head_dropout=0.2,
        max_seq_length=48,
        backbone_name_or_path="some/backbone",
    )
    assert config.tasks == CANONICAL_TASKS
    config.save_pretrained(tmp_path)

    raw = json.loads((tmp_path / "config.json").read_text())
    assert [task["name"] for task in raw["tasks"]] == ["zeta", "alpha", "mid"]  # a list, not a sorted dict
    assert raw["model_type"] == "mtl_hf"

    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is MultiTaskConfig
    assert loaded.task_names == ["zeta", "alpha", "mid"]
    assert loaded.tasks == CANONICAL_TASKS
    assert [loaded.task_id(name) for name in ("zeta", "alpha", "mid")] == [0, 1, 2]
    assert (loaded.pooling, loaded.projection_dim, loaded.normalize) == ("max", 16, True)
    assert (loaded.head_dropout, loaded.max_seq_length, loaded.backbone_name_or_path) == (0.2, 48, "some/backbone")
    assert loaded.embedding_dim == 16
    assert loaded.encoder_hidden_size == 32


@pytest.mark.parametrize(
    ("architecture", "config_class"),
    [("bert", BertConfig), ("distilbert", DistilBertConfig), ("roberta", RobertaConfig)],
)
def test_encoder_config_comes_back_as_its_own_class(tmp_path, architecture, config_class):
    config = make_config(encoder_config=tiny_encoder_config(architecture))
    assert type(config.encoder_config) is config_class
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded.encoder_config) is config_class
    assert loaded.encoder_config.to_dict() == config.encoder_config.to_dict()
    assert loaded.encoder_hidden_size == 32  # `hidden_size` for BERT/RoBERTa, `dim` for DistilBERT


def test_encoder_config_accepts_a_config_object():
    encoder = DistilBertConfig(**tiny_encoder_config("distilbert"))
    config = make_config(encoder_config=encoder)
    assert type(config.encoder_config) is DistilBertConfig
    assert config.encoder_config.n_layers == 2


def test_config_without_arguments_saves_and_loads(tmp_path):
    config = MultiTaskConfig()
    assert config.tasks == []
    assert config.task_names == []
    assert config.pooling == "mean"
    assert config.normalize is False
    assert type(config.encoder_config) is BertConfig
    assert config.embedding_dim == 768
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is MultiTaskConfig
    assert loaded.tasks == []
    assert type(loaded.encoder_config) is BertConfig


def test_unknown_config_keys_are_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        config = make_config(colour="red", pooling="cls")
    assert "MultiTaskConfig: dropping unknown keys ['colour']" in caplog.text
    assert "Valid keys:" in caplog.text and "'pooling'" in caplog.text
    assert not hasattr(config, "colour")
    assert "colour" not in config.to_dict()
    assert config.pooling == "cls"


def test_unknown_keys_in_config_json_are_dropped_on_load(tmp_path, caplog):
    make_config().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["added_by_a_newer_version"] = 1
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with caplog.at_level(logging.WARNING):
        loaded = AutoConfig.from_pretrained(tmp_path)
    assert "dropping unknown keys ['added_by_a_newer_version']" in caplog.text
    assert not hasattr(loaded, "added_by_a_newer_version")
    assert loaded.task_names == ["zeta", "alpha", "mid"]


def test_unknown_task_keys_are_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        config = make_config(tasks=[{"name": "a", "labels": ["x", "y"], "colour": "red"}])
    assert "Task 'a': ignoring unknown keys ['colour']" in caplog.text
    assert config.tasks == [{"name": "a", "type": "classification", "labels": ["x", "y"], "loss_weight": 1.0}]


def test_no_warning_for_a_clean_config(caplog):
    with caplog.at_level(logging.WARNING):
        make_config()
    assert "unknown keys" not in caplog.text


def test_labels_are_stored_as_strings_and_weights_as_floats():
    config = make_config(tasks=[{"name": "stars", "labels": [1, 2, 3], "loss_weight": 2}])
    assert config.tasks[0]["labels"] == ["1", "2", "3"]
    assert config.tasks[0]["loss_weight"] == 2.0 and isinstance(config.tasks[0]["loss_weight"], float)


# ---------------------------------------------------------------- validation

BAD_TASKS = [
    pytest.param(
        [{"name": "a", "type": "ranking", "labels": ["x", "y"]}],
        ValueError,
        f"Task 'a': `type` must be one of {TASK_TYPES}, got 'ranking'.",
        id="task-type",
    ),
    pytest.param(
        [{"name": "a", "type": "classification"}],
        ValueError,
        "Task 'a': `labels` must list at least 2 label names for type 'classification', got None.",
        id="missing-labels",
    ),
    pytest.param(
        [{"name": "a", "type": "token_classification", "labels": ["O"]}],
        ValueError,
        "Task 'a': `labels` must list at least 2 label names for type 'token_classification', got ['O'].",
        id="one-label",
    ),
    pytest.param(
        [{"name": "a", "labels": ["x", "x"]}],
        ValueError,
        "Task 'a': `labels` must be unique, got ['x', 'x'].",
        id="duplicate-labels",
    ),
    pytest.param(
        [{"name": "a", "type": "regression", "labels": ["x", "y"]}],
        ValueError,
        "Task 'a': a regression task has no `labels`, got ['x', 'y'].",
        id="regression-with-labels",
    ),
    pytest.param(
        [
            {"name": "a", "labels": ["x", "y"]},
            {"name": "b", "type": "regression"},
            {"name": "a", "type": "regression"},
        ],
        ValueError,
        "Task names must be unique, got duplicates ['a'] in ['a', 'b', 'a'].",
        id="duplicate-names",
    ),
    pytest.param(
        [{"name": "a", "labels": ["x", "y"], "loss_weight": -1.0}],
        ValueError,
        "Task 'a': `loss_weight` must be a number >= 0, got -1.0.",
        id="negative-loss-weight",
    ),
    pytest.param(
        [{"name": "a", "labels": ["x", "y"], "loss_weight": "2"}],
        ValueError,
        "Task 'a': `loss_weight` must be a number >= 0, got '2'.",
        id="string-loss-weight",
    ),
    pytest.param(
        [{"name": "a", "labels": ["x", "y"], "loss_weight": True}],
        ValueError,
        "Task 'a': `loss_weight` must be a number >= 0, got True.",
        id="bool-loss-weight",
    ),
    pytest.param(
        [{"name": "my-task", "labels": ["x", "y"]}],
        ValueError,
        "Task #0: `name` must be a non-empty identifier (letters, digits, underscores), got 'my-task'.",
        id="name-with-dash",
    ),
    pytest.param(
        [{"name": "ok", "type": "regression"}, {"name": "", "type": "regression"}],
        ValueError,
        "Task #1: `name` must be a non-empty identifier (letters, digits, underscores), got ''.",
        id="empty-name",
    ),
    pytest.param(
        [{"type": "regression"}],
        ValueError,
        "Task #0: `name` must be a non-empty identifier (letters, digits, underscores), got None.",
        id="missing-name",
    ),
    pytest.param(
        ["sst2"],
        TypeError,
        "Task #0 must be a dict like {'name': ..., 'type': ...}, got str.",
        id="task-not-a-dict",
    ),
]


@pytest.mark.parametrize(("tasks", "error", "message"), BAD_TASKS)
def test_bad_tasks_raise_naming_field_and_value(tasks, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make_config(tasks=tasks)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "median"}, f"`pooling` must be one of {POOLING_MODES}, got 'median'."),
        ({"projection_dim": 0}, "`projection_dim` must be a positive integer or None, got 0."),
        ({"head_dropout": 1.0}, "`head_dropout` must be in [0, 1), got 1.0."),
        ({"head_dropout": -0.1}, "`head_dropout` must be in [0, 1), got -0.1."),
        ({"max_seq_length": 0}, "`max_seq_length` must be a positive integer or None, got 0."),
    ],
)
def test_bad_settings_raise_naming_field_value_and_choices(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_config(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"normalize": "yes"}, "normalize"),
        ({"projection_dim": "8"}, "projection_dim"),
        ({"pooling": 3}, "pooling"),
        ({"tasks": {"sst2": 2, "mnli": 3}}, "tasks"),  # the dict form loses its order on save (P8)
    ],
)
def test_wrongly_typed_settings_are_rejected(kwargs, field):
    with pytest.raises(StrictDataclassFieldValidationError, match=f"Validation error for field '{field}'"):
        make_config(**kwargs)


def test_integer_dropout_is_accepted():  # YAML writes `head_dropout: 0` as an int
    assert make_config(head_dropout=0).head_dropout == 0


def test_task_lookup_helpers():
    config = make_config()
    assert config.task_id("mid") == 2
    assert config.get_task("alpha") == CANONICAL_TASKS[1]
    with pytest.raises(
        ValueError, match=re.escape("Unknown task 'beta'. This model has tasks ['zeta', 'alpha', 'mid'].")
    ):
        config.task_id("beta")


# ---------------------------------------------------------------- registration


def test_auto_config_for_model_returns_multitask_config():
    config = AutoConfig.for_model("mtl_hf", tasks=ORDERED_TASKS, encoder_config=tiny_encoder_config("bert"))
    assert type(config) is MultiTaskConfig
    assert config.task_names == ["zeta", "alpha", "mid"]


def test_auto_model_from_config_returns_multitask_model():
    model = AutoModel.from_config(make_config(encoder_config=tiny_encoder_config("distilbert")))
    assert type(model) is MultiTaskModel
    assert list(model.heads) == ["zeta", "alpha", "mid"]
    assert model.backbone.config.model_type == "distilbert"


def test_saved_config_carries_auto_map(tmp_path):
    make_config().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["auto_map"]["AutoConfig"] == "configuration_mtl.MultiTaskConfig"

"""`mtl-hf train | evaluate | predict | encode` in-process through `mtl_hf.cli.main`, on tiny CSV + CoNLL data and a
tiny mtl_hf checkpoint; every bad run must fail before training, with a clear message and no output folder."""

import contextlib
import io
import json

import numpy as np
import pytest
import yaml
from transformers import AutoModel

from mtl_hf import MultiTaskModel, load_model
from mtl_hf.cli import main
from mtl_hf.run_config import load_run_config, parse_overrides
from mtl_hf.testing import (
    TINY_SENTIMENT_ROWS,
    changed_parameters,
    save_tiny_checkpoint,
    tiny_task_entries,
    write_tiny_csv,
    write_tiny_run_config,
)

TEXTS = ["john lives in paris", "the movie was good fun"]


# ---------------------------------------------------------------- helpers


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny mtl_hf checkpoint whose tasks and labels match `tiny_task_entries()`."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, checkpoint):
    """`mtl-hf train run.yaml --num_train_epochs 1 --learning_rate 5e-3` (the YAML says 2 epochs at 1e-2)."""
    folder = tmp_path_factory.mktemp("run")
    tasks = tiny_task_entries()
    tasks[0]["loss_weight"] = 3.0  # the checkpoint says 1.0: this run's config must win
    config = write_tiny_run_config(folder, checkpoint, tasks=tasks)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["train", str(config), "--num_train_epochs", "1", "--learning_rate", "5e-3"])
    return {"code": code, "stdout": stdout.getvalue(), "config": config, "out": folder / "out"}


# ---------------------------------------------------------------- mtl-hf train


def test_train_writes_model_results_and_config(trained):
    assert trained["code"] == 0
    out = trained["out"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "eval_results.json", "run_config.yaml"} <= {
        p.name for p in out.iterdir()
    }
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_sentiment_accuracy", "eval_sentiment_loss", "eval_ner_f1", "eval_ner_loss", "eval_average"} <= set(
        results
    )
    assert "train_loss" in results
    assert f"{results['eval_average']:.4f}" in trained["stdout"]
    assert "Saved model, tokenizer, eval_results.json and run_config.yaml" in trained["stdout"]


def test_command_line_overrides_win_over_the_yaml(trained):
    saved = yaml.safe_load((trained["out"] / "run_config.yaml").read_text())
    assert saved["num_train_epochs"] == 1
    assert saved["learning_rate"] == pytest.approx(5e-3)
    assert saved["per_device_train_batch_size"] == 4  # from the YAML
    assert [task["name"] for task in saved["tasks"]] == ["sentiment", "ner"]
    assert saved["tasks"][1]["labels"] == ["O", "B-PER", "B-LOC"]
    results = json.loads((trained["out"] / "eval_results.json").read_text())
    assert results["epoch"] == pytest.approx(1.0)  # one epoch was trained, not the YAML's two


def test_train_changes_the_weights_and_the_model_reloads(trained, checkpoint):
    start = load_model(checkpoint)
    reloaded = AutoModel.from_pretrained(trained["out"])
    assert isinstance(reloaded, MultiTaskModel)
    assert reloaded.config.task_names == ["sentiment", "ner"]
    assert reloaded.tokenizer is not None
    assert [task["loss_weight"] for task in reloaded.config.tasks] == [3.0, 1.0]
    before, after = start.state_dict(), reloaded.state_dict()
    assert set(before) == set(after)
    assert changed_parameters(before, after) == set(before)  # nothing unchanged


def test_evaluate_reproduces_the_saved_results(trained, tmp_path, capsys):
    results = json.loads((trained["out"] / "eval_results.json").read_text())
    code, out, err = run(["evaluate", trained["out"], trained["config"], "--output_dir", tmp_path / "eval"], capsys)
    assert code == 0, err
    rows = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.split()[:2] in (["sentiment", "eval"], ["ner", "eval"])
    }
    assert f"{results['eval_sentiment_accuracy']:.4f}" in rows["sentiment"]
    assert f"{results['eval_ner_f1']:.4f}" in rows["ner"]
    assert f"eval_average (mean of each task's main metric): {results['eval_average']:.4f}" in out


def test_predict_prints_json_lines(trained, tmp_path, capsys):
    code, out, _ = run(["predict", trained["out"], *TEXTS], capsys)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    expected = load_model(trained["out"]).predict(TEXTS)
    assert [line["text"] for line in lines] == TEXTS
    assert [{k: v for k, v in line.items() if k != "text"} for line in lines] == json.loads(json.dumps(expected))
    assert lines[0]["sentiment"]["label"] in ("negative", "positive")
    assert [word for word, _ in lines[0]["ner"]["tags"]] == ["john", "lives", "in", "paris"]

    texts_file = tmp_path / "texts.txt"
    texts_file.write_text("mary visited london\n\ngreat acting\n")
    code, out, _ = run(["predict", trained["out"], "--tasks", "ner", "--input-file", texts_file], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [line["text"] for line in lines] == ["mary visited london", "great acting"]
    assert all(set(line) == {"text", "ner"} for line in lines)


def test_predict_unknown_task_fails(trained, capsys):
    code, _, err = run(["predict", trained["out"], "good", "--tasks", "topic"], capsys)
    assert code == 2
    assert "Unknown task 'topic'. This model has tasks ['sentiment', 'ner']" in err


def test_encode_saves_npy(trained, tmp_path, capsys):
    target = tmp_path / "x.npy"
    code, out, _ = run(["encode", *TEXTS, "--model", trained["out"], "--output", target], capsys)
    assert code == 0
    embeddings = np.load(target)
    assert embeddings.shape == (2, 32)
    np.testing.assert_allclose(embeddings, load_model(trained["out"]).encode(TEXTS), rtol=1e-5, atol=1e-6)
    assert f"Saved embeddings of shape (2, 32) to {target}" in out


# ---------------------------------------------------------------- configuration errors: exit 2, nothing written


def test_parse_overrides_forms():
    # Values stay text; load_run_config types them by field (so `--save_strategy no` is not YAML's False).
    assert parse_overrides(["--num_train_epochs", "1", "--learning_rate=5e-3", "--fp16", "--task-sampling", "x"]) == {
        "num_train_epochs": "1",
        "learning_rate": "5e-3",
        "fp16": "true",
        "task_sampling": "x",
    }
    with pytest.raises(ValueError, match=r"Expected `--key value`, got 'stray'."):
        parse_overrides(["stray"])


def test_override_text_is_typed_by_field(tmp_path, checkpoint):
    config = write_tiny_run_config(tmp_path, checkpoint)
    overrides = parse_overrides(
        ["--save_strategy", "no", "--fp16", "false", "--num_train_epochs", "3", "--freeze", "{layers_below: 1}"]
    )
    model_args, _, training_args = load_run_config(config, overrides)
    assert training_args.save_strategy == "no" and training_args.fp16 is False
    assert training_args.num_train_epochs == 3 and model_args.freeze == {"layers_below": 1}


def test_unquoted_yaml_no_stays_the_string_no(tmp_path, checkpoint):
    config = write_tiny_run_config(tmp_path, checkpoint)
    config.write_text(config.read_text().replace("save_strategy: 'no'", "save_strategy: no"))
    assert "save_strategy: no\n" in config.read_text()
    assert load_run_config(config)[2].save_strategy == "no"


def test_yaml_strings_are_coerced_to_field_types(tmp_path, checkpoint):
    config = write_tiny_run_config(tmp_path, checkpoint, learning_rate="2e-5")
    _, data_args, training_args = load_run_config(config, {"num_train_epochs": "3", "head_learning_rate": "1e-3"})
    assert training_args.learning_rate == 2e-5
    assert training_args.num_train_epochs == 3.0
    assert training_args.head_learning_rate == 1e-3
    assert data_args.base_dir == str(tmp_path)


@pytest.mark.parametrize("where", ["command_line", "yaml"])
def test_unknown_key_lists_valid_keys_and_suggests(tmp_path, checkpoint, capsys, where):
    if where == "yaml":
        config, extra = write_tiny_run_config(tmp_path, checkpoint, lerning_rate=1e-3), []
    else:
        config, extra = write_tiny_run_config(tmp_path, checkpoint), ["--lerning_rate", "1e-3"]
    code, _, err = run(["train", config, *extra], capsys)
    assert code == 2
    assert "Unknown config keys ['lerning_rate'] (did you mean: lerning_rate -> learning_rate)" in err
    assert "Valid keys: [" in err and "'learning_rate'" in err and "'tasks'" in err and "'layer_lr_decay'" in err
    assert not (tmp_path / "out").exists()


def test_missing_config_file(tmp_path, capsys):
    code, _, err = run(["train", tmp_path / "nope.yaml", "--output_dir", tmp_path / "out"], capsys)
    assert code == 2
    assert f"Run config {tmp_path / 'nope.yaml'} does not exist." in err
    assert not (tmp_path / "out").exists()


def tasks_with(index, **changes):
    tasks = tiny_task_entries()
    tasks[index].update(changes)
    return tasks


BAD_RUNS = {
    "missing-data-file": (
        lambda: tasks_with(0, data_files={"train": "missing.csv"}),
        None,
        "Task 'sentiment': data file for split 'train' not found: ",
    ),
    "missing-column": (
        lambda: tasks_with(0, text_columns=["sentence"]),
        None,
        "Task 'sentiment', split 'train': column 'sentence' not found; the columns are ['text', 'label']",
    ),
    "label-outside-the-set": (
        tiny_task_entries,
        lambda folder: write_tiny_csv(folder / "sentiment_train.csv", TINY_SENTIMENT_ROWS + [("so so", "neutral")]),
        "label value(s) in 'label' are not in the task's labels: ['neutral']. Valid labels: ['negative', 'positive']",
    ),
    "empty-split": (
        tiny_task_entries,
        lambda folder: write_tiny_csv(folder / "sentiment_validation.csv", []),
        "Task 'sentiment', split 'validation' has no rows",
    ),
    "unknown-task-key": (
        lambda: tasks_with(0, text_column="text"),
        None,
        "Task 'sentiment': unknown keys ['text_column']. Valid keys: [",
    ),
    "task-not-in-checkpoint": (
        lambda: (
            tiny_task_entries()
            + [{"name": "topic", "labels": ["negative", "positive"], "data_files": {"train": "sentiment_train.csv"}}]
        ),
        None,
        "Task 'topic' is in the config but checkpoint ",
    ),
    "num-labels-mismatch": (
        lambda: tasks_with(0, labels=["negative", "neutral", "positive"]),
        None,
        "num_labels mismatch",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_fails_before_training(case, tmp_path, checkpoint, capsys):
    make_tasks, corrupt, message = BAD_RUNS[case]
    config = write_tiny_run_config(tmp_path, checkpoint, tasks=make_tasks())
    if corrupt is not None:
        corrupt(tmp_path)
    code, out, err = run(["train", config], capsys)
    assert code == 2, err
    assert message in err
    assert not (tmp_path / "out").exists()
    assert "'loss'" not in out  # no training step was logged


def test_evaluate_needs_a_validation_or_test_split(trained, tmp_path, checkpoint, capsys):
    tasks = tasks_with(0, data_files={"train": "sentiment_train.csv"})[:1]
    config = write_tiny_run_config(tmp_path, checkpoint, tasks=tasks)
    code, _, err = run(["evaluate", trained["out"], config, "--output_dir", tmp_path / "eval"], capsys)
    assert code == 2
    assert "None of the configured tasks has a validation or test split to evaluate on." in err


def test_evaluate_task_the_model_lacks(trained, tmp_path, checkpoint, capsys):
    tasks = [
        {"name": "topic", "labels": ["negative", "positive"], "data_files": {"validation": "sentiment_train.csv"}}
    ]
    config = write_tiny_run_config(tmp_path, checkpoint, tasks=tasks)
    code, _, err = run(["evaluate", trained["out"], config, "--output_dir", tmp_path / "eval"], capsys)
    assert code == 2
    assert "Task 'topic' is in the config but checkpoint " in err and "its tasks are ['sentiment', 'ner']" in err


def test_num_labels_mismatch_names_both_label_sets(tmp_path, checkpoint, capsys):
    config = write_tiny_run_config(
        tmp_path, checkpoint, tasks=tasks_with(0, labels=["negative", "neutral", "positive"])
    )
    _, _, err = run(["train", config], capsys)
    assert "has type 'classification' with 2 labels ['negative', 'positive']" in err
    assert "with 3 labels ['negative', 'neutral', 'positive']" in err


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tasks": ["sentiment"]}, "A task entry must be a mapping like {name: ..., type: ...}, got str."),
        ({"num_train_epochs": "many"}, "`num_train_epochs` expects <class 'float'>, got 'many'."),
        (
            {"task_sampling": "uniform"},
            "`task_sampling` must be one of ['proportional', 'temperature', 'round_robin']",
        ),
        ({"layer_lr_decay": 1.5}, "`layer_lr_decay` must be in (0, 1], got 1.5."),
    ],
    ids=["task-not-a-mapping", "not-a-number", "unknown-sampling", "bad-decay"],
)
def test_bad_values_exit_2_without_a_traceback(tmp_path, checkpoint, capsys, settings, message):
    code, _, err = run(["train", write_tiny_run_config(tmp_path, checkpoint, **settings)], capsys)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_no_tasks(tmp_path, checkpoint, capsys):
    code, _, err = run(["train", write_tiny_run_config(tmp_path, checkpoint, tasks=[])], capsys)
    assert code == 2
    assert "The run config lists no `tasks`; add at least one task entry." in err
    assert not (tmp_path / "out").exists()


def test_task_metrics_from_yaml_are_checked_before_training(tmp_path, checkpoint, capsys):
    """A task's `metrics:` entry is loaded when the trainer is built: a bad name fails early, with no output."""
    tasks = tiny_task_entries()
    tasks[0]["metrics"] = ["no_such_metric_xyz"]
    config = write_tiny_run_config(tmp_path, checkpoint, tasks=tasks)
    code, _, err = run(["train", config], capsys)
    assert code == 2
    assert "no_such_metric_xyz" in err
    assert not (tmp_path / "out").exists()


def test_task_metrics_from_yaml_replace_the_defaults(tmp_path, checkpoint, capsys):
    """`metrics: [classification]` on the NER task scores it as sentence classification would: keys change."""
    tasks = tiny_task_entries()
    tasks[0]["metrics"] = ["regression"]  # pearson/spearman/mse on class ids: unusual, but proves the override
    config = write_tiny_run_config(tmp_path, checkpoint, tasks=tasks, num_train_epochs=1)
    code, _, err = run(["train", config], capsys)
    assert code == 0, err[-3000:]
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert "eval_sentiment_spearman" in results and "eval_sentiment_accuracy" not in results
    assert "eval_ner_f1" in results

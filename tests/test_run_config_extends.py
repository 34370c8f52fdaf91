"""Run configs that `extend` others, and the task selectors `only_tasks` / `train_tasks`.

`extends: other.yaml` (relative to the extending file) is read first and overridden key by key; relative data paths
start from the folder of the file that lists the tasks. `only_tasks` builds the model with those heads only;
`train_tasks` trains those tasks and evaluates the others. Unknown names fail before anything is built or written.
"""

import json
import re

import pytest
import torch
import yaml
from transformers import BertModel

from mtl_hf.cli import main
from mtl_hf.data import parse_task_configs
from mtl_hf.run_config import load_run_config, read_yaml_config
from mtl_hf.testing import (
    tiny_encoder_config,
    tiny_task_entries,
    tiny_tokenizer,
    write_tiny_run_config,
    write_tiny_task_files,
)
from mtl_hf.training import run_training

TOPIC_CSV = "text,label\njohn won the game,sports\nthe city lost,politics\nnew science,science\nold song,sports\n"


def task_entries():
    """The tiny run's sentiment and NER tasks, then a topic task."""
    topic = {
        "name": "topic",
        "labels": ["sports", "politics", "science"],
        "data_files": {"train": "topic.csv", "validation": "topic.csv"},
    }
    return [*tiny_task_entries(), topic]


def write_data(folder):
    write_tiny_task_files(folder)
    (folder / "topic.csv").write_text(TOPIC_CSV)


def write_yaml(path, **values):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """A tiny plain BERT encoder folder (no mtl_hf heads): a run builds its heads from the configured tasks."""
    path = tmp_path_factory.mktemp("backbone")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    config = BertModel.config_class(**tiny_encoder_config("bert", vocab_size=len(tokenizer)))
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# ---------------------------------------------------------------- extends


def test_child_overrides_parent_and_inherits_tasks(tmp_path):
    write_data(tmp_path)
    write_yaml(
        tmp_path / "base.yaml",
        tasks=task_entries(),
        learning_rate=1.0e-2,
        num_train_epochs=3,
        freeze={"layers_below": 1},
        output_dir=str(tmp_path / "base_out"),
    )
    child = write_yaml(
        tmp_path / "child.yaml", extends="base.yaml", learning_rate=5.0e-3, only_tasks=["ner"], freeze="backbone"
    )
    model_args, data_args, training_args = load_run_config(child)
    assert training_args.learning_rate == 5.0e-3  # child
    assert training_args.num_train_epochs == 3  # parent
    assert training_args.output_dir == str(tmp_path / "base_out")
    assert model_args.freeze == "backbone"  # a whole value is replaced, not merged
    assert data_args.only_tasks == ["ner"]
    assert [task["name"] for task in data_args.tasks] == ["sentiment", "ner", "topic"]
    assert data_args.base_dir == str(tmp_path)
    tasks = parse_task_configs(data_args.tasks, base_dir=data_args.base_dir)
    assert tasks[0].data_files == {
        "train": str(tmp_path / "sentiment_train.csv"),
        "validation": str(tmp_path / "sentiment_validation.csv"),
    }
    assert "extends" not in read_yaml_config(child)
    # Command-line overrides win over both files.
    _, _, training_args = load_run_config(child, {"learning_rate": "1e-3", "num_train_epochs": "1"})
    assert (training_args.learning_rate, training_args.num_train_epochs) == (1e-3, 1)


def test_three_levels_each_overriding_the_one_it_extends(tmp_path):
    write_yaml(tmp_path / "a.yaml", tasks=task_entries(), learning_rate=1.0, num_train_epochs=1, seed=1)
    write_yaml(tmp_path / "b.yaml", extends="a.yaml", learning_rate=2.0, num_train_epochs=2)
    write_yaml(tmp_path / "c.yaml", extends="b.yaml", learning_rate=3.0)
    _, _, training_args = load_run_config(tmp_path / "c.yaml")
    assert (training_args.learning_rate, training_args.num_train_epochs, training_args.seed) == (3.0, 2, 1)


def test_relative_data_paths_follow_the_file_that_lists_the_tasks(tmp_path):
    """A parent's tasks resolve against the parent's folder; tasks a child re-lists, against the child's."""
    write_data(tmp_path)
    write_yaml(tmp_path / "base.yaml", tasks=task_entries())
    inherits = write_yaml(tmp_path / "experiments" / "inherits.yaml", extends="../base.yaml", learning_rate=1e-3)
    _, data_args, _ = load_run_config(inherits)
    assert data_args.base_dir == str(tmp_path)
    assert parse_task_configs(data_args.tasks, data_args.base_dir)[1].data_files["train"] == str(
        tmp_path / "ner_train.conll"
    )

    own_folder = tmp_path / "experiments" / "own"
    relists = write_yaml(own_folder / "relists.yaml", extends="../../base.yaml", tasks=task_entries()[:1])
    write_data(own_folder)
    _, data_args, _ = load_run_config(relists)
    assert data_args.base_dir == str(own_folder)
    tasks = parse_task_configs(data_args.tasks, data_args.base_dir)
    assert [task.name for task in tasks] == ["sentiment"]
    assert tasks[0].data_files["train"] == str(own_folder / "sentiment_train.csv")


def test_extends_cycle_raises(tmp_path):
    write_yaml(tmp_path / "a.yaml", extends="b.yaml", tasks=task_entries())
    write_yaml(tmp_path / "b.yaml", extends="a.yaml", learning_rate=1e-3)
    with pytest.raises(ValueError, match=re.escape(f"Run config {tmp_path / 'a.yaml'} extends itself")):
        load_run_config(tmp_path / "a.yaml")
    write_yaml(tmp_path / "self.yaml", extends="self.yaml", tasks=task_entries())
    with pytest.raises(ValueError, match=re.escape(f"Run config {tmp_path / 'self.yaml'} extends itself")):
        read_yaml_config(tmp_path / "self.yaml")


def test_extends_missing_parent_raises(tmp_path, capsys):
    child = write_yaml(tmp_path / "child.yaml", extends="missing.yaml", tasks=task_entries())
    with pytest.raises(FileNotFoundError, match=re.escape(f"Run config {tmp_path / 'missing.yaml'} does not exist.")):
        load_run_config(child)
    assert main(["train", str(child), "--output_dir", str(tmp_path / "out")]) == 2
    assert f"Run config {tmp_path / 'missing.yaml'} does not exist." in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- only_tasks / train_tasks


def test_only_tasks_and_train_tasks(tmp_path, backbone):
    """Three configured tasks; the model gets two heads; one is trained, the other only evaluated."""
    write_data(tmp_path)
    base = write_tiny_run_config(tmp_path, backbone, task_entries(), filename="base.yaml", num_train_epochs=1)
    config = write_yaml(
        tmp_path / "run.yaml", extends=base.name, only_tasks=["ner", "sentiment"], train_tasks=["sentiment"]
    )
    result = run_training(*load_run_config(config))

    assert result.model.config.task_names == ["sentiment", "ner"]  # `tasks` order, topic left out
    assert list(result.trainer.train_dataset) == ["sentiment"]
    assert list(result.trainer.eval_dataset) == ["sentiment", "ner"]
    logged = {key for entry in result.trainer.state.log_history for key in entry if key.startswith("loss_")}
    assert logged == {"loss_sentiment"}
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert {"eval_sentiment_accuracy", "eval_ner_f1", "train_loss"} <= set(results)
    assert not any("topic" in key for key in results)
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert [task["name"] for task in saved["tasks"]] == ["sentiment", "ner"]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            {"only_tasks": ["sentiment", "topics"]},
            "`only_tasks` names tasks ['topics'] that are not in `tasks` ['sentiment', 'ner', 'topic'].",
        ),
        (
            {"train_tasks": ["nerr"]},
            "`train_tasks` names tasks ['nerr'] that are not in `tasks` ['sentiment', 'ner', 'topic'].",
        ),
        (
            {"only_tasks": ["sentiment"], "train_tasks": ["ner"]},
            "`train_tasks` names tasks ['ner'] that `only_tasks` ['sentiment'] leaves out.",
        ),
    ],
    ids=["only-unknown", "train-unknown", "train-outside-only"],
)
def test_unknown_task_names_fail_before_training(tmp_path, backbone, capsys, selection, message):
    write_data(tmp_path)
    config = write_tiny_run_config(tmp_path, backbone, task_entries(), num_train_epochs=1, **selection)
    code = main(["train", str(config)])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert not (tmp_path / "out").exists()
    assert "'loss'" not in captured.out

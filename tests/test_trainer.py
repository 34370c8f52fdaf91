"""MultiTaskTrainer on tiny in-process task datasets: loss weighting, per-task logging, gradient accumulation,
saving and reloading, per-task evaluation with best-model selection, and bad input."""

import copy

import pytest
import torch
from datasets import Dataset
from transformers import AutoModel

from mtl_hf.data import MultiTaskDataCollator
from mtl_hf.modeling import MultiTaskConfig, MultiTaskModel
from mtl_hf.testing import (
    changed_parameters,
    parameter_snapshot,
    tiny_encoder_config,
    tiny_model,
    tiny_tokenizer,
    tiny_training_args,
)
from mtl_hf.trainer import MultiTaskTrainer

TASKS = [
    {"name": "sentiment", "labels": ["negative", "positive"], "loss_weight": 2.0},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "B-LOC"], "loss_weight": 0.5},
    {"name": "score", "type": "regression", "loss_weight": 3.0},
]
WEIGHTS = {task["name"]: task["loss_weight"] for task in TASKS}

SENTIMENT = [
    ("the movie was good fun", 1),
    ("bad boring film", 0),
    ("great acting and a great plot", 1),
    ("awful plot", 0),
    ("i love the song", 1),
    ("i hate the game", 0),
    ("happy happy fun", 1),
    ("the film was sad and boring", 0),
]
NER = [
    (["john", "lives", "in", "paris"], ["B-PER", "O", "O", "B-LOC"]),
    (["mary", "visited", "london"], ["B-PER", "O", "B-LOC"]),
    (["john", "visited", "the", "city"], ["B-PER", "O", "O", "O"]),
    (["mary", "works", "at", "google", "in", "london"], ["B-PER", "O", "O", "O", "O", "B-LOC"]),
    (["paris", "is", "old"], ["B-LOC", "O", "O"]),
    (["the", "team", "played", "in", "paris"], ["O", "O", "O", "O", "B-LOC"]),
    (["john", "won"], ["B-PER", "O"]),
    (["london", "lost", "the", "match"], ["B-LOC", "O", "O", "O"]),
]
SCORE = [
    ("happy song", 0.9),
    ("sad song", 0.1),
    ("great game", 0.8),
    ("awful game", 0.2),
    ("new film", 0.6),
    ("old boring film", 0.3),
    ("love", 1.0),
    ("hate", 0.0),
]


# ---------------------------------------------------------------- helpers


def make_model(tasks=TASKS, seed: int = 0) -> MultiTaskModel:
    """A tiny BERT model without any dropout (encoder and heads), so that train-mode losses are deterministic."""
    tokenizer = tiny_tokenizer()
    encoder = tiny_encoder_config("bert", vocab_size=len(tokenizer))
    encoder.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = MultiTaskModel(MultiTaskConfig(encoder_config=encoder, tasks=tasks, head_dropout=0.0))
    model.tokenizer = tokenizer
    return model


def sentence_dataset(tokenizer, rows, task_id: int) -> Dataset:
    encoded = tokenizer([text for text, _ in rows])
    return Dataset.from_dict({**encoded, "labels": [label for _, label in rows], "task_ids": [task_id] * len(rows)})


def ner_dataset(tokenizer, rows, task_id: int, labels=("O", "B-PER", "B-LOC")) -> Dataset:
    encoded = tokenizer([words for words, _ in rows], is_split_into_words=True)
    tag_ids = []
    for i, (_, tags) in enumerate(rows):
        # The word-level tiny tokenizer makes one token per word: [CLS] w1 .. wn [SEP].
        assert len(encoded["input_ids"][i]) == len(tags) + 2
        tag_ids.append([-100] + [labels.index(tag) for tag in tags] + [-100])
    return Dataset.from_dict({**encoded, "labels": tag_ids, "task_ids": [task_id] * len(rows)})


def task_datasets(tokenizer, task_ids=None) -> dict[str, Dataset]:
    ids = task_ids or {"sentiment": 0, "ner": 1, "score": 2}
    return {
        "sentiment": sentence_dataset(tokenizer, SENTIMENT, ids["sentiment"]),
        "ner": ner_dataset(tokenizer, NER, ids["ner"]),
        "score": sentence_dataset(tokenizer, SCORE, ids["score"]),
    }


def all_outputs(model, texts) -> dict[str, torch.Tensor]:
    """Every head's logits and the sentence embeddings for `texts` (all heads on all rows, eval mode)."""
    model.eval()
    batch = model.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return {**out.task_logits, "embedding": out.sentence_embedding}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run on the three tasks, shared by the tests that inspect its results."""
    output_dir = tmp_path_factory.mktemp("trained")
    model = make_model()
    initial = parameter_snapshot(model)
    datasets = task_datasets(model.tokenizer)
    args = tiny_training_args(
        output_dir, num_train_epochs=2, learning_rate=5e-3, per_device_eval_batch_size=8, eval_strategy="epoch"
    )
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=datasets, eval_dataset=datasets)
    trainer.train()
    return {"trainer": trainer, "initial": initial, "output_dir": output_dir, "datasets": datasets}


# ---------------------------------------------------------------- (1) the loss is the weighted sum of task losses


def test_compute_loss_on_a_mixed_batch_is_the_weighted_sum_of_task_losses(tmp_path, tokenizer):
    model = make_model().eval()
    datasets = task_datasets(tokenizer)
    collator = MultiTaskDataCollator(tokenizer)
    rows = {name: [datasets[name][i] for i in range(3)] for name in datasets}
    mixed = collator([rows["sentiment"][0], rows["ner"][0], rows["score"][0], rows["sentiment"][1], rows["ner"][1]])
    trainer = MultiTaskTrainer(model=model, args=tiny_training_args(tmp_path), processing_class=tokenizer)

    loss, outputs = trainer.compute_loss(model, dict(mixed), return_outputs=True)

    task_losses = model(**mixed).task_losses
    assert set(task_losses) == {"sentiment", "ner", "score"}
    expected = sum(WEIGHTS[name] * task_losses[name] for name in task_losses)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(trainer.compute_loss(model, dict(mixed)), expected)
    assert not torch.allclose(loss, sum(task_losses.values()))  # the weights matter
    assert set(outputs.task_losses) == {"sentiment", "ner", "score"}
    # Each task's part equals the loss of a batch holding only that task's rows.
    for name, task_rows in (
        ("sentiment", rows["sentiment"][:2]),
        ("ner", rows["ner"][:2]),
        ("score", [rows["score"][0]]),
    ):
        alone = model(**collator(task_rows)).task_losses[name]
        torch.testing.assert_close(task_losses[name], alone, rtol=1e-5, atol=1e-6)


def test_compute_loss_without_labels_names_the_missing_columns(tmp_path, tokenizer):
    model = make_model()
    trainer = MultiTaskTrainer(model=model, args=tiny_training_args(tmp_path), processing_class=tokenizer)
    batch = tokenizer(["good film"], return_tensors="pt")
    with pytest.raises(ValueError, match=r"batches need `labels` and `task_ids` columns \(got \['attention_mask'"):
        trainer.compute_loss(model, dict(batch))


# ---------------------------------------------------------------- (2) per-task losses are logged


def test_train_logs_each_task_loss(trained):
    history = trained["trainer"].state.log_history
    train_logs = [entry for entry in history if "loss" in entry]
    assert len(train_logs) == trained["trainer"].state.global_step == 12  # 3 tasks x 2 batches x 2 epochs
    counts = dict.fromkeys(WEIGHTS, 0)
    for entry in train_logs:
        task_keys = [key for key in entry if key.startswith("loss_")]
        # One task per batch and a log every step: exactly one task's loss, and the total is its weighted value.
        assert len(task_keys) == 1, entry
        name = task_keys[0].removeprefix("loss_")
        counts[name] += 1
        assert entry["loss"] == pytest.approx(WEIGHTS[name] * entry[task_keys[0]], rel=1e-3, abs=1e-4)
    # Proportional sampling: every batch of every task once per epoch (8 rows / batch 4 = 2 batches per epoch).
    assert counts == {"sentiment": 4, "ner": 4, "score": 4}
    assert not any(key.startswith("loss_") for entry in history if "eval_loss" in entry for key in entry)


def test_mixed_task_batches_log_every_task_of_the_batch(tmp_path, tokenizer):
    model = make_model()
    args = tiny_training_args(
        tmp_path, max_steps=2, learning_rate=5e-3, mixed_task_batches=True, per_device_train_batch_size=12
    )
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=task_datasets(tokenizer))
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 2
    for entry in logs:
        parts = {key.removeprefix("loss_"): value for key, value in entry.items() if key.startswith("loss_")}
        assert len(parts) >= 2, entry  # 12 rows drawn from 3 tasks of 8
        assert entry["loss"] == pytest.approx(sum(WEIGHTS[name] * v for name, v in parts.items()), rel=1e-3)


# ---------------------------------------------------------------- (3) gradient accumulation (P3)


def test_gradient_accumulation_matches_one_big_batch(tmp_path, tokenizer):
    """SGD, no dropout, constant lr: batch 8 once == two accumulated micro-batches of 4 of the same task."""
    base = make_model(tasks=TASKS[:1])
    data = {"sentiment": sentence_dataset(tokenizer, SENTIMENT, 0)}
    results = {}
    for batch_size, accumulation in ((8, 1), (4, 2)):
        model = copy.deepcopy(base)
        args = tiny_training_args(
            tmp_path / f"bs{batch_size}",
            max_steps=1,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=0.5,
            lr_scheduler_type="constant",
            warmup_steps=0,
        )
        trainer = MultiTaskTrainer(model=model, args=args, train_dataset=data)
        trainer.train()
        results[accumulation] = (parameter_snapshot(model), trainer.state.log_history[0])

    (big, big_log), (accumulated, accumulated_log) = results[1], results[2]
    initial = parameter_snapshot(base)
    assert changed_parameters(initial, big)
    for name in big:
        torch.testing.assert_close(accumulated[name], big[name], rtol=1e-4, atol=1e-6, msg=name)
    # The reported loss is the mean over the micro-batches (not their sum), i.e. the loss of the whole batch.
    assert accumulated_log["loss"] == pytest.approx(big_log["loss"], rel=1e-5)
    assert accumulated_log["loss_sentiment"] == pytest.approx(big_log["loss_sentiment"], rel=1e-3)
    assert big_log["loss"] == pytest.approx(WEIGHTS["sentiment"] * big_log["loss_sentiment"], rel=1e-3)


# ---------------------------------------------------------------- (4) weights change; save and reload


def test_train_changes_every_trainable_weight(trained):
    model = trained["trainer"].model
    for name, before in trained["initial"].items():
        assert not torch.equal(before, model.get_parameter(name)), f"Parameter {name} has not changed."


def test_saved_model_reloads_with_identical_outputs(trained, tmp_path):
    trainer = trained["trainer"]
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = AutoModel.from_pretrained(tmp_path / "saved")
    assert isinstance(reloaded, MultiTaskModel)
    assert reloaded.config.task_names == ["sentiment", "ner", "score"]
    assert [t["loss_weight"] for t in reloaded.config.tasks] == [2.0, 0.5, 3.0]
    texts = ["john lives in paris", "the movie was good fun", "sad song"]
    expected, got = all_outputs(trainer.model, texts), all_outputs(reloaded, texts)
    assert set(got) == {"sentiment", "ner", "score", "embedding"}
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------- (5) per-task evaluation and the best model


def test_evaluate_reports_every_task_and_the_average(trained):
    trainer = trained["trainer"]
    # The epoch evaluations logged during training carry the per-task keys.
    evals = [entry for entry in trainer.state.log_history if "eval_average" in entry]
    assert [entry["epoch"] for entry in evals] == [1.0, 2.0]
    assert all({"eval_sentiment_accuracy", "eval_ner_f1", "eval_score_spearman"} <= set(e) for e in evals)

    metrics = trainer.evaluate()
    for prefix in ("eval_sentiment_", "eval_ner_", "eval_score_"):
        assert f"{prefix}loss" in metrics
    assert {"eval_sentiment_accuracy", "eval_ner_f1", "eval_score_spearman"} <= set(metrics)
    primary = [metrics["eval_sentiment_accuracy"], metrics["eval_ner_f1"], metrics["eval_score_spearman"]]
    assert metrics["eval_average"] == pytest.approx(sum(primary) / 3)
    losses = [metrics[f"eval_{name}_loss"] for name in ("sentiment", "ner", "score")]
    assert metrics["eval_loss"] == pytest.approx(sum(losses) / 3)
    assert metrics["eval_average"] == pytest.approx(evals[-1]["eval_average"])  # no training since

    test_metrics = trainer.evaluate({"ner": trained["datasets"]["ner"]}, metric_key_prefix="test")
    assert "test_ner_f1" in test_metrics and "test_sentiment_accuracy" not in test_metrics
    assert test_metrics["test_average"] == pytest.approx(test_metrics["test_ner_f1"])


def test_load_best_model_at_end_uses_the_average(tmp_path, tokenizer):
    """Evaluating on flipped sentiment labels makes later epochs score worse, so the best model is not the last."""
    model = make_model()
    datasets = task_datasets(tokenizer)
    flipped = {"sentiment": sentence_dataset(tokenizer, [(text, 1 - label) for text, label in SENTIMENT], 0)}
    args = tiny_training_args(
        tmp_path,
        num_train_epochs=3,
        learning_rate=1e-2,
        per_device_eval_batch_size=8,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        logging_steps=50,
    )
    assert (args.metric_for_best_model, args.greater_is_better) == ("average", True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=datasets, eval_dataset=flipped)
    trainer.train()

    evals = [entry for entry in trainer.state.log_history if "eval_average" in entry]
    assert len(evals) == 3
    averages = [entry["eval_average"] for entry in evals]
    best_step = evals[averages.index(max(averages))]["step"]
    assert best_step < trainer.state.global_step  # else the checks below could not tell best from last
    assert trainer.state.best_metric == pytest.approx(max(averages))
    assert trainer.state.best_model_checkpoint == str(tmp_path / f"checkpoint-{best_step}")
    # The model in memory is the best checkpoint's, and scores what that checkpoint scored.
    best_state = AutoModel.from_pretrained(trainer.state.best_model_checkpoint).state_dict()
    assert all(torch.equal(best_state[k], v) for k, v in trainer.model.state_dict().items())
    assert trainer.evaluate()["eval_average"] == pytest.approx(max(averages))


# ---------------------------------------------------------------- (6) bad input


def test_train_dataset_with_a_task_the_model_lacks(tmp_path, tokenizer):
    model = tiny_model(TASKS[:2])
    datasets = {
        "sentiment": sentence_dataset(tokenizer, SENTIMENT, 0),
        "topic": sentence_dataset(tokenizer, SENTIMENT, 1),
    }
    message = (
        r"`train_dataset` has tasks \['topic'\] that the model does not have; model tasks: \['sentiment', 'ner'\]."
    )
    with pytest.raises(ValueError, match=message):
        MultiTaskTrainer(model=model, args=tiny_training_args(tmp_path), train_dataset=datasets)


def test_empty_task_dataset(tmp_path, tokenizer):
    empty = sentence_dataset(tokenizer, SENTIMENT, 0).select([])
    with pytest.raises(ValueError, match=r"`eval_dataset` for task 'sentiment' is empty"):
        MultiTaskTrainer(model=tiny_model(TASKS), args=tiny_training_args(tmp_path), eval_dataset={"sentiment": empty})


def test_task_ids_that_do_not_follow_the_model_task_order(tmp_path, tokenizer):
    swapped = task_datasets(tokenizer, task_ids={"sentiment": 2, "ner": 1, "score": 0})
    message = r"`train_dataset` for task 'sentiment' has task_ids=2 but the model's id for it is 0"
    with pytest.raises(ValueError, match=message):
        MultiTaskTrainer(model=tiny_model(TASKS), args=tiny_training_args(tmp_path), train_dataset=swapped)


def test_task_ids_wrong_after_the_first_row(tmp_path, tokenizer):
    """Two tasks tokenised into one dataset: the rows with the other task's id must be caught too."""
    data = sentence_dataset(tokenizer, SENTIMENT, 0)
    data = data.map(lambda row, i: {"task_ids": 0 if i < 4 else 2}, with_indices=True)
    message = r"`train_dataset` for task 'sentiment' has task_ids=2 but the model's id for it is 0"
    with pytest.raises(ValueError, match=message):
        MultiTaskTrainer(model=tiny_model(TASKS), args=tiny_training_args(tmp_path), train_dataset={"sentiment": data})


@pytest.mark.parametrize("role", ["train_dataset", "eval_dataset"])
def test_dataset_that_is_not_a_dict(tmp_path, tokenizer, role):
    data = sentence_dataset(tokenizer, SENTIMENT, 0)
    with pytest.raises(TypeError, match=rf"`{role}` must be a dict {{task_name: Dataset}}, got Dataset."):
        MultiTaskTrainer(model=tiny_model(TASKS), args=tiny_training_args(tmp_path), **{role: data})


def test_evaluate_needs_a_dict(trained):
    with pytest.raises(ValueError, match=r"MultiTaskTrainer.evaluate needs `\{task_name: Dataset\}`."):
        trained["trainer"].evaluate(trained["datasets"]["sentiment"])


def test_not_a_multitask_model(tmp_path):
    with pytest.raises(TypeError, match=r"MultiTaskTrainer needs a MultiTaskModel, got Linear."):
        MultiTaskTrainer(model=torch.nn.Linear(2, 2), args=tiny_training_args(tmp_path))


def test_plain_training_arguments_are_rejected(tmp_path):
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match=r"`args` must be MultiTaskTrainingArguments, got TrainingArguments."):
        MultiTaskTrainer(model=tiny_model(TASKS), args=TrainingArguments(output_dir=str(tmp_path)))


def test_unknown_task_sampling_strategy(tmp_path):
    with pytest.raises(
        ValueError, match=r"`task_sampling` must be one of \['proportional', 'temperature', 'round_robin'\]"
    ):
        tiny_training_args(tmp_path, task_sampling="uniform")

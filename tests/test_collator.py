"""MultiTaskDataCollator: padding, task_ids and label shapes/dtypes for single-task and mixed batches."""

from __future__ import annotations

import torch
from datasets import Dataset, DatasetDict

from mtl_hf.data import MultiTaskDataCollator, TaskDataConfig, preprocess_task
from mtl_hf.testing import tiny_tokenizer

# Task ids follow conftest's `model`: 0 topic, 1 sentiment, 2 ner, 3 similarity.
TOPIC, SENTIMENT, NER, SIMILARITY = range(4)


def row(text: str, label, task_id: int) -> dict:
    """One preprocessed row, as `preprocess_task` makes it."""
    encoded = tiny_tokenizer()(text)
    if isinstance(label, list):  # one tag per word -> one per token ([CLS] ... [SEP])
        label = [-100, *label, -100]
        assert len(label) == len(encoded["input_ids"])
    return {**encoded, "labels": label, "task_ids": task_id}


def test_classification_batch():
    tokenizer = tiny_tokenizer()
    batch = MultiTaskDataCollator(tokenizer)([row("the movie was good", 1, SENTIMENT), row("bad", 0, SENTIMENT)])
    assert batch["input_ids"].shape == (2, 6)
    assert batch["input_ids"][1, 3:].tolist() == [tokenizer.pad_token_id] * 3
    assert batch["attention_mask"].tolist() == [[1] * 6, [1, 1, 1, 0, 0, 0]]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 0]
    assert batch["task_ids"].dtype == torch.long and batch["task_ids"].tolist() == [SENTIMENT] * 2
    if "token_type_ids" in batch:
        assert batch["token_type_ids"].shape == (2, 6)


def test_regression_batch():
    batch = MultiTaskDataCollator(tiny_tokenizer())([row("a", 4.5, SIMILARITY), row("a film", 0.0, SIMILARITY)])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [4.5, 0.0]
    assert batch["labels"].shape == (2,)


def test_token_batch_pads_labels_with_ignore_index():
    batch = MultiTaskDataCollator(tiny_tokenizer())(
        [row("john lives in paris", [1, 0, 0, 3], NER), row("mary", [1], NER)]
    )
    assert batch["labels"].dtype == torch.long
    assert batch["labels"].tolist() == [[-100, 1, 0, 0, 3, -100], [-100, 1, -100, -100, -100, -100]]


def test_pad_to_multiple_of_pads_inputs_and_token_labels():
    collator = MultiTaskDataCollator(tiny_tokenizer(), pad_to_multiple_of=8)
    batch = collator([row("john lives in paris", [1, 0, 0, 3], NER), row("mary", [1], NER)])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 8)
    assert batch["labels"][0, 6:].tolist() == [-100, -100]
    assert collator([row("good", 1, SENTIMENT)])["input_ids"].shape == (1, 8)


def test_mixed_with_token_rows_puts_sentence_labels_in_column_zero():
    features = [row("john lives", [1, 0], NER), row("good movie", 1, SENTIMENT), row("the film", 2, TOPIC)]
    labels = MultiTaskDataCollator(tiny_tokenizer())(features)["labels"]
    assert labels.dtype == torch.long and labels.shape == (3, 4)
    assert labels.tolist() == [[-100, 1, 0, -100], [1, -100, -100, -100], [2, -100, -100, -100]]


def test_mixed_with_token_and_regression_rows_is_float():
    labels = MultiTaskDataCollator(tiny_tokenizer())([row("john", [1], NER), row("a film", 3.5, SIMILARITY)])["labels"]
    assert labels.dtype == torch.float32
    assert labels.tolist() == [[-100.0, 1.0, -100.0, -100.0], [3.5, -100.0, -100.0, -100.0]]


def test_mixed_sentence_tasks_are_one_dimensional():
    collator = MultiTaskDataCollator(tiny_tokenizer())
    both = collator([row("good", 1, SENTIMENT), row("a film", 2.5, SIMILARITY)])["labels"]
    assert both.dtype == torch.float32 and both.tolist() == [1.0, 2.5]
    classes = collator([row("good", 1, SENTIMENT), row("the game", 0, TOPIC)])
    assert classes["labels"].dtype == torch.long and classes["task_ids"].tolist() == [SENTIMENT, TOPIC]


def test_left_padding_pads_token_labels_on_the_left():
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    batch = MultiTaskDataCollator(tokenizer)([row("john lives", [1, 0], NER), row("mary", [1], NER)])
    assert batch["attention_mask"][1].tolist() == [0, 1, 1, 1]
    assert batch["labels"][1].tolist() == [-100, -100, 1, -100]


def test_torch_formatted_rows():
    tokenizer = tiny_tokenizer()
    task = TaskDataConfig.from_dict({"name": "s", "type": "regression", "hub": {"path": "unused"}})
    splits = DatasetDict({"train": Dataset.from_dict({"text": ["good", "a bad film"], "label": [1.0, 2.0]})})
    dataset = preprocess_task(task, splits, tokenizer, 3, 16)["train"].with_format("torch")
    batch = MultiTaskDataCollator(tokenizer)([dataset[0], dataset[1]])
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [1.0, 2.0]
    assert batch["task_ids"].tolist() == [3, 3]


def test_batches_run_through_the_model(model):
    """The collated shapes are what `MultiTaskModel.forward` expects, single-task and mixed."""
    collator = MultiTaskDataCollator(tiny_tokenizer())
    single = collator([row("john lives in paris", [1, 0, 0, 3], NER), row("mary", [1], NER)])
    mixed = collator([row("john lives", [1, 0], NER), row("good movie", 1, SENTIMENT), row("a film", 3.5, SIMILARITY)])
    for batch in (single, mixed):
        output = model(**batch)
        assert torch.isfinite(output.loss)
    assert set(model(**mixed).task_losses) == {"ner", "sentiment", "similarity"}

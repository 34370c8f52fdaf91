"""preprocess_task / build_datasets: output columns, label ids, sub-token alignment, pairs, task ids."""

from __future__ import annotations

import contextlib
from pathlib import Path

import datasets
import pytest
from datasets import Dataset, DatasetDict
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mtl_hf.data import MultiTaskDatasets, TaskDataConfig, align_tags, build_datasets, preprocess_task
from mtl_hf.modeling import MultiTaskConfig
from mtl_hf.testing import bert_style_tokenizer, tiny_tokenizer

DEMO_DATA = Path(__file__).resolve().parents[1] / "mtl_hf" / "demo_data"


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


def make_wordpiece(token_type_ids: bool = True) -> PreTrainedTokenizerFast:
    """WordPiece over a tiny vocabulary, so `johnson` -> `john ##son` and `paris` -> `par ##is`."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    words = ["john", "##son", "lives", "in", "par", "##is", "new", "york", "visited", "the", "city"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if token_type_ids else ["input_ids", "attention_mask"]
    return bert_style_tokenizer(backend, model_input_names=inputs)


@pytest.fixture(scope="module")
def wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    """A BERT-like WordPiece tokenizer that returns `token_type_ids`."""
    return make_wordpiece()


def hub_task(**entry) -> TaskDataConfig:
    """A config whose data we pass in directly (the `hub` source is never loaded here)."""
    return TaskDataConfig.from_dict({"name": "t", "hub": {"path": "unused/unused"}, **entry})


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def model_columns(tokenizer) -> set[str]:
    """The columns a preprocessed split must hold, exactly."""
    optional = {"token_type_ids"} if "token_type_ids" in tokenizer.model_input_names else set()
    return {"input_ids", "attention_mask", "labels", "task_ids"} | optional


def ner_splits() -> DatasetDict:
    return DatasetDict(
        {
            "train": Dataset.from_dict(
                {"tokens": [["johnson", "lives", "in", "paris"]], "tags": [["B-PER", "O", "O", "B-LOC"]]}
            )
        }
    )


def test_classification_columns_labels_and_task_ids():
    task = hub_task(labels=["sports", "politics"], label_column="topic")
    splits = DatasetDict(
        {
            "train": Dataset.from_dict(
                {"text": ["the game", "the vote", "x"], "topic": ["politics", "sports", "sports"], "extra": [1, 2, 3]}
            )
        }
    )
    out = preprocess_task(task, splits, tiny_tokenizer(), task_id=3, max_length=16)["train"]
    assert set(out.column_names) == model_columns(tiny_tokenizer())
    assert out["labels"] == [1, 0, 0]
    assert out["task_ids"] == [3, 3, 3]
    assert out[0]["input_ids"][0] == tiny_tokenizer().cls_token_id


def test_label_map_and_regression():
    sst = hub_task(labels=["negative", "positive"], label_map={0: "negative", 1: "positive"})
    splits = DatasetDict({"train": Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]})})
    assert preprocess_task(sst, splits, tiny_tokenizer(), 0, 16)["train"]["labels"] == [1, 0]
    sts = hub_task(type="regression", text_columns=["a", "b"], label_column="score")
    splits = DatasetDict({"train": Dataset.from_dict({"a": ["x"], "b": ["y"], "score": ["3.5"]})})
    out = preprocess_task(sts, splits, tiny_tokenizer(), 1, 16)["train"]
    assert out["labels"] == [3.5] and isinstance(out[0]["labels"], float)


def test_pair_inputs_get_token_type_ids(wordpiece_tokenizer):
    task = hub_task(type="regression", text_columns=["s1", "s2"], label_column="score")
    splits = DatasetDict({"train": Dataset.from_dict({"s1": ["john lives"], "s2": ["in paris"], "score": [4.0]})})
    out = preprocess_task(task, splits, wordpiece_tokenizer, 0, 32)["train"]
    assert set(out.column_names) == {"input_ids", "token_type_ids", "attention_mask", "labels", "task_ids"}
    tokens = wordpiece_tokenizer.convert_ids_to_tokens(out[0]["input_ids"])
    assert tokens == ["[CLS]", "john", "lives", "[SEP]", "in", "par", "##is", "[SEP]"]
    assert out[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_no_token_type_ids_when_the_tokenizer_has_none():
    task = hub_task(type="regression", text_columns=["s1", "s2"], label_column="score")
    splits = DatasetDict({"train": Dataset.from_dict({"s1": ["john lives"], "s2": ["in paris"], "score": [4.0]})})
    out = preprocess_task(task, splits, make_wordpiece(token_type_ids=False), 0, 32)["train"]
    assert set(out.column_names) == {"input_ids", "attention_mask", "labels", "task_ids"}


def test_token_labels_first_subtoken_only(wordpiece_tokenizer):
    task = hub_task(type="token_classification", labels=NER_LABELS)
    row = preprocess_task(task, ner_splits(), wordpiece_tokenizer, 2, 32)["train"][0]
    tokens = wordpiece_tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert tokens == ["[CLS]", "john", "##son", "lives", "in", "par", "##is", "[SEP]"]
    assert row["labels"] == [-100, 1, -100, 0, 0, 3, -100, -100]
    assert row["task_ids"] == 2


def test_token_labels_all_subtokens_use_inside_tags(wordpiece_tokenizer):
    task = hub_task(type="token_classification", labels=NER_LABELS, label_all_subtokens=True)
    row = preprocess_task(task, ner_splits(), wordpiece_tokenizer, 0, 32)["train"][0]
    #                        [CLS] john ##son(I-PER) lives in  par  ##is(I-LOC) [SEP]
    assert row["labels"] == [-100, 1, 2, 0, 0, 3, 4, -100]


def test_b_tag_without_inside_tag_keeps_its_own_id():
    # transformers' run_ner behaviour: with no I-ORG in the label set, continuations keep B-ORG.
    labels = ["O", "B-ORG", "B-PER", "I-PER"]
    assert align_tags([1, 2], [None, 0, 0, 1, 1, None], inside={0: 0, 1: 1, 2: 3, 3: 3}) == [-100, 1, 1, 2, 3, -100]
    task = hub_task(type="token_classification", labels=labels, label_all_subtokens=True)
    splits = DatasetDict({"train": Dataset.from_dict({"tokens": [["x"]], "tags": [["B-ORG"]]})})
    assert preprocess_task(task, splits, tiny_tokenizer(), 0, 8)["train"][0]["labels"] == [-100, 1, -100]


def test_truncation_keeps_labels_aligned(wordpiece_tokenizer):
    task = hub_task(type="token_classification", labels=NER_LABELS)
    row = preprocess_task(task, ner_splits(), wordpiece_tokenizer, 0, max_length=4)["train"][0]
    assert len(row["input_ids"]) == len(row["labels"]) == 4
    assert row["labels"] == [-100, 1, -100, -100]


def test_preprocess_needs_labels():
    with pytest.raises(ValueError, match=r"`labels` are unknown; run `load_task_splits\(task\)` first"):
        preprocess_task(hub_task(), DatasetDict(), tiny_tokenizer(), 0, 8)


def test_build_datasets_on_demo_data_in_task_order():
    entered = []

    @contextlib.contextmanager
    def main_process_first():
        entered.append(True)
        yield

    entries = [
        {"name": "topic", "data_files": {"train": "topic_train.csv", "validation": "topic_validation.csv"}},
        {
            "name": "ner",
            "type": "token_classification",
            "data_files": {"train": "ner_train.conll", "validation": "ner_validation.conll"},
        },
        {
            "name": "sentiment",
            "labels": ["negative", "positive"],
            "data_files": {"train": "sentiment_train.csv"},
            "max_train_samples": 50,
        },
    ]
    tasks = [TaskDataConfig.from_dict(e, base_dir=DEMO_DATA) for e in entries]
    result = build_datasets(tasks, tiny_tokenizer(), max_length=32, main_process_first=main_process_first)
    assert isinstance(result, MultiTaskDatasets)
    assert list(result.train) == ["topic", "ner", "sentiment"]
    assert list(result.validation) == ["topic", "ner"] and result.test == {}
    assert len(entered) == 3
    for task_id, (name, dataset) in enumerate(result.train.items()):
        assert set(dataset["task_ids"]) == {task_id}, name
        assert set(dataset.column_names) == model_columns(tiny_tokenizer())
    assert result.train["sentiment"].num_rows == 50
    assert tasks[0].labels == ["business", "politics", "science", "sports"]  # inferred
    assert tasks[1].labels == ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"]
    ner_row = result.train["ner"][0]
    assert len(ner_row["labels"]) == len(ner_row["input_ids"])
    config = MultiTaskConfig(tasks=[task.model_task_spec() for task in tasks])
    assert config.get_task("ner")["labels"] == tasks[1].labels


def test_build_datasets_rejects_duplicate_names():
    with pytest.raises(ValueError, match=r"Task names must be unique, got duplicates \['a'\]"):
        build_datasets([hub_task(name="a"), hub_task(name="a")], tiny_tokenizer(), 8)

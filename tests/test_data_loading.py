"""TaskDataConfig parsing and load_task_splits: every file format, the checks, and the real benchmark files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
import yaml

from mtl_hf.data import TaskDataConfig, load_task_splits
from mtl_hf.modeling import MultiTaskConfig

SHARED_DATA = Path("/work/shared/data")


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path, monkeypatch):
    """Keep the `datasets` Arrow cache of the tiny test files out of the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def task(tmp_path: Path, **entry) -> TaskDataConfig:
    return TaskDataConfig.from_dict({"name": "t", **entry}, base_dir=tmp_path)


# ---------------------------------------------------------------------------------------------- TaskDataConfig


def test_from_dict_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown keys \['delimiter'\]\. Valid keys: \['name', 'type', 'labels'"):
        TaskDataConfig.from_dict({"name": "t", "data_files": {"train": "x.csv"}, "delimiter": ";"})


def test_from_dict_resolves_relative_paths_and_fills_defaults(tmp_path):
    absolute = str(tmp_path / "other" / "dev.csv")
    config = task(tmp_path, data_files={"train": "data/train.csv", "validation": absolute}, splits={"test": None})
    assert config.data_files == {"train": str(tmp_path / "data" / "train.csv"), "validation": absolute}
    assert (config.text_columns, config.label_column) == (["text"], "label")
    assert config.splits == {"train": "train", "validation": "validation", "test": None}
    token = task(tmp_path, type="token_classification", data_files={"train": "a.conll"})
    assert (token.text_columns, token.label_column) == (["tokens"], "tags")


def test_model_task_spec_feeds_the_model_config(tmp_path):
    tasks = [
        task(tmp_path, labels=["neg", "pos"], loss_weight=2, data_files={"train": "a.csv"}),
        TaskDataConfig.from_dict(
            {"name": "sts", "type": "regression", "text_columns": ["s1", "s2"], "hub": {"path": "x/y"}}
        ),
    ]
    specs = [t.model_task_spec() for t in tasks]
    assert specs == [
        {"name": "t", "type": "classification", "labels": ["neg", "pos"], "loss_weight": 2.0},
        {"name": "sts", "type": "regression", "labels": [], "loss_weight": 1.0},
    ]
    assert MultiTaskConfig(tasks=specs).task_names == ["t", "sts"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "multilabel"}, "`type` must be one of"),
        ({"text_columns": ["a", "b", "c"]}, "`text_columns` must name 1 column, or 2 for sentence pairs"),
        ({"type": "regression", "labels": ["a", "b"]}, "a regression task takes no `labels`"),
        ({"labels": ["a", "a"]}, "at least 2 distinct names"),
        ({"hub": {"path": "x"}}, "give exactly one of `data_files`"),
        ({"splits": {"dev": "dev"}}, r"unknown `splits` roles \['dev'\]"),
        ({"format": "xml"}, "`format` must be one of"),
        ({"max_train_samples": 0}, "`max_train_samples` must be a positive integer"),
    ],
)
def test_invalid_entries_name_the_problem(entry, message):
    with pytest.raises(ValueError, match=message):
        TaskDataConfig.from_dict({"name": "t", "data_files": {"train": "a.csv"}, **entry})


def test_model_task_spec_needs_labels_first(tmp_path):
    with pytest.raises(ValueError, match=r"call `load_task_splits\(task\)` first"):
        task(tmp_path, data_files={"train": "a.csv"}).model_task_spec()


# ---------------------------------------------------------------------------------------------- formats


def test_csv_with_label_inference(tmp_path):
    write(tmp_path / "train.csv", 'text,label\n"good, really",pos\nbad,neg\nfine,pos\n')
    write(tmp_path / "validation.csv", "text,label\nawful,neg\n")
    config = task(tmp_path, data_files={"train": "train.csv", "validation": "validation.csv"})
    splits = load_task_splits(config)
    assert list(splits) == ["train", "validation"]
    assert splits["train"]["text"] == ["good, really", "bad", "fine"]
    assert config.labels == ["neg", "pos"]  # inferred, sorted


def test_tsv_with_label_map_for_integer_labels(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\nit 's great \t1\nit 's dull \t0\n")
    config = task(
        tmp_path,
        text_columns=["sentence"],
        labels=["negative", "positive"],
        label_map={0: "negative", 1: "positive"},
        data_files={"train": "train.tsv"},
    )
    splits = load_task_splits(config)
    assert splits["train"]["label"] == [1, 0]
    assert splits["train"]["sentence"][0] == "it 's great "


def test_custom_delimiter_no_header_and_extra_columns(tmp_path):
    write(tmp_path / "train.txt", 'g\t1\t4.5\tA "quoted\tB\ng\t2\t1.0\tC\tD\textra\tcols\n')
    config = task(
        tmp_path,
        type="regression",
        text_columns=["s1", "s2"],
        label_column="score",
        format="tsv",
        reader={"column_names": ["genre", "id", "score", "s1", "s2"], "usecols": [0, 1, 2, 3, 4], "quoting": 3},
        data_files={"train": "train.txt"},
    )
    train = load_task_splits(config)["train"]
    assert train["s1"] == ['A "quoted', "C"]
    assert train["score"] == [4.5, 1.0]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_lines(tmp_path, suffix):
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    write(tmp_path / f"train{suffix}", "\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_task_splits(task(tmp_path, data_files={"train": f"train{suffix}"}))["train"].num_rows == 2


def test_parquet(tmp_path):
    path = tmp_path / "train.parquet"
    datasets.Dataset.from_dict({"text": ["a", "b"], "label": ["x", "y"]}).to_parquet(str(path))
    assert load_task_splits(task(tmp_path, data_files={"train": "train.parquet"}))["train"]["text"] == ["a", "b"]


def test_conll_sentences_docstart_and_whitespace_separators(tmp_path):
    write(tmp_path / "train.conll", "-DOCSTART- O\n\nJohn B-PER\nlives O\n\t\nin O\nNew B-LOC\nYork I-LOC\n")
    config = task(tmp_path, type="token_classification", data_files={"train": "train.conll"})
    train = load_task_splits(config)["train"]
    assert train["tokens"] == [["John", "lives"], ["in", "New", "York"]]
    assert train["tags"] == [["B-PER", "O"], ["O", "B-LOC", "I-LOC"]]
    assert config.labels == ["B-LOC", "B-PER", "I-LOC", "O"]


def test_conll_four_columns_tab_delimited(tmp_path):
    write(tmp_path / "a.txt", "EU\tNNP\tB-NP\tB-ORG\nrejects\tVBZ\tB-VP\tO\n\n")
    config = task(
        tmp_path,
        type="token_classification",
        labels=["O", "B-ORG"],
        format="conll",
        reader={"delimiter": "\t"},
        data_files={"train": "a.txt"},
    )
    assert load_task_splits(config)["train"]["tags"] == [["B-ORG", "O"]]


def test_conll_malformed_line_names_file_and_line(tmp_path):
    path = write(tmp_path / "train.conll", "John B-PER\nlives O\n\nbroken\n")
    config = task(tmp_path, type="token_classification", data_files={"train": "train.conll"})
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 4: malformed CoNLL line 'broken'"):
        load_task_splits(config)


def test_label_text_coarse_latin1(tmp_path):
    write(tmp_path / "train.label", "NUM:dist How far is it ?\nHUM:ind Who was caf\xe9 ?\n\n", encoding="latin-1")
    config = task(
        tmp_path,
        format="label_text",
        reader={"label_transform": "coarse", "encoding": "latin-1"},
        data_files={"train": "train.label"},
    )
    train = load_task_splits(config)["train"]
    assert train["label"] == ["NUM", "HUM"]
    assert train["text"] == ["How far is it ?", "Who was caf\xe9 ?"]


def test_label_text_line_without_separator(tmp_path):
    path = write(tmp_path / "t.label", "NUM:dist How far ?\nNOSEPARATOR\n")
    config = task(tmp_path, format="label_text", data_files={"train": "t.label"})
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 2: expected `LABEL text`"):
        load_task_splits(config)


def test_unknown_extension_asks_for_format(tmp_path):
    write(tmp_path / "train.dat", "x\n")
    with pytest.raises(ValueError, match="cannot infer the file format .* set `format`"):
        load_task_splits(task(tmp_path, data_files={"train": "train.dat"}))


def test_unknown_reader_option_for_line_formats(tmp_path):
    write(tmp_path / "a.conll", "a O\n")
    config = task(tmp_path, type="token_classification", reader={"sep": ";"}, data_files={"train": "a.conll"})
    with pytest.raises(ValueError, match=r"unknown `reader` options \['sep'\] for format 'conll'"):
        load_task_splits(config)


# ---------------------------------------------------------------------------------------------- splits


def test_split_roles_and_subsampling_are_deterministic(tmp_path):
    rows = "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(50))
    write(tmp_path / "train.csv", "text,label\n" + rows)
    write(tmp_path / "dev.csv", "text,label\n" + rows)
    entry = {"data_files": {"train": "train.csv", "dev": "dev.csv"}, "splits": {"validation": "dev"}}
    config = task(tmp_path, max_train_samples=10, max_eval_samples=20, **entry)
    first, again = load_task_splits(config, seed=1), load_task_splits(config, seed=1)
    other = load_task_splits(config, seed=2)
    assert list(first) == ["train", "validation"]
    assert (first["train"].num_rows, first["validation"].num_rows) == (10, 20)
    assert first["train"]["text"] == again["train"]["text"] != other["train"]["text"]
    assert len(set(first["train"]["text"])) == 10


def test_missing_renamed_split(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    config = task(tmp_path, data_files={"train": "train.csv"}, splits={"validation": "dev"})
    with pytest.raises(ValueError, match=r"split 'dev' \(for role 'validation'\) does not exist; the splits are"):
        load_task_splits(config)


# ---------------------------------------------------------------------------------------------- bad inputs


def test_missing_file_shows_path(tmp_path):
    config = task(tmp_path, data_files={"train": "nope/train.csv"})
    missing = re.escape(str(tmp_path / "nope" / "train.csv"))
    with pytest.raises(FileNotFoundError, match=rf"data file for split 'train' not found: {missing}\. Fix"):
        load_task_splits(config)


def test_missing_column_lists_columns(tmp_path):
    write(tmp_path / "train.csv", "sentence,label\na,x\nb,y\n")
    with pytest.raises(ValueError, match=r"column 'text' not found; the columns are \['sentence', 'label'\]"):
        load_task_splits(task(tmp_path, data_files={"train": "train.csv"}))


def test_missing_label_column(tmp_path):
    write(tmp_path / "train.csv", "text,y\na,x\n")
    with pytest.raises(ValueError, match=r"column 'label' not found; .* Set `label_column`"):
        load_task_splits(task(tmp_path, data_files={"train": "train.csv"}))


def test_empty_split(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    write(tmp_path / "empty.csv", "text,label\n")
    config = task(tmp_path, data_files={"train": "train.csv", "validation": "empty.csv"})
    with pytest.raises(ValueError, match=r"split 'validation' has no rows \(.*empty\.csv\); check the file"):
        load_task_splits(config)


def test_empty_conll_split(tmp_path):
    write(tmp_path / "train.conll", "John B-PER\nruns O\n")
    write(tmp_path / "test.conll", "\n-DOCSTART- O\n\n")
    entry = {"type": "token_classification", "data_files": {"train": "train.conll", "test": "test.conll"}}
    with pytest.raises(ValueError, match="split 'test' has no rows; check the file"):
        load_task_splits(task(tmp_path, **entry))


def test_labels_outside_the_label_set_show_ten_values(tmp_path):
    rows = "".join(f"text {i},bad{i}\n" for i in range(12))
    write(tmp_path / "train.csv", "text,label\nok,a\n" + rows)
    config = task(tmp_path, labels=["a", "b"], data_files={"train": "train.csv"})
    shown = ", ".join(f"'bad{i}'" for i in range(10))
    with pytest.raises(ValueError, match=rf"12 label value\(s\) .* \[{shown}, \.\.\.\]\. Valid labels: \['a', 'b'\]"):
        load_task_splits(config)


def test_unmapped_raw_label(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\na\t0\nb\t1\nc\t2\n")
    config = task(tmp_path, text_columns="sentence", label_map={0: "neg", 1: "pos"}, data_files={"train": "train.tsv"})
    with pytest.raises(ValueError, match=r"label values \[2\] in 'label' have no entry in `label_map`"):
        load_task_splits(config)


def test_token_tags_outside_the_label_set(tmp_path):
    write(tmp_path / "train.conll", "John B-PER\nParis B-LOC\n")
    config = task(tmp_path, type="token_classification", labels=["O", "B-PER"], data_files={"train": "train.conll"})
    with pytest.raises(ValueError, match=r"not in the task's labels: \['B-LOC'\]"):
        load_task_splits(config)


def test_regression_label_not_a_number(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,0.5\nb,high\nc,\n")
    config = task(tmp_path, type="regression", data_files={"train": "train.csv"})
    with pytest.raises(ValueError, match=r"must be numbers; found 2 that are not, e.g. \['high', None\]"):
        load_task_splits(config)


def test_missing_text_value(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,x\n,y\n")
    with pytest.raises(ValueError, match=r"column 'text' must hold a string in every row; rows \[1\]"):
        load_task_splits(task(tmp_path, data_files={"train": "train.csv"}))


def test_token_rows_need_one_tag_per_word(tmp_path):
    write(tmp_path / "train.jsonl", json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    config = task(tmp_path, type="token_classification", labels=["O", "B-X"], data_files={"train": "train.jsonl"})
    with pytest.raises(ValueError, match=r"rows \[0\] \(1 in all\) do not have one tag in 'tags' per word"):
        load_task_splits(config)


def test_one_label_only_cannot_be_inferred(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(ValueError, match=r"the train split has 1 distinct label\(s\) \['x'\]"):
        load_task_splits(task(tmp_path, data_files={"train": "train.csv"}))


# ---------------------------------------------------------------------------------------------- real files

# The task entries documented for the shared benchmark data (see /work/shared/data/PROVENANCE.md).
SHARED_TASKS_YAML = r"""
tasks:
  - name: sst2
    labels: [negative, positive]
    label_map: {0: negative, 1: positive}
    text_columns: [sentence]
    data_files: {train: sst2/train.tsv, validation: sst2/dev.tsv}
  - name: emotion
    labels: [sadness, joy, love, anger, fear, surprise]
    label_column: label_name
    format: csv
    reader: {delimiter: ";"}
    data_files: {train: emotion/train.txt, validation: emotion/val.txt, test: emotion/test.txt}
  - name: trec
    labels: [ABBR, DESC, ENTY, HUM, LOC, NUM]
    format: label_text
    reader: {label_transform: coarse, encoding: latin-1}
    data_files: {train: trec/train_5500.label, test: trec/TREC_10.label}
  - name: wnut17
    type: token_classification
    format: conll
    reader: {delimiter: "\t"}
    data_files:
      train: wnut17/wnut17train.conll
      validation: wnut17/emerging.dev.conll
      test: wnut17/emerging.test.annotated
  - name: stsb
    type: regression
    text_columns: [sentence1, sentence2]
    label_column: score
    format: tsv
    reader:
      column_names: [genre, filename, year, id, score, sentence1, sentence2]
      usecols: [0, 1, 2, 3, 4, 5, 6]
      quoting: 3
    data_files: {train: stsbenchmark/sts-train.csv, validation: stsbenchmark/sts-dev.csv}
"""

EXPECTED_ROWS = {
    "sst2": {"train": 67349, "validation": 872},
    "emotion": {"train": 16000, "validation": 2000, "test": 2000},
    "trec": {"train": 5452, "test": 500},
    "wnut17": {"train": 3394, "validation": 1009, "test": 1287},
    "stsb": {"train": 5749, "validation": 1500},
}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs the shared benchmark data in /work/shared/data")
def test_shared_benchmark_files_load_from_yaml_settings():
    entries = yaml.safe_load(SHARED_TASKS_YAML)["tasks"]
    for entry in entries:
        config = TaskDataConfig.from_dict(entry, base_dir=SHARED_DATA)
        splits = load_task_splits(config)
        assert {role: ds.num_rows for role, ds in splits.items()} == EXPECTED_ROWS[config.name], config.name
        if config.name == "wnut17":
            assert len(config.labels) == 13 and config.labels[-1] == "O"
        if config.name == "stsb":
            scores = splits["train"]["score"]
            assert min(scores) == 0.0 and max(scores) == 5.0
        if config.name == "trec":
            assert set(splits["train"]["label"]) == set(config.labels)


def test_class_label_features_give_labels_in_id_order(tmp_path):
    """Hub-style `ClassLabel` columns (here through parquet, which keeps the features) name their integer ids."""
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "tags": datasets.List(datasets.ClassLabel(names=["O", "B-PER", "I-PER"])),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["pos", "neg"]),
        }
    )
    rows = {"tokens": [["Ann", "Lee", "ran"], ["ok"]], "tags": [[1, 2, 0], [0]], "text": ["a", "b"], "label": [1, 0]}
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(tmp_path / "train.parquet"))
    token = task(tmp_path, type="token_classification", data_files={"train": "train.parquet"})
    sentence = task(tmp_path, data_files={"train": "train.parquet"})
    load_task_splits(token)
    load_task_splits(sentence)
    assert token.labels == ["O", "B-PER", "I-PER"]  # ClassLabel order, not sorted
    assert sentence.labels == ["pos", "neg"]


def test_text_column_of_the_wrong_kind(tmp_path):
    rows = {"tokens": [["a", "b"]], "label": ["x"]}
    datasets.Dataset.from_dict(rows).to_parquet(str(tmp_path / "train.parquet"))
    config = task(tmp_path, text_columns=["tokens"], labels=["x", "y"], data_files={"train": "train.parquet"})
    with pytest.raises(ValueError, match=r"column 'tokens' must hold a string in every row; rows \[0\]"):
        load_task_splits(config)

"""Tests for mtl_hf.metrics: bundled metrics against hand computations, Trainer-style inputs, offline loading."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import evaluate
import numpy as np
import pytest
import seqeval.metrics
from transformers import EvalPrediction

from mtl_hf.metrics import (
    BUNDLED_METRICS,
    METRIC_ALIASES,
    Classification,
    Regression,
    Seqeval,
    average_score,
    bundled_metric_path,
    compute_task_metrics,
    default_metric_names,
    load_metric,
    make_compute_metrics,
    primary_metric,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TOPIC = {"name": "topic", "type": "classification", "labels": ["sports", "politics", "science"]}
NER = {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER", "B-LOC"]}
STS = {"name": "sts", "type": "regression", "labels": []}


@pytest.fixture(scope="module")
def classification() -> Classification:
    return Classification(keep_in_memory=True)


@pytest.fixture(scope="module")
def seqeval_metric() -> Seqeval:
    return Seqeval(keep_in_memory=True)


@pytest.fixture(scope="module")
def regression() -> Regression:
    return Regression(keep_in_memory=True)


# --- bundled metric modules ----------------------------------------------------------------------------------------


def test_classification_accuracy_and_f1(classification):
    # 3 of 4 correct. Per class, F1 = 2TP / (#predicted + #gold):
    #   class 0: TP 1, predicted 1, gold 2 -> 2/3;  class 1: TP 1, predicted 2, gold 1 -> 2/3;  class 2: 2/2 = 1.
    #   macro = (2/3 + 2/3 + 1) / 3 = 7/9;  weighted by gold counts (2, 1, 1) = (4/3 + 2/3 + 1) / 4 = 3/4.
    result = classification.compute(predictions=[0, 1, 1, 2], references=[0, 0, 1, 2])
    assert result == pytest.approx({"accuracy": 0.75, "f1_macro": 7 / 9, "f1_weighted": 0.75})


def test_classification_class_only_predicted_counts_as_zero(classification):
    # Class 1 is predicted once but never gold: its F1 is 0 and it still counts in the macro mean (as in sklearn).
    #   class 0: TP 3, predicted 3, gold 4 -> 6/7;  class 1: 0.  macro = 3/7;  weighted (gold 4, 0) = 6/7.
    result = classification.compute(predictions=[0, 0, 0, 1], references=[0, 0, 0, 0])
    assert result == pytest.approx({"accuracy": 0.75, "f1_macro": 3 / 7, "f1_weighted": 6 / 7})


def test_classification_matches_sklearn(classification):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    preds, refs = rng.integers(0, 5, 50), rng.integers(0, 4, 50)
    result = classification.compute(predictions=preds, references=refs)
    assert result["f1_macro"] == pytest.approx(sklearn_metrics.f1_score(refs, preds, average="macro"))
    assert result["f1_weighted"] == pytest.approx(sklearn_metrics.f1_score(refs, preds, average="weighted"))


def test_seqeval_partial_span_is_a_miss(seqeval_metric):
    # Gold entities: PER (tokens 0-1), LOC (3). Predicted: PER (0 only, a partial span: wrong), LOC (3).
    # 1 of 2 predicted entities is correct and 1 of 2 gold entities is found: P = R = F1 = 1/2; tokens 3/4.
    result = seqeval_metric.compute(
        predictions=[["B-PER", "O", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-LOC"]]
    )
    assert result == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "accuracy": 0.75})


def test_seqeval_default_mode_accepts_entity_starting_with_inside_tag(seqeval_metric):
    # seqeval's default (conlleval-style) mode reads "I-PER I-PER" as one PER entity, which matches the gold span;
    # strict IOB2 rejects it, so no entity is predicted (precision undefined -> 0, recall 0).
    kwargs = {"predictions": [["I-PER", "I-PER", "O"]], "references": [["B-PER", "I-PER", "O"]]}
    assert seqeval_metric.compute(**kwargs)["f1"] == 1.0
    assert seqeval_metric.compute(**kwargs, mode="strict", scheme="IOB2")["f1"] == 0.0


def test_seqeval_matches_seqeval_package_defaults(seqeval_metric):
    refs = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC", "I-LOC"], ["B-PER", "O"]]
    preds = [["B-PER", "I-PER", "O", "O"], ["I-LOC", "I-LOC", "I-LOC"], ["B-LOC", "B-PER"]]
    result = seqeval_metric.compute(predictions=preds, references=refs)
    assert result["precision"] == seqeval.metrics.precision_score(refs, preds)
    assert result["recall"] == seqeval.metrics.recall_score(refs, preds)
    assert result["f1"] == seqeval.metrics.f1_score(refs, preds)
    assert result["accuracy"] == seqeval.metrics.accuracy_score(refs, preds)


def test_regression_correlations_and_mse(regression):
    x = np.arange(1.0, 6.0)
    linear = regression.compute(predictions=x, references=3 * x - 2)
    assert linear["pearson"] == pytest.approx(1.0)
    monotone = regression.compute(predictions=x, references=np.exp(x))  # monotone but not linear
    assert monotone["spearman"] == pytest.approx(1.0)
    assert monotone["pearson"] < 0.95


def test_regression_ties_by_hand(regression):
    # predictions [1, 2, 2, 3] rank as [1, 2.5, 2.5, 4]; references [1, 2, 3, 4] rank as themselves.
    # Centred ranks: [-1.5, 0, 0, 1.5] and [-1.5, -0.5, 0.5, 1.5]; products sum to 4.5, squares to 4.5 and 5.
    # Spearman = 4.5 / sqrt(4.5 * 5) = sqrt(0.9).  MSE = (0 + 0 + 1 + 1) / 4 = 0.5.
    result = regression.compute(predictions=[1.0, 2.0, 2.0, 3.0], references=[1.0, 2.0, 3.0, 4.0])
    assert result["spearman"] == pytest.approx(math.sqrt(0.9))
    assert result["mse"] == pytest.approx(0.5)


# --- Trainer-style inputs ------------------------------------------------------------------------------------------


def test_default_and_primary_metric_names():
    assert default_metric_names("classification") == ["classification"]
    assert default_metric_names("token_classification") == ["seqeval"]
    assert default_metric_names("regression") == ["regression"]
    assert [primary_metric(t) for t in ("classification", "token_classification", "regression")] == [
        "accuracy",
        "f1",
        "spearman",
    ]
    with pytest.raises(ValueError, match=r"Unknown task type 'ranking'\. Valid task types are"):
        primary_metric("ranking")


def test_classification_from_logits_skips_ignored_rows():
    logits = np.array([[2.0, 0.1, 0.3], [0.1, 3.0, 0.2], [0.0, 0.1, 5.0], [1.0, 0.0, 0.0], [9.0, 0.0, 0.0]])
    labels = np.array([0, 1, 1, 0, -100])  # argmax 0, 1, 2, 0: 3 of the 4 kept rows correct
    result = compute_task_metrics(TOPIC, logits, labels)
    assert set(result) == {"accuracy", "f1_macro", "f1_weighted"}
    assert result["accuracy"] == pytest.approx(0.75)
    assert all(isinstance(v, float) for v in result.values())


def _padded_token_batch() -> tuple[np.ndarray, np.ndarray]:
    """Two sentences as the Trainer concatenates them: [CLS] ignored, the shorter one padded with -100."""
    # tags: O=0, B-PER=1, I-PER=2, B-LOC=3
    gold = np.array([[-100, 1, 2, 0, 3], [-100, 3, 0, -100, -100]])
    pred = np.array([[3, 1, 0, 0, 3], [3, 3, 0, 0, 0]])  # [CLS] predicted B-LOC: must be ignored
    logits = np.eye(4)[pred] * 5.0
    logits[1, 3:] = -100.0  # nested_concat pads logits with -100 too
    return logits, gold


@pytest.mark.parametrize("as_ids", [False, True], ids=["logits", "argmax_ids"])
def test_token_classification_ignores_minus_100(as_ids):
    logits, labels = _padded_token_batch()
    # as from preprocess_logits_for_metrics: the padded positions then hold -100 ids
    predictions = np.where(labels == -100, -100, logits.argmax(-1)) if as_ids else logits
    # Kept tokens: sentence 1 gold [B-PER I-PER O B-LOC], pred [B-PER O O B-LOC]; sentence 2 gold/pred [B-LOC O].
    # Gold entities PER, LOC, LOC; predicted PER (partial span, wrong), LOC, LOC: P = R = F1 = 2/3. Tokens 5/6.
    result = compute_task_metrics(NER, predictions, labels)
    assert result == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "accuracy": 5 / 6})


def test_token_classification_rejects_wrong_class_count():
    logits, labels = _padded_token_batch()
    with pytest.raises(ValueError, match=r"logits have 3 classes but the task has 4 labels"):
        compute_task_metrics(NER, logits[..., :3], labels)


def test_regression_column_predictions():
    predictions = np.array([[1.0], [2.0], [2.0], [3.0]], dtype=np.float32)  # (N, 1) from a regression head
    result = compute_task_metrics(STS, predictions, np.array([1.0, 2.0, 3.0, 4.0]))
    assert set(result) == {"pearson", "spearman", "mse"}
    assert result["spearman"] == pytest.approx(math.sqrt(0.9))


def test_make_compute_metrics_with_tuple_outputs_and_unconcatenated_batches():
    compute_metrics = make_compute_metrics(TOPIC)
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])
    labels = np.array([0, 1, 2, 1])
    extra = np.zeros((4, 8))  # a second model output, e.g. embeddings
    expected = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    assert expected["accuracy"] == pytest.approx(0.75)
    assert compute_metrics(EvalPrediction(predictions=(logits, extra), label_ids=labels)) == expected
    batches = EvalPrediction(predictions=[logits[:3], logits[3:]], label_ids=[labels[:3], labels[3:]])
    assert compute_metrics(batches) == expected


def test_average_score():
    per_task = {
        "topic": {"accuracy": 0.8, "f1_macro": 0.5},
        "ner": {"precision": 0.5, "recall": 0.7, "f1": 0.6, "accuracy": 0.9},
        "sts": {"eval_sts_pearson": 0.3, "eval_sts_spearman": 0.4, "eval_sts_mse": 1.0},  # Trainer-prefixed keys
    }
    assert average_score(per_task) == pytest.approx((0.8 + 0.6 + 0.4) / 3)
    assert average_score(per_task, tasks=[TOPIC, NER, STS]) == pytest.approx((0.8 + 0.6 + 0.4) / 3)
    message = r"Task 'topic': none of the primary metrics \['accuracy', 'spearman', 'f1'\]"
    with pytest.raises(ValueError, match=message):
        average_score({"topic": {"f1_macro": 0.5}}, tasks=[TOPIC])


# --- loading ---------------------------------------------------------------------------------------------------------


def test_load_metric_resolves_bundled_names_and_aliases():
    assert isinstance(load_metric("accuracy"), evaluate.EvaluationModule)
    assert type(load_metric("f1")).__name__ == "Classification"
    assert type(load_metric("spearmanr")).__name__ == "Regression"
    assert Path(bundled_metric_path("pearsonr")) == REPO_ROOT / "mtl_hf/metrics/regression/regression.py"


def test_unknown_metric_offline_raises_clear_error(monkeypatch):
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)  # evaluate then refuses every HTTP call
    match = r"Cannot load metric 'mtl-hf-no-such-metric'.*Hub is unreachable.*offline: classification, regression"
    with pytest.raises(FileNotFoundError, match=match):
        load_metric("mtl-hf-no-such-metric")


_FRESH_PROCESS_SCRIPT = """
import json, sys
from pathlib import Path

import evaluate
from mtl_hf.metrics import BUNDLED_METRICS, METRIC_ALIASES, bundled_metric_path, load_metric

inputs = {
    "classification": dict(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0]),
    "seqeval": dict(predictions=[["B-PER", "O"]], references=[["B-PER", "O"]]),
    "regression": dict(predictions=[1.0, 2.0, 3.0], references=[2.0, 4.0, 6.0]),
}
results = {}
for name in BUNDLED_METRICS:
    file = Path(bundled_metric_path(name))
    for path in (file, file.parent):
        results[f"evaluate.load:{path.name}"] = evaluate.load(str(path)).compute(**inputs[name])
for name in (*BUNDLED_METRICS, *METRIC_ALIASES):
    results[f"load_metric:{name}"] = load_metric(name).compute(**inputs[METRIC_ALIASES.get(name, name)])
try:
    load_metric("mtl-hf-no-such-metric")
except FileNotFoundError as err:
    results["error"] = str(err)
json.dump(results, sys.stdout)
"""


def test_bundled_metrics_load_offline_in_fresh_process(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),  # empty module and metric caches
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("HF_EVALUATE_OFFLINE", None)
    env.pop("HF_MODULES_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert "'mtl-hf-no-such-metric'" in results.pop("error")
    assert "Hub is unreachable in offline mode" in proc.stdout
    assert len(results) == 2 * len(BUNDLED_METRICS) + len(BUNDLED_METRICS) + len(METRIC_ALIASES)
    expected = {"classification": ("accuracy", 0.75), "seqeval": ("f1", 1.0), "regression": ("mse", 14 / 3)}
    for key, result in results.items():
        name = key.split(":")[1].removesuffix(".py")
        metric, value = expected[METRIC_ALIASES.get(name, name)]
        assert result[metric] == pytest.approx(value), key

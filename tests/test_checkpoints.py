"""save_pretrained / from_pretrained: identical reloads, remote code without mtl_hf, clear errors on bad folders."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoModel

from mtl_hf import MultiTaskModel
from mtl_hf.testing import tiny_model

TEXTS = ["the movie was good", "john lives in paris", "bad"]
MODELING_FILES = {"configuration_mtl.py", "modeling_mtl.py", "heads.py", "pooling.py", "inference.py", "resolve.py"}


def assert_same_state_dict(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Compare by key: `from_pretrained` may return the keys in another order (STYLE.md P15)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    different = [key for key in sa if not torch.equal(sa[key], sb[key])]
    assert not different, different


def assert_same_outputs(a: MultiTaskModel, b: MultiTaskModel) -> None:
    a.eval(), b.eval()
    batch = a.tokenizer(TEXTS, padding=True, return_tensors="pt")
    task_ids = torch.tensor([0, 1, 2]) if len(a.config.tasks) >= 3 else None
    with torch.no_grad():
        out_a, out_b = a(**batch, task_ids=task_ids), b(**batch, task_ids=task_ids)
    assert list(out_a.task_logits) == list(out_b.task_logits)
    for name in out_a.task_logits:
        torch.testing.assert_close(out_a.task_logits[name], out_b.task_logits[name], atol=0, rtol=0)
    torch.testing.assert_close(out_a.sentence_embedding, out_b.sentence_embedding, atol=0, rtol=0)
    np.testing.assert_array_equal(a.encode(TEXTS), b.encode(TEXTS))
    assert a.predict(TEXTS) == b.predict(TEXTS)


@pytest.fixture
def checkpoint(model, tmp_path):
    path = tmp_path / "checkpoint"
    model.save_pretrained(path)
    return path


# ---------------------------------------------------------------- save / load identity


def test_save_pretrained_writes_weights_config_tokenizer_and_code(checkpoint):
    files = set(os.listdir(checkpoint))
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert MODELING_FILES <= files  # register_for_auto_class copies the flat modeling package (P11)
    raw = json.loads((checkpoint / "config.json").read_text())
    assert raw["auto_map"] == {
        "AutoConfig": "configuration_mtl.MultiTaskConfig",
        "AutoModel": "modeling_mtl.MultiTaskModel",
    }
    assert raw["architectures"] == ["MultiTaskModel"]
    assert [task["name"] for task in raw["tasks"]] == ["topic", "sentiment", "ner", "similarity"]


def test_auto_model_reload_is_identical(model, checkpoint):
    loaded, info = AutoModel.from_pretrained(checkpoint, output_loading_info=True)
    assert type(loaded) is MultiTaskModel
    assert not info["missing_keys"]
    assert not info["unexpected_keys"] and not info["mismatched_keys"] and not info["error_msgs"]
    assert not loaded.training
    assert loaded.config.tasks == model.config.tasks  # order and loss weights (P8)
    assert_same_state_dict(model, loaded)
    assert loaded.tokenizer is not None  # also with output_loading_info=True
    assert loaded.tokenizer(TEXTS)["input_ids"] == model.tokenizer(TEXTS)["input_ids"]
    assert_same_outputs(model, loaded)


def test_multitask_model_from_pretrained_is_identical(model, checkpoint):
    loaded = MultiTaskModel.from_pretrained(checkpoint)
    assert loaded.tokenizer is not None
    assert_same_state_dict(model, loaded)
    assert_same_outputs(model, loaded)


@pytest.mark.parametrize(
    ("architecture", "options"),
    [("distilbert", {"pooling": "max"}), ("roberta", {"projection_dim": 8, "normalize": True, "pooling": "cls"})],
)
def test_reload_other_backbones_and_options(tmp_path, architecture, options):
    torch.manual_seed(0)
    model = tiny_model(architecture=architecture, **options).eval()
    model.save_pretrained(tmp_path)
    loaded, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert loaded.backbone.config.model_type == architecture
    assert all(getattr(loaded.config, key) == value for key, value in options.items())
    assert_same_state_dict(model, loaded)
    assert_same_outputs(model, loaded)


def test_reload_from_subfolder(model, tmp_path):
    model.save_pretrained(tmp_path / "run" / "final")
    loaded = AutoModel.from_pretrained(tmp_path / "run", subfolder="final")
    assert loaded.tokenizer is not None
    assert_same_state_dict(model, loaded)


def test_reload_sharded_checkpoint(model, tmp_path):
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    loaded, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]
    assert_same_state_dict(model, loaded)


def test_reload_without_tokenizer(model, tmp_path, caplog):
    model.tokenizer = None
    model.save_pretrained(tmp_path)
    assert not (tmp_path / "tokenizer.json").exists()
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.tokenizer is None
    assert "No tokenizer loaded" not in caplog.text
    assert_same_state_dict(model, loaded)


# ---------------------------------------------------------------- remote code

REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, importlib.util, json, sys

    class HideMtlHf(importlib.abc.MetaPathFinder):
        # Only needed once mtl_hf is pip-installed: the checkpoint's own code must do all the work.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "mtl_hf":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    if importlib.util.find_spec("mtl_hf") is not None:
        sys.meta_path.insert(0, HideMtlHf())
    try:
        spec = importlib.util.find_spec("mtl_hf")
    except ModuleNotFoundError:
        spec = None
    assert spec is None, spec

    from transformers import AutoModel

    checkpoint, output = sys.argv[1], sys.argv[2]
    texts = json.loads(sys.argv[3])
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True)
    assert "mtl_hf" not in sys.modules, "the remote code imported mtl_hf"
    result = {
        "module": type(model).__module__,
        "class": type(model).__name__,
        "task_names": model.config.task_names,
        "has_tokenizer": model.tokenizer is not None,
        "encode": model.encode(texts).tolist(),
        "predict": model.predict(texts, tasks=["topic", "similarity"]),
    }
    with open(output, "w") as handle:
        json.dump(result, handle)
    """
)


def test_remote_code_loads_without_mtl_hf(model, checkpoint, tmp_path):
    expected_encode = model.encode(TEXTS)
    expected_predict = model.predict(TEXTS, tasks=["topic", "similarity"])
    output = tmp_path / "remote.json"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), TOKENIZERS_PARALLELISM="false")
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(checkpoint), str(output), json.dumps(TEXTS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["module"].startswith("transformers_modules.") and result["class"] == "MultiTaskModel"
    assert result["task_names"] == ["topic", "sentiment", "ner", "similarity"]
    assert result["has_tokenizer"]
    np.testing.assert_allclose(np.array(result["encode"]), expected_encode, atol=1e-6)
    for remote, local in zip(result["predict"], expected_predict):
        assert remote["topic"]["label"] == local["topic"]["label"]
        assert remote["topic"]["scores"] == pytest.approx(local["topic"]["scores"], abs=1e-6)
        assert remote["similarity"]["score"] == pytest.approx(local["similarity"]["score"], abs=1e-6)


# ---------------------------------------------------------------- bad checkpoints

LOADERS = [
    pytest.param(MultiTaskModel.from_pretrained, id="MultiTaskModel"),
    pytest.param(AutoModel.from_pretrained, id="AutoModel"),
]


@pytest.mark.parametrize("load", LOADERS)
def test_missing_weights_raise(checkpoint, load):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(OSError, match="has config.json but no weights \\(model.safetensors is missing\\)"):
        load(checkpoint)


def test_missing_config_raises(checkpoint):
    (checkpoint / "config.json").unlink()
    with pytest.raises(OSError, match="has no config.json; is it the output of `save_pretrained`\\?"):
        MultiTaskModel.from_pretrained(checkpoint)
    # AutoModel reads the config before any mtl_hf code runs, so the message is transformers' own.
    with pytest.raises((OSError, ValueError), match="config.json"):
        AutoModel.from_pretrained(checkpoint)


def test_empty_folder_raises(tmp_path):
    with pytest.raises(OSError, match="has no config.json"):
        MultiTaskModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("load", LOADERS)
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
        pytest.param(lambda data: data[:-16], id="truncated-tail"),
        pytest.param(lambda data: data[:5], id="truncated-header"),
        pytest.param(lambda data: b"this is not a safetensors file", id="garbage"),
    ],
)
def test_corrupt_weights_raise(checkpoint, load, damage):
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(OSError, match="model.safetensors is corrupt or truncated .*Re-save or re-download"):
        load(checkpoint)

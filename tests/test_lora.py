"""LoRA on tiny BERT and DistilBERT models: what trains, save/load/merge round trips with identical outputs, bad
`peft` settings, and an `mtl-hf train` run with `peft:` that writes adapters plus a merged model AutoModel loads."""

import copy
import json
import re

import pytest
import torch
from peft import PeftModel
from transformers import AutoModel

from mtl_hf import MultiTaskModel
from mtl_hf.cli import main
from mtl_hf.lora import apply_lora, default_target_modules, load_lora, merge_lora, save_lora
from mtl_hf.testing import (
    TINY_TASKS,
    TINY_TEXTS,
    changed_parameters,
    parameter_snapshot,
    save_tiny_checkpoint,
    tiny_model,
    tiny_task_datasets,
    tiny_training_args,
    write_tiny_run_config,
)
from mtl_hf.trainer import MultiTaskTrainer

ARCHITECTURES = ["bert", "distilbert"]
TARGETS = {"bert": ["query", "value"], "distilbert": ["q_lin", "v_lin"]}
TEXTS = TINY_TEXTS
LORA_NAME = re.compile(r"^base_model\.model\.backbone\..*\.(\w+)\.lora_[AB]\.default\.weight$")
HEAD_NAME = re.compile(r"^base_model\.model\.heads\.(\w+)\.modules_to_save\.default\.linear\.(weight|bias)$")


# ---------------------------------------------------------------- helpers


def outputs(model, texts=TEXTS) -> dict[str, torch.Tensor]:
    """Every head's logits and the sentence embeddings (eval mode, all heads on all rows)."""
    model.eval()
    tokenizer = model.get_base_model().tokenizer if isinstance(model, PeftModel) else model.tokenizer
    with torch.no_grad():
        out = model(**tokenizer(texts, padding=True, return_tensors="pt"))
    return {**out.task_logits, "embedding": out.sentence_embedding}


def assert_same_outputs(got, expected, atol=0.0):
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=atol, msg=key)


@pytest.fixture(scope="module")
def base_models():
    torch.manual_seed(0)
    return {arch: tiny_model(TINY_TASKS, architecture=arch) for arch in ARCHITECTURES}


@pytest.fixture(scope="module", params=ARCHITECTURES)
def trained(request, base_models, tmp_path_factory):
    """LoRA (r=4) on one architecture, trained 4 steps (one batch per task); adapters saved with `save_lora`."""
    arch = request.param
    base = copy.deepcopy(base_models[arch])
    peft_model = apply_lora(base, r=4, alpha=8, dropout=0.0)
    initial = parameter_snapshot(peft_model)
    output_dir = tmp_path_factory.mktemp(f"lora_{arch}")
    args = tiny_training_args(output_dir, max_steps=4, learning_rate=5e-2, weight_decay=0.1)
    trainer = MultiTaskTrainer(model=peft_model, args=args, train_dataset=tiny_task_datasets(base.tokenizer))
    trainer.train()
    adapter_dir = save_lora(peft_model, output_dir / "adapter")
    return {
        "arch": arch,
        "peft_model": peft_model,
        "initial": initial,
        "adapter_dir": adapter_dir,
        "trainer": trainer,
        "expected": outputs(peft_model),
    }


# ---------------------------------------------------------------- what trains


def test_default_target_modules(base_models):
    for arch in ARCHITECTURES:
        assert default_target_modules(base_models[arch]) == TARGETS[arch]
    assert default_target_modules(tiny_model(TINY_TASKS[:1], architecture="roberta")) == ["query", "value"]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_apply_lora_trains_only_adapters_and_heads(base_models, arch):
    base = copy.deepcopy(base_models[arch])
    peft_model = apply_lora(base, r=4, alpha=8)
    assert isinstance(peft_model, PeftModel) and peft_model.tokenizer is base.tokenizer
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    lora = [name for name in trainable if LORA_NAME.match(name)]
    heads = [name for name in trainable if HEAD_NAME.match(name)]
    assert sorted(trainable) == sorted(lora + heads)
    # 2 layers x 2 target projections x (A, B), and weight + bias of every head.
    assert len(lora) == 8 and {LORA_NAME.match(name).group(1) for name in lora} == set(TARGETS[arch])
    assert sorted(HEAD_NAME.match(name).group(1) for name in heads) == sorted(
        [task["name"] for task in TINY_TASKS] * 2
    )
    lora_a = peft_model.get_parameter(lora[0].replace("lora_B", "lora_A"))
    assert lora_a.shape[0] == 4  # r


def test_training_changes_adapters_and_heads_only(trained):
    peft_model, initial = trained["peft_model"], trained["initial"]
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert changed_parameters(initial, parameter_snapshot(peft_model)) == trainable
    # Base weights (including the targeted projections' own weights) and the heads' original copies are identical.
    frozen = set(initial) - trainable
    assert any(".base_layer." in name for name in frozen) and any(".original_module." in name for name in frozen)
    assert all(torch.equal(peft_model.get_parameter(name), initial[name]) for name in frozen)
    logged = {key for entry in trained["trainer"].state.log_history for key in entry if key.startswith("loss_")}
    assert logged == {f"loss_{task['name']}" for task in TINY_TASKS}


# ---------------------------------------------------------------- save, load, merge


def test_save_lora_writes_adapters_heads_config_and_tokenizer(trained):
    adapter_dir = trained["adapter_dir"]
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json"} <= {
        p.name for p in adapter_dir.iterdir()
    }
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["lora_alpha"]) == (4, 8)
    assert sorted(adapter_config["target_modules"]) == sorted(TARGETS[trained["arch"]])
    assert sorted(adapter_config["modules_to_save"]) == sorted(f"heads.{task['name']}" for task in TINY_TASKS)


def test_load_lora_on_a_fresh_base_gives_identical_outputs(trained, base_models):
    loaded = load_lora(trained["adapter_dir"], base_model=copy.deepcopy(base_models[trained["arch"]]))
    assert isinstance(loaded, PeftModel)
    assert_same_outputs(outputs(loaded), trained["expected"])
    # The adapters matter: the base model alone gives other outputs.
    base = outputs(copy.deepcopy(base_models[trained["arch"]]))
    assert not torch.allclose(base["embedding"], trained["expected"]["embedding"], atol=1e-3)


def test_merge_lora_gives_a_plain_model_that_autoloads(trained, base_models, tmp_path):
    loaded = load_lora(trained["adapter_dir"], base_model=copy.deepcopy(base_models[trained["arch"]]))
    merged = merge_lora(loaded)
    assert type(merged) is MultiTaskModel and merged.tokenizer is not None
    assert not any("lora_" in name or "modules_to_save" in name for name, _ in merged.named_parameters())
    assert set(merged.state_dict()) == set(base_models[trained["arch"]].state_dict())
    assert_same_outputs(outputs(merged), trained["expected"], atol=1e-5)

    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModel.from_pretrained(tmp_path / "merged")
    assert type(reloaded) is MultiTaskModel and reloaded.config.task_names == [t["name"] for t in TINY_TASKS]
    assert_same_outputs(outputs(reloaded), outputs(merged))


# ---------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"rank": 4},
            "Unknown `peft` keys ['rank']; valid keys: ['method', 'r', 'alpha', 'dropout', 'target_modules', 'bias'].",
        ),
        ({"method": "ia3"}, "Only `peft: {method: lora}` is supported, got 'ia3'."),
    ],
    ids=["unknown-key", "not-lora"],
)
def test_bad_peft_settings_raise(base_models, spec, message):
    model = copy.deepcopy(base_models["bert"])
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_lora(model, **spec)
    assert not any("lora_" in name for name, _ in model.named_parameters())


def test_lora_with_uncertainty_weighting_raises():
    model = tiny_model(TINY_TASKS[:2], loss_weighting="uncertainty")
    with pytest.raises(ValueError, match=r"LoRA with `loss_weighting: uncertainty` is not supported"):
        apply_lora(model, r=4)


def test_load_lora_from_a_folder_without_adapters(tmp_path):
    with pytest.raises(OSError, match=re.escape(f"{tmp_path} has no adapter_config.json; is it the output of")):
        load_lora(tmp_path)


# ---------------------------------------------------------------- mtl-hf train with `peft:`


def test_train_with_peft_writes_adapters_and_a_merged_model(tmp_path, capsys):
    checkpoint = save_tiny_checkpoint(tmp_path / "checkpoint")
    # `freeze` still applies under LoRA: the frozen ner head must come out as the checkpoint's.
    config = write_tiny_run_config(
        tmp_path, checkpoint, learning_rate=5e-2, peft={"r": 4, "alpha": 8}, freeze={"heads": ["ner"]}
    )
    code = main(["train", str(config)])
    assert code == 0, capsys.readouterr().err

    out = tmp_path / "out"
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["lora_alpha"]) == (4, 8)
    assert {"eval_sentiment_accuracy", "eval_ner_f1"} <= set(json.loads((out / "eval_results.json").read_text()))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (out / "merged").iterdir()}

    merged = AutoModel.from_pretrained(out / "merged")
    assert type(merged) is MultiTaskModel and merged.config.task_names == ["sentiment", "ner"]
    start, after = AutoModel.from_pretrained(checkpoint).state_dict(), merged.state_dict()
    assert set(after) == set(start)
    # LoRA changed the query/value projections (merged in) and the trained head; nothing else.
    assert changed_parameters(start, after) == {
        *(f"backbone.encoder.layer.{i}.attention.self.{m}.weight" for i in range(2) for m in TARGETS["bert"]),
        "heads.sentiment.linear.weight",
        "heads.sentiment.linear.bias",
    }
    # The adapters alone (base rebuilt from what the run started from) give the merged model's outputs.
    assert_same_outputs(outputs(load_lora(out)), outputs(merged), atol=1e-5)

"""from_backbone and resolve_backbone: real pretrained weights (packaged all-MiniLM-L6-v2, offline) loaded strictly."""

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModel,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from mtl_hf import DEFAULT_BACKBONE, MultiTaskModel, resolve_backbone
from mtl_hf.modeling.inference import resolve_max_length
from mtl_hf.modeling.modeling_mtl import _sentence_transformers_settings
from mtl_hf.testing import tiny_encoder_config, tiny_tokenizer

SENTENCES = [
    "A man is eating food.",
    "The weather is lovely today.",
    "Transformers encode sentences into dense vectors for semantic search.",
    "Hi",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    " ".join(["This sentence is far too long for the model and must be truncated."] * 30),  # > 256 tokens
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def st_minilm(minilm_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    return sentence_transformers.SentenceTransformer(str(minilm_path), device="cpu")


# ---------------------------------------------------------------- resolve_backbone


def test_default_backbone_resolves_to_packaged_copy_offline(minilm_path, empty_hub_cache):
    assert resolve_backbone() == str(minilm_path)
    assert resolve_backbone(None) == str(minilm_path)
    assert resolve_backbone(DEFAULT_BACKBONE) == str(minilm_path)
    assert (minilm_path / "model.safetensors").is_file()


@pytest.mark.parametrize("name", ["bert-base-uncased", "sentence-transformers/all-mpnet-base-v2", "./not/there"])
def test_explicit_names_are_returned_as_given(name, empty_hub_cache):
    assert resolve_backbone(name) == name


def test_explicit_paths_are_returned_as_given(tmp_path):
    assert resolve_backbone(tmp_path) == str(tmp_path)
    assert resolve_backbone(str(tmp_path)) == str(tmp_path)


# ---------------------------------------------------------------- the packaged MiniLM


def test_backbone_weights_equal_the_packaged_checkpoint(minilm, minilm_path):
    packaged = load_file(str(minilm_path / "model.safetensors"))
    loaded = minilm.backbone.state_dict()
    assert loaded, "empty backbone"
    different = [key for key in loaded if not torch.equal(loaded[key], packaged[key])]  # by key (P15)
    assert not different, different
    # everything in the file is in the backbone, except the BERT pooler mtl_hf replaces (P6) and a buffer
    assert {key for key in set(packaged) - set(loaded)} == {
        "pooler.dense.weight",
        "pooler.dense.bias",
        "embeddings.position_ids",
    }


def test_config_follows_the_sentence_transformers_files(minilm):
    config = minilm.config
    assert (config.pooling, config.normalize, config.max_seq_length) == ("mean", True, 256)
    assert type(config.encoder_config) is BertConfig
    assert config.encoder_config.hidden_size == 384 and config.encoder_config.num_hidden_layers == 6
    assert config.embedding_dim == 384
    assert config.backbone_name_or_path is None
    assert config.task_names == ["sentiment", "score"]
    assert minilm.tokenizer is not None and len(minilm.tokenizer) == 30522
    assert not any(key.startswith("backbone.pooler") for key in minilm.state_dict())


def test_embeddings_match_sentence_transformers(minilm, st_minilm):
    expected = st_minilm.encode(SENTENCES)
    embeddings = minilm.encode(SENTENCES, batch_size=4)
    assert embeddings.shape == expected.shape == (len(SENTENCES), 384)
    assert cosines(embeddings, expected).min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_overrides_win_over_sentence_transformers_files(minilm_path):
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(
        str(minilm_path), tasks=[], pooling="cls", normalize=False, projection_dim=16, max_seq_length=128
    )
    config = model.config
    assert (config.pooling, config.normalize, config.projection_dim, config.max_seq_length) == ("cls", False, 16, 128)
    assert config.backbone_name_or_path == str(minilm_path)
    assert model.encode(SENTENCES[:2]).shape == (2, 16)


def test_from_backbone_round_trip(minilm, tmp_path):
    minilm.save_pretrained(tmp_path)
    loaded, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(loaded) is MultiTaskModel
    assert not info["missing_keys"] and not info["unexpected_keys"]
    original, reloaded = minilm.state_dict(), loaded.state_dict()
    assert set(original) == set(reloaded)
    assert all(torch.equal(original[key], reloaded[key]) for key in original)
    assert (loaded.config.pooling, loaded.config.normalize, loaded.config.max_seq_length) == ("mean", True, 256)
    np.testing.assert_allclose(loaded.encode(SENTENCES[:3]), minilm.encode(SENTENCES[:3]), atol=1e-6)


def test_mutating_a_copy_leaves_the_fixture_alone(minilm):
    model = copy.deepcopy(minilm)
    with torch.no_grad():
        model.backbone.embeddings.word_embeddings.weight.zero_()
    assert minilm.backbone.embeddings.word_embeddings.weight.abs().sum() > 0


def test_missing_local_path_raises(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(OSError, match=f"Backbone path {missing} does not exist; pass an existing model folder"):
        MultiTaskModel.from_backbone(str(missing), tasks=[])
    with pytest.raises(OSError, match="Backbone path ./no/such/folder does not exist"):
        MultiTaskModel.from_backbone("./no/such/folder", tasks=[])


def test_folder_without_config_raises(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(OSError, match=f"Backbone folder {tmp_path} has no config.json"):
        MultiTaskModel.from_backbone(str(tmp_path), tasks=[])


def test_unknown_hub_name_raises_offline():
    with pytest.raises(OSError):
        MultiTaskModel.from_backbone("mtl-hf-tests/no-such-model", tasks=[])


# ---------------------------------------------------------------- other checkpoints (tiny, offline)


@pytest.mark.parametrize(
    ("architecture", "head_model", "config_class", "prefix"),
    [
        ("bert", BertForSequenceClassification, BertConfig, "bert"),
        ("distilbert", DistilBertForSequenceClassification, DistilBertConfig, "distilbert"),
    ],
)
def test_backbone_from_a_head_model_checkpoint(tmp_path, architecture, head_model, config_class, prefix):
    """Hub checkpoints are mostly saved from head models (`bert.*` keys); the backbone must still load (P9)."""
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    source = head_model(config_class(**tiny_encoder_config(architecture, vocab_size=len(tokenizer))))
    source.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    model = MultiTaskModel.from_backbone(str(tmp_path), tasks=[{"name": "sentiment", "labels": ["neg", "pos"]}])
    assert (model.config.pooling, model.config.normalize, model.config.max_seq_length) == ("mean", False, None)
    assert model.config.backbone_name_or_path == str(tmp_path)
    expected = getattr(source, prefix).state_dict()
    loaded = model.backbone.state_dict()
    assert set(loaded) <= set(expected)
    assert all(torch.equal(loaded[key], expected[key]) for key in loaded)
    assert model.encode(["the movie was good"]).shape == (1, 32)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    BertForSequenceClassification(
        BertConfig(**tiny_encoder_config("bert", vocab_size=len(tokenizer)))
    ).bert.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize(("mode", "normalize"), [("cls", False), ("max", True), ("mean_sqrt_len_tokens", False)])
def test_folder_saved_by_sentence_transformers(tmp_path, tiny_bert_dir, mode, normalize):
    """The current sentence-transformers format (`"pooling_mode": "cls"`, max length in the tokenizer config)."""
    st_modules = pytest.importorskip("sentence_transformers.sentence_transformer.modules")
    from sentence_transformers import SentenceTransformer

    modules = [st_modules.Transformer(str(tiny_bert_dir)), st_modules.Pooling(32, pooling_mode=mode)]
    if normalize:
        modules.append(st_modules.Normalize())
    st = SentenceTransformer(modules=modules, device="cpu")
    st.max_seq_length = 8
    st.save(str(tmp_path))

    model = MultiTaskModel.from_backbone(str(tmp_path), tasks=[])
    expected_mode = {"mean_sqrt_len_tokens": "mean_sqrt_len"}.get(mode, mode)
    assert (model.config.pooling, model.config.normalize) == (expected_mode, normalize)
    assert resolve_max_length(model, None) == 8
    texts = ["the movie was good", "john lives in paris and london and visited the city"]  # the 2nd is cut at 8
    np.testing.assert_allclose(model.encode(texts), st.encode(texts), atol=1e-5)


def write_st_folder(path: Path, pooling: dict, normalize: bool, st_config: dict | None = None) -> Path:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
        )
    (path / "1_Pooling").mkdir(parents=True)
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (path / "modules.json").write_text(json.dumps(modules))
    if st_config is not None:
        (path / "sentence_bert_config.json").write_text(json.dumps(st_config))
    return path


@pytest.mark.parametrize(
    ("flag", "mode"),
    [
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_mean_tokens", "mean"),
        ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ],
)
def test_legacy_sentence_transformers_pooling_flags(tmp_path, flag, mode):
    flags = dict.fromkeys(["pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_tokens"], False) | {
        flag: True
    }
    write_st_folder(
        tmp_path, {"word_embedding_dimension": 32, **flags}, normalize=False, st_config={"max_seq_length": 77}
    )
    assert _sentence_transformers_settings(str(tmp_path)) == {
        "normalize": False,
        "pooling": mode,
        "max_seq_length": 77,
    }


def test_unsupported_sentence_transformers_pooling_warns(tmp_path, caplog):
    write_st_folder(tmp_path, {"embedding_dimension": 32, "pooling_mode": "weightedmean"}, normalize=True)
    with caplog.at_level(logging.WARNING):
        settings = _sentence_transformers_settings(str(tmp_path))
    assert settings == {"normalize": True}  # pooling falls back to the default
    assert "asks for pooling ['weightedmean'], which mtl_hf does not support" in caplog.text


def test_plain_folder_has_no_sentence_transformers_settings(tmp_path):
    assert _sentence_transformers_settings(str(tmp_path)) == {}

"""MultiTaskModel.encode and .predict: order, batching, output types, decoding, and bad inputs."""

import logging
import re

import numpy as np
import pytest
import torch

from mtl_hf.testing import TINY_WORDS, tiny_model

SENTENCES = [
    "the movie was good",
    "bad",
    " ".join(TINY_WORDS[:40]),  # 40 words: far longer than the others
    "john visited london",
    "the team won the game in paris and the city was happy",
    "fun",
]
LONG_TEXT = " ".join(TINY_WORDS[i % len(TINY_WORDS)] for i in range(100))  # 102 tokens > 64


def forward_logits(model, texts, pairs=None):
    batch = model.tokenizer(texts, pairs, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch)


# ---------------------------------------------------------------- encode


def test_encode_keeps_input_order_whatever_the_batch_size(model):
    alone = np.stack([model.encode([sentence])[0] for sentence in SENTENCES])
    for batch_size in (1, 3, 32):
        embeddings = model.encode(SENTENCES, batch_size=batch_size)
        assert embeddings.shape == (len(SENTENCES), 32)
        np.testing.assert_allclose(embeddings, alone, atol=1e-5, rtol=1e-5)
    # the rows really differ, so a permutation would have been caught
    assert np.abs(alone[0] - alone[1]).max() > 1e-3


def test_encode_matches_forward(model):
    out = forward_logits(model, ["john visited london"])
    np.testing.assert_allclose(model.encode(["john visited london"]), out.sentence_embedding.numpy(), atol=1e-6)


def test_encode_single_string_gives_a_vector(model):
    vector = model.encode("the movie was good")
    assert vector.shape == (32,)
    np.testing.assert_allclose(vector, model.encode(["the movie was good"])[0], atol=1e-6)


@pytest.mark.parametrize(
    ("convert_to", "check"),
    [
        ("numpy", lambda x: isinstance(x, np.ndarray) and x.shape == (0, 32)),
        ("torch", lambda x: isinstance(x, torch.Tensor) and tuple(x.shape) == (0, 32)),
        ("list", lambda x: x == []),
    ],
)
def test_encode_empty_list(model, convert_to, check):
    assert check(model.encode([], convert_to=convert_to))


def test_encode_output_types(model):
    as_numpy = model.encode(SENTENCES[:2])
    as_torch = model.encode(SENTENCES[:2], convert_to="torch")
    as_list = model.encode(SENTENCES[:2], convert_to="list")
    assert as_numpy.dtype == np.float32
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float32 and as_torch.device.type == "cpu"
    assert isinstance(as_list, list) and len(as_list) == 2 and isinstance(as_list[0], list)
    assert isinstance(as_list[0][0], float) and len(as_list[0]) == 32
    np.testing.assert_allclose(as_torch.numpy(), as_numpy)
    np.testing.assert_allclose(np.array(as_list), as_numpy, atol=1e-7)
    single = model.encode("fun", convert_to="list")
    assert isinstance(single, list) and isinstance(single[0], float)


def test_encode_rejects_unknown_convert_to(model):
    with pytest.raises(ValueError, match=re.escape("`convert_to` must be 'numpy', 'torch' or 'list', got 'pandas'.")):
        model.encode(SENTENCES, convert_to="pandas")


def test_encode_rejects_bad_batch_size(model):
    with pytest.raises(ValueError, match=re.escape("`batch_size` must be >= 1, got 0.")):
        model.encode(SENTENCES, batch_size=0)


def test_normalize_embeddings_overrides_config(model):
    raw = model.encode(SENTENCES)  # config.normalize is False
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    unit = model.encode(SENTENCES, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)


def test_normalize_embeddings_false_overrides_normalizing_config():
    torch.manual_seed(0)
    model = tiny_model(normalize=True)
    np.testing.assert_allclose(np.linalg.norm(model.encode(SENTENCES), axis=1), 1.0, atol=1e-6)
    assert not np.allclose(np.linalg.norm(model.encode(SENTENCES, normalize_embeddings=False), axis=1), 1.0)


def test_show_progress_bar(model, capsys):
    shown = model.encode(SENTENCES, batch_size=2, show_progress_bar=True)
    assert "Batches" in capsys.readouterr().err
    np.testing.assert_allclose(shown, model.encode(SENTENCES, batch_size=2), atol=1e-6)
    assert "Batches" not in capsys.readouterr().err


def test_encode_runs_in_eval_mode_and_restores_train_mode():
    torch.manual_seed(0)
    model = tiny_model(head_dropout=0.5)
    model.train()
    first = model.encode(SENTENCES)
    np.testing.assert_array_equal(first, model.encode(SENTENCES))  # dropout was off
    assert model.training and all(module.training for module in model.modules())
    model.eval()
    model.encode(SENTENCES)
    assert not any(module.training for module in model.modules())


def test_encode_builds_no_autograd_graph(model):
    embeddings = model.encode(SENTENCES, convert_to="torch")
    assert not embeddings.requires_grad and embeddings.grad_fn is None
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())
    (embeddings * 2).sum()  # a normal tensor, usable outside inference mode


def test_encode_with_explicit_max_length(model):
    truncated = model.encode("john visited london and paris", max_length=4)  # [CLS] john visited [SEP]
    np.testing.assert_allclose(truncated, model.encode("john visited"), atol=1e-6)


def test_config_max_seq_length_truncates(model):
    model.config.max_seq_length = 5  # [CLS] + 3 words + [SEP]
    np.testing.assert_allclose(
        model.encode("john visited london and paris"), model.encode("john visited london"), atol=1e-6
    )


def test_max_length_falls_back_to_position_embeddings(model):
    model.tokenizer.model_max_length = int(1e30)  # "no limit", as tokenizers without one report
    model.encode([LONG_TEXT])  # capped at the 64 position embeddings instead of failing in the backbone


@pytest.mark.parametrize("method", ["encode", "predict"])
def test_missing_tokenizer_raises(model, method):
    model.tokenizer = None
    with pytest.raises(ValueError, match=re.escape("This model has no tokenizer; set `model.tokenizer")):
        getattr(model, method)(SENTENCES)


def test_long_text_is_truncated_with_one_warning(model, caplog):
    with caplog.at_level(logging.WARNING):
        truncated = model.encode([LONG_TEXT, "fun"])
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert [r.getMessage() for r in warnings] == ["1 of 2 inputs were longer than 64 tokens and were truncated."]
    # 64 tokens = [CLS] + the first 62 words + [SEP]
    first_62_words = " ".join(LONG_TEXT.split()[:62])
    np.testing.assert_allclose(truncated[0], model.encode(first_62_words), atol=1e-5)

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        model.encode([LONG_TEXT])
        model.predict(LONG_TEXT)
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_predict_warns_about_truncation_too(model, caplog):
    with caplog.at_level(logging.WARNING):
        model.predict([LONG_TEXT], tasks="topic")
    assert "1 of 1 inputs were longer than 64 tokens and were truncated." in caplog.text


# ---------------------------------------------------------------- predict


def test_predict_classification_matches_softmax_of_forward(model):
    texts = ["the movie was good", "john lives in paris and plays music"]
    results = model.predict(texts, tasks=["topic", "sentiment"])
    out = forward_logits(model, texts)
    for task, labels in (("topic", ["sports", "politics", "science"]), ("sentiment", ["negative", "positive"])):
        probs = out.task_logits[task].softmax(-1)
        for row, result in enumerate(results):
            assert list(result[task]["scores"]) == labels
            np.testing.assert_allclose(list(result[task]["scores"].values()), probs[row].numpy(), atol=1e-6)
            assert result[task]["label"] == labels[int(probs[row].argmax())]
            assert result[task]["score"] == pytest.approx(float(probs[row].max()), abs=1e-6)
            assert sum(result[task]["scores"].values()) == pytest.approx(1.0, abs=1e-6)


def test_predict_label_follows_the_head(model):
    with torch.no_grad():
        model.heads["sentiment"].linear.bias.copy_(torch.tensor([-10.0, 10.0]))
    result = model.predict("the movie was bad", tasks="sentiment")["sentiment"]
    assert result["label"] == "positive" and result["score"] > 0.99


def test_predict_regression_score(model):
    texts = ["the movie was good", "bad"]
    results = model.predict(texts, tasks="similarity")
    expected = forward_logits(model, texts).task_logits["similarity"]
    assert [set(r["similarity"]) for r in results] == [{"score"}, {"score"}]
    np.testing.assert_allclose([r["similarity"]["score"] for r in results], expected.numpy(), atol=1e-6)


def test_predict_pairs_match_forward_on_pairs(model):
    pairs = [("the movie", "a film"), ("john won", "mary lost the game")]
    results = model.predict(pairs, tasks=["topic", "similarity"])
    out = forward_logits(model, [p[0] for p in pairs], [p[1] for p in pairs])
    for row, result in enumerate(results):
        np.testing.assert_allclose(
            list(result["topic"]["scores"].values()), out.task_logits["topic"][row].softmax(-1).numpy(), atol=1e-6
        )
        assert result["similarity"]["score"] == pytest.approx(float(out.task_logits["similarity"][row]), abs=1e-6)
    # segment ids reach the backbone: a pair is not the same input as the concatenated text
    joined = model.predict("the movie a film", tasks="similarity")["similarity"]["score"]
    assert joined != pytest.approx(results[0]["similarity"]["score"], abs=1e-6)


def test_predict_pairs_and_singles_cannot_mix(model):
    with pytest.raises(ValueError, match=re.escape("Mix of single texts and (text, text_pair) tuples")):
        model.predict(["the movie", ("the movie", "a film")], tasks="topic")


def test_predict_token_task_entities_and_tags(model):
    # Every word's first token -> B-PER, so every word is its own PER entity.
    with torch.no_grad():
        model.heads["ner"].linear.weight.zero_()
        model.heads["ner"].linear.bias.copy_(torch.tensor([0.0, 8.0, 0.0, 0.0, 0.0, 0.0]))
    text = "John   visited  PARIS"
    result = model.predict(text, tasks="ner")["ner"]
    assert result["tags"] == [("John", "B-PER"), ("visited", "B-PER"), ("PARIS", "B-PER")]
    assert [(e["entity"], e["word"], e["start"], e["end"]) for e in result["entities"]] == [
        ("PER", "John", 0, 4),
        ("PER", "visited", 7, 14),
        ("PER", "PARIS", 16, 21),
    ]
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["word"]
        assert 0.99 < entity["score"] <= 1.0


def test_predict_token_task_merges_inside_tags(model):
    # B-LOC on the first word, I-LOC on the others: one LOC entity spanning the whole text.
    with torch.no_grad():
        bias = torch.zeros(6)
        bias[4] = 8.0  # I-LOC
        model.heads["ner"].linear.weight.zero_()
        model.heads["ner"].linear.bias.copy_(bias)
    text = "new  london city"
    result = model.predict(text, tasks="ner")["ner"]
    assert [tag for _, tag in result["tags"]] == ["I-LOC"] * 3
    assert [(e["entity"], e["word"], e["start"], e["end"]) for e in result["entities"]] == [
        ("LOC", "new  london city", 0, 16)
    ]


def test_predict_token_task_with_random_head_is_consistent(model):
    texts = ["john visited paris", "Mary works at Google in London"]
    for text, result in zip(texts, model.predict(texts, tasks="ner")):
        words = [word for word, _ in result["ner"]["tags"]]
        assert words == text.split()
        labels = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"}
        assert all(tag in labels for _, tag in result["ner"]["tags"])
        for entity in result["ner"]["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["word"]
            assert entity["entity"] in {"PER", "LOC", "ORG"}


def test_predict_token_task_tags_match_forward_argmax(model):
    text = "john visited paris"
    tags = model.predict(text, tasks="ner")["ner"]["tags"]
    logits = forward_logits(model, [text]).task_logits["ner"][0]  # [CLS] john visited paris [SEP]
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    assert [tag for _, tag in tags] == [labels[int(i)] for i in logits[1:4].argmax(-1)]


def test_predict_all_tasks_by_default_and_subsets(model):
    everything = model.predict(["the movie was good"])
    assert list(everything[0]) == ["topic", "sentiment", "ner", "similarity"]
    assert list(model.predict(["fun"], tasks="sentiment")[0]) == ["sentiment"]
    assert list(model.predict(["fun"], tasks=["similarity", "topic"])[0]) == ["similarity", "topic"]


def test_predict_single_string_returns_one_dict(model):
    result = model.predict("the movie was good", tasks="topic")
    assert isinstance(result, dict) and list(result) == ["topic"]
    assert result == model.predict(["the movie was good"], tasks="topic")[0]


def test_predict_keeps_input_order(model):
    texts = SENTENCES
    together = model.predict(texts, tasks="similarity", batch_size=2)
    alone = [model.predict(text, tasks="similarity") for text in texts]
    for a, b in zip(together, alone):
        assert a["similarity"]["score"] == pytest.approx(b["similarity"]["score"], abs=1e-5)


def test_predict_empty_list(model):
    assert model.predict([], tasks="topic") == []


def test_predict_restores_train_mode(model):
    model.train()
    model.predict(["fun"], tasks="topic")
    assert model.training


def test_predict_unknown_task_names_known_tasks(model):
    message = "Unknown task 'nope'. This model has tasks ['topic', 'sentiment', 'ner', 'similarity']."
    with pytest.raises(ValueError, match=re.escape(message)):
        model.predict(["fun"], tasks=["topic", "nope"])
    with pytest.raises(ValueError, match=re.escape(message)):
        model.predict("fun", tasks="nope")


def test_predict_without_heads_points_to_encode():
    model = tiny_model(tasks=[])
    with pytest.raises(ValueError, match=re.escape("This model has no task heads; use `encode` for embeddings.")):
        model.predict(["fun"])


# ---------------------------------------------------------------- bad inputs

BAD_INPUTS = [
    pytest.param(
        [""], ValueError, "Input #0 is an empty string; pass text with at least one visible character.", id="empty"
    ),
    pytest.param("", ValueError, "Input #0 is an empty string", id="empty-single"),
    pytest.param(["fun", " \t\n"], ValueError, "Input #1 is an empty string", id="whitespace"),
    pytest.param(["fun", None], TypeError, "Input #1 is None; pass a non-empty string", id="none-item"),
    pytest.param(None, TypeError, "Expected a string or a list of strings, got NoneType.", id="none"),
    pytest.param({"text": "fun"}, TypeError, "Expected a string or a list of strings, got dict.", id="dict"),
    pytest.param(42, TypeError, "Expected a string or a list of strings, got int.", id="int"),
    pytest.param(b"fun", TypeError, "Expected a string or a list of strings, got bytes.", id="bytes"),
]


@pytest.mark.parametrize("method", ["encode", "predict"])
@pytest.mark.parametrize(("texts", "error", "message"), BAD_INPUTS)
def test_bad_inputs_raise(model, method, texts, error, message):
    with pytest.raises(error, match=re.escape(message)):
        getattr(model, method)(texts)


def test_non_string_item_raises(model):
    with pytest.raises(TypeError, match=re.escape("Input #1 must be a string, got int: 7.")):
        model.encode(["fun", 7])
    with pytest.raises(TypeError, match=re.escape("Input #0 must be a string or a (text, text_pair) tuple, got int")):
        model.predict([7])


def test_pairs_are_rejected_by_encode(model):
    with pytest.raises(TypeError, match=re.escape("Input #0 must be a string, got tuple")):
        model.encode([("the movie", "a film")])


def test_bad_pair_item_raises(model):
    with pytest.raises(ValueError, match=re.escape("Input #0 is an empty string")):
        model.predict([("the movie", "  ")])
    with pytest.raises(
        TypeError, match=re.escape("Input #0 must be a string or a (text, text_pair) tuple, got tuple")
    ):
        model.predict([("a", "b", "c")])

"""MultiTaskModel.forward: routing rows to heads, losses computed by hand, errors, backbones, class attributes."""

import inspect
import re

import pytest
import torch
from torch.nn import functional as F

from mtl_hf import POOLING_MODES, MultiTaskModel
from mtl_hf.modeling.pooling import pool
from mtl_hf.testing import TINY_TASKS, tiny_model

TEXTS = ["the movie was great fun", "john lives in paris", "bad"]
TASK_NAMES = ["topic", "sentiment", "ner", "similarity"]
WEIGHTS = {"topic": 0.5, "sentiment": 2.0, "ner": 1.5, "similarity": 3.0}  # see conftest.WEIGHTED_TASKS


def tokenize(model, texts, pairs=None):
    return model.tokenizer(texts, pairs, padding=True, return_tensors="pt")


def by_hand(model, batch):
    """Token states and pooled features computed from the backbone and `pool`, not through `model.embed`."""
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if "token_type_ids" in batch and model._backbone_takes_token_types:
        kwargs["token_type_ids"] = batch["token_type_ids"]
    token_states = model.backbone(**kwargs).last_hidden_state
    features = pool(token_states, batch["attention_mask"], model.config.pooling)
    if model.projection is not None:
        features = F.linear(features, model.projection.weight, model.projection.bias)
    return token_states, features


def head_logits(model, name, inputs):
    linear = model.heads[name].linear
    return F.linear(inputs, linear.weight, linear.bias)


def token_labels(batch, num_labels, seed=0):
    """Random tags on real word positions, -100 on [CLS], [SEP] and padding."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_labels, batch["input_ids"].shape, generator=generator)
    ignore = (batch["attention_mask"] == 0) | (batch["input_ids"] == 2) | (batch["input_ids"] == 3)
    return labels.masked_fill(ignore, -100)


# ---------------------------------------------------------------- losses and logits


def test_single_task_batch(model):
    batch = tokenize(model, TEXTS)
    labels = torch.tensor([0, 1, 1])
    out = model(**batch, task_ids=torch.tensor([1, 1, 1]), labels=labels)

    _, features = by_hand(model, batch)
    expected_logits = head_logits(model, "sentiment", features)
    assert out.logits.shape == (3, 2)
    assert list(out.task_logits) == ["sentiment"]
    torch.testing.assert_close(out.logits, expected_logits)
    expected_loss = F.cross_entropy(expected_logits, labels)
    torch.testing.assert_close(out.task_losses["sentiment"], expected_loss)
    torch.testing.assert_close(out.loss, WEIGHTS["sentiment"] * expected_loss)
    assert out.sentence_embedding.shape == (3, 32)


def test_mixed_task_batch_loss_is_weighted_sum_of_task_losses(model):
    batch = tokenize(model, TEXTS)
    labels = torch.tensor([2, 1, 0])
    out = model(**batch, task_ids=torch.tensor([0, 1, 0]), labels=labels)

    _, features = by_hand(model, batch)
    topic_logits = head_logits(model, "topic", features[[0, 2]])
    sentiment_logits = head_logits(model, "sentiment", features[[1]])
    topic_loss = F.cross_entropy(topic_logits, torch.tensor([2, 0]))
    sentiment_loss = F.cross_entropy(sentiment_logits, torch.tensor([1]))

    assert out.logits is None  # several tasks in the batch
    assert sorted(out.task_logits) == ["sentiment", "topic"]
    torch.testing.assert_close(out.task_logits["topic"], topic_logits)
    torch.testing.assert_close(out.task_logits["sentiment"], sentiment_logits)
    torch.testing.assert_close(out.task_losses["topic"], topic_loss)
    torch.testing.assert_close(out.task_losses["sentiment"], sentiment_loss)
    torch.testing.assert_close(out.loss, 0.5 * topic_loss + 2.0 * sentiment_loss)


def test_token_task_labels_with_ignore_index(model):
    batch = tokenize(model, TEXTS)
    labels = token_labels(batch, num_labels=6)
    out = model(**batch, task_ids=torch.tensor([2, 2, 2]), labels=labels)

    token_states, _ = by_hand(model, batch)
    logits = head_logits(model, "ner", token_states)
    assert out.logits.shape == (3, batch["input_ids"].shape[1], 6)
    torch.testing.assert_close(out.logits, logits)
    keep = labels != -100
    log_probs = logits.log_softmax(-1)[keep]
    expected = -log_probs.gather(1, labels[keep].unsqueeze(1)).mean()  # mean over kept positions only
    torch.testing.assert_close(out.task_losses["ner"], expected)
    torch.testing.assert_close(out.loss, 1.5 * expected)


def test_mixed_batch_with_token_task_uses_column_zero_for_sentence_labels(model):
    batch = tokenize(model, TEXTS)
    labels = torch.full(batch["input_ids"].shape, -100.0)
    tags = token_labels(batch, num_labels=6)[0]
    labels[0] = tags.float()  # row 0: ner tags
    labels[1, 0] = 1  # row 1: topic "politics"
    labels[2, 0] = 0.75  # row 2: similarity score
    out = model(**batch, task_ids=torch.tensor([2, 0, 3]), labels=labels)

    token_states, features = by_hand(model, batch)
    ner_loss = F.cross_entropy(head_logits(model, "ner", token_states[[0]])[0], tags, ignore_index=-100)
    topic_loss = F.cross_entropy(head_logits(model, "topic", features[[1]]), torch.tensor([1]))
    similarity_pred = head_logits(model, "similarity", features[[2]]).squeeze(-1)
    similarity_loss = F.mse_loss(similarity_pred, torch.tensor([0.75]))

    assert out.task_logits["similarity"].shape == (1,)
    torch.testing.assert_close(out.task_losses["ner"], ner_loss)
    torch.testing.assert_close(out.task_losses["topic"], topic_loss)
    torch.testing.assert_close(out.task_losses["similarity"], similarity_loss)
    torch.testing.assert_close(out.loss, 1.5 * ner_loss + 0.5 * topic_loss + 3.0 * similarity_loss)


def test_regression_batch(model):
    batch = tokenize(model, TEXTS)
    labels = torch.tensor([0.1, 0.9, 0.5])
    out = model(**batch, task_ids=torch.tensor([3, 3, 3]), labels=labels)
    _, features = by_hand(model, batch)
    predictions = head_logits(model, "similarity", features).squeeze(-1)
    assert out.logits.shape == (3,)
    torch.testing.assert_close(out.logits, predictions)
    torch.testing.assert_close(out.loss, 3.0 * F.mse_loss(predictions, labels))


def test_without_task_ids_every_head_runs_on_every_row(model):
    batch = tokenize(model, TEXTS)
    out = model(**batch)
    seq = batch["input_ids"].shape[1]
    assert list(out.task_logits) == TASK_NAMES
    assert out.task_logits["topic"].shape == (3, 3)
    assert out.task_logits["sentiment"].shape == (3, 2)
    assert out.task_logits["ner"].shape == (3, seq, 6)
    assert out.task_logits["similarity"].shape == (3,)
    assert out.loss is None and out.logits is None and out.task_losses is None
    _, features = by_hand(model, batch)
    torch.testing.assert_close(out.task_logits["topic"], head_logits(model, "topic", features))
    torch.testing.assert_close(out.sentence_embedding, features)


def test_task_logits_do_not_depend_on_the_other_rows(model):
    """Row routing: a row's logits are the same whether it is alone or in a mixed batch."""
    batch = tokenize(model, TEXTS)
    mixed = model(**batch, task_ids=torch.tensor([0, 1, 0]))
    alone = model(**tokenize(model, TEXTS[1:2]), task_ids=torch.tensor([1]))
    torch.testing.assert_close(mixed.task_logits["sentiment"], alone.logits, atol=1e-5, rtol=1e-5)


def test_single_task_model_takes_labels_without_task_ids():
    torch.manual_seed(0)
    model = tiny_model(tasks=[TINY_TASKS[1]]).eval()
    batch = tokenize(model, TEXTS)
    labels = torch.tensor([1, 0, 1])
    out = model(**batch, labels=labels)
    assert out.logits.shape == (3, 2)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))


def test_model_without_tasks_returns_embeddings_only():
    model = tiny_model(tasks=[]).eval()
    out = model(**tokenize(model, TEXTS))
    assert out.task_logits == {} and out.logits is None and out.loss is None
    assert out.sentence_embedding.shape == (3, 32)


def test_attention_mask_defaults_to_all_ones(model):
    input_ids = tokenize(model, ["john lives in paris"])["input_ids"]
    implicit = model(input_ids=input_ids)
    explicit = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    torch.testing.assert_close(implicit.sentence_embedding, explicit.sentence_embedding)


# ---------------------------------------------------------------- errors


def test_labels_without_task_ids_on_multi_task_model_raise(model):
    batch = tokenize(model, TEXTS)
    message = "`labels` were given without `task_ids`; this model has several tasks " + str(TASK_NAMES)
    with pytest.raises(ValueError, match=re.escape(message)):
        model(**batch, labels=torch.tensor([0, 1, 0]))


@pytest.mark.parametrize(("task_ids", "bad"), [([0, 4, 0], [4]), ([-1, 0, 7], [-1, 7])])
def test_task_id_out_of_range_raises(model, task_ids, bad):
    batch = tokenize(model, TEXTS)
    message = (
        f"Unknown task ids {bad}. This model has tasks {{0: 'topic', 1: 'sentiment', 2: 'ner', 3: 'similarity'}}."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        model(**batch, task_ids=torch.tensor(task_ids))


def test_task_ids_of_wrong_length_raise(model):
    with pytest.raises(ValueError, match=re.escape("`task_ids` has 2 entries for a batch of 3 rows.")):
        model(**tokenize(model, TEXTS), task_ids=torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("task_ids", "labels", "message"),
    [
        (
            [0, 0, 0],
            [0, 3, 1],
            "Task 'topic': labels [3] are outside its label set; expected ids 0..2 for "
            "['sports', 'politics', 'science'] (or -100 to ignore a position).",
        ),
        (
            [0, 1, 0],
            [0, -1, 1],
            "Task 'sentiment': labels [-1] are outside its label set; expected ids 0..1 for "
            "['negative', 'positive'] (or -100 to ignore a position).",
        ),
    ],
)
def test_label_outside_label_set_raises_naming_task_and_ids(model, task_ids, labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        model(**tokenize(model, TEXTS), task_ids=torch.tensor(task_ids), labels=torch.tensor(labels))


def test_token_label_outside_label_set_raises(model):
    batch = tokenize(model, TEXTS)
    labels = token_labels(batch, num_labels=6)
    labels[1, 1] = 6
    with pytest.raises(
        ValueError, match=re.escape("Task 'ner': labels [6] are outside its label set; expected ids 0..5")
    ):
        model(**batch, task_ids=torch.tensor([2, 2, 2]), labels=labels)


def test_input_ids_are_required(model):
    with pytest.raises(ValueError, match=re.escape("`input_ids` is required.")):
        model(attention_mask=torch.ones(1, 3, dtype=torch.long))


# ---------------------------------------------------------------- options


def test_projection_and_normalize():
    torch.manual_seed(0)
    model = tiny_model(projection_dim=8, normalize=True).eval()
    assert model.config.embedding_dim == 8
    assert model.heads["topic"].linear.in_features == 8  # sentence heads read the projection
    assert model.heads["ner"].linear.in_features == 32  # token heads read the token states
    batch = tokenize(model, TEXTS)
    out = model(**batch)
    assert out.sentence_embedding.shape == (3, 8)
    torch.testing.assert_close(out.sentence_embedding.norm(dim=-1), torch.ones(3))
    _, features = by_hand(model, batch)  # projected, not normalised
    assert not torch.allclose(features.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.sentence_embedding, F.normalize(features, dim=-1))
    torch.testing.assert_close(out.task_logits["topic"], head_logits(model, "topic", features))


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_every_pooling_mode_in_forward(mode):
    torch.manual_seed(0)
    model = tiny_model(pooling=mode).eval()
    batch = tokenize(model, TEXTS)
    token_states = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    expected = pool(token_states, batch["attention_mask"], mode)
    torch.testing.assert_close(model(**batch).sentence_embedding, expected)


def test_head_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    model = tiny_model(head_dropout=0.5)
    batch = tokenize(model, TEXTS)
    model.train()
    first, second = model(**batch).task_logits["topic"], model(**batch).task_logits["topic"]
    assert not torch.allclose(first, second)
    model.eval()
    torch.testing.assert_close(model(**batch).task_logits["topic"], model(**batch).task_logits["topic"])


# ---------------------------------------------------------------- backbones


@pytest.mark.parametrize("architecture", ["bert", "distilbert", "roberta"])
def test_backbones_train_end_to_end(architecture):
    torch.manual_seed(0)
    model = tiny_model(architecture=architecture)
    batch = tokenize(model, TEXTS[:2], ["a film", "the game"])  # pairs: token_type_ids has ones
    assert batch["token_type_ids"].any()
    labels = torch.tensor([2, 1])
    out = model(**batch, task_ids=torch.tensor([0, 1]), labels=labels)
    assert out.task_logits["topic"].shape == (1, 3)
    assert out.task_logits["sentiment"].shape == (1, 2)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.heads["topic"].parameters())
    assert all(p.grad is not None for p in model.heads["sentiment"].parameters())
    assert all(p.grad is None for p in model.heads["ner"].parameters())  # not in the batch
    assert model.backbone.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert model.backbone.config.model_type == architecture
    assert not any(key.startswith("backbone.pooler") for key in model.state_dict())  # P6


def test_distilbert_ignores_token_type_ids():
    torch.manual_seed(0)
    model = tiny_model(architecture="distilbert").eval()
    assert not model._backbone_takes_token_types
    batch = tokenize(model, ["the movie"], ["a film"])
    with_types = model(**batch).sentence_embedding
    without = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).sentence_embedding
    torch.testing.assert_close(with_types, without)


@pytest.mark.parametrize("architecture", ["bert", "roberta"])
def test_token_type_ids_reach_backbones_that_take_them(architecture):
    torch.manual_seed(0)
    model = tiny_model(architecture=architecture).eval()
    assert model._backbone_takes_token_types
    batch = tokenize(model, ["the movie"], ["a film"])
    with_types = model(**batch).sentence_embedding
    without = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).sentence_embedding
    assert not torch.allclose(with_types, without)


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [("bert", {"BertEmbeddings", "BertLayer"}), ("roberta", {"RobertaEmbeddings", "RobertaLayer"})],
)
def test_no_split_modules_come_from_the_backbone(architecture, expected):
    model = tiny_model(architecture=architecture)
    assert set(model._no_split_modules) == expected


def test_no_split_modules_follow_distilbert():
    """transformers' DistilBERT declares none; the wrapper must not invent or drop any (P4)."""
    model = tiny_model(architecture="distilbert")
    assert set(model._no_split_modules) == set(model.backbone._no_split_modules or [])


def test_roberta_padding_id_matches_tiny_tokenizer():
    model = tiny_model(architecture="roberta")
    assert model.backbone.embeddings.word_embeddings.padding_idx == model.tokenizer.pad_token_id


def test_class_attributes_for_trainer_and_loading(model):
    assert MultiTaskModel.accepts_loss_kwargs is False  # P3
    parameters = inspect.signature(MultiTaskModel.forward).parameters
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert list(parameters)[1:] == ["input_ids", "attention_mask", "token_type_ids", "task_ids", "labels"]
    assert MultiTaskModel.supports_gradient_checkpointing is True
    assert MultiTaskModel.base_model_prefix == "backbone"
    assert model.base_model is model.backbone
    assert list(model.heads) == TASK_NAMES

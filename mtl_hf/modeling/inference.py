"""Batched inference helpers behind `MultiTaskModel.encode` and `.predict` (travel with checkpoints)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from transformers.utils import logging

if TYPE_CHECKING:
    from .modeling_mtl import MultiTaskModel

logger = logging.get_logger(__name__)

Text = str | tuple[str, str]


def prepare_texts(texts: Sequence[Any], allow_pairs: bool = False) -> list[Text]:
    """Check inputs early: each must be a non-empty string (or a pair of them when `allow_pairs`)."""
    if isinstance(texts, (bytes, dict)) or not isinstance(texts, Sequence):
        raise TypeError(f"Expected a string or a list of strings, got {type(texts).__name__}.")
    checked: list[Text] = []
    for index, text in enumerate(texts):
        parts = text if allow_pairs and isinstance(text, (tuple, list)) and len(text) == 2 else (text,)
        for part in parts:
            if part is None:
                raise TypeError(f"Input #{index} is None; pass a non-empty string (drop or fill missing texts).")
            if not isinstance(part, str):
                kind = "a string or a (text, text_pair) tuple" if allow_pairs else "a string"
                raise TypeError(f"Input #{index} must be {kind}, got {type(part).__name__}: {part!r:.60}.")
            if not part.strip():
                raise ValueError(f"Input #{index} is an empty string; pass text with at least one visible character.")
        checked.append(tuple(parts) if len(parts) == 2 else parts[0])
    return checked


def resolve_max_length(model: MultiTaskModel, max_length: int | None) -> int:
    """The explicit value, else the config's `max_seq_length`, else what tokenizer and positions allow."""
    if max_length:
        return max_length
    if model.config.max_seq_length:
        return model.config.max_seq_length
    limits = [
        getattr(model.config.encoder_config, "max_position_embeddings", None),
        getattr(model.tokenizer, "model_max_length", None),  # no tokenizer: `tokenize` raises the helpful error
    ]
    return min((int(v) for v in limits if v and v < 1_000_000), default=512)


def tokenize(model: MultiTaskModel, texts: list[Text], max_length: int, offsets: bool = False):
    """Tokenise every text in one call (the fast tokenizer runs in parallel), without padding."""
    if model.tokenizer is None:
        raise ValueError("This model has no tokenizer; set `model.tokenizer = AutoTokenizer.from_pretrained(...)`.")
    firsts = [t[0] if isinstance(t, tuple) else t for t in texts]
    seconds = [t[1] for t in texts if isinstance(t, tuple)]
    if seconds and len(seconds) != len(texts):
        raise ValueError("Mix of single texts and (text, text_pair) tuples; pass one kind per call.")
    encoded = model.tokenizer(
        firsts,
        seconds or None,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_offsets_mapping=offsets,
    )
    if not model._warned_truncation and encoded.encodings:
        truncated = sum(1 for enc in encoded.encodings if enc.overflowing)
        if truncated:
            logger.warning(
                f"{truncated} of {len(texts)} inputs were longer than {max_length} tokens and were truncated."
            )
            model._warned_truncation = True
    return encoded


def padded_batches(
    encoded, batch_size: int, pad_id: int, device: torch.device
) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """Yield (row indices, padded tensors) in order of decreasing length, so each batch pads little."""
    ids = encoded["input_ids"]
    types = encoded.get("token_type_ids")
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = len(ids[rows[0]])
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        token_type_ids = torch.zeros((len(rows), width), dtype=torch.long) if types is not None else None
        for r, i in enumerate(rows):
            n = len(ids[i])
            input_ids[r, :n] = torch.tensor(ids[i])
            attention_mask[r, :n] = 1
            if token_type_ids is not None:
                token_type_ids[r, :n] = torch.tensor(types[i])
        batch = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
        if token_type_ids is not None and bool(token_type_ids.any()):
            batch["token_type_ids"] = token_type_ids.to(device)
        yield rows, batch


class eval_mode:
    """Context manager: eval mode and no autograd, restoring the training flag afterwards."""

    def __init__(self, model: torch.nn.Module):
        self.model, self.was_training = model, model.training
        self.inference = torch.inference_mode()

    def __enter__(self):
        self.model.eval()
        self.inference.__enter__()

    def __exit__(self, *exc):
        self.inference.__exit__(*exc)
        self.model.train(self.was_training)


def encode_sorted(
    model: MultiTaskModel,
    texts: list[Text],
    run: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    batch_size: int,
    max_length: int | None,
    show_progress_bar: bool,
    width: int,
) -> torch.Tensor:
    """Run `run` over length-sorted batches and return its rows (on CPU, float32) in input order."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if not texts:
        return torch.zeros((0, width))
    encoded = tokenize(model, texts, resolve_max_length(model, max_length))
    out = torch.empty((len(texts), width))
    batches = padded_batches(encoded, batch_size, model.tokenizer.pad_token_id or 0, model.device)
    if show_progress_bar:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=-(-len(texts) // batch_size), desc="Batches")
    with eval_mode(model):
        for rows, batch in batches:
            out[rows] = run(batch).float().cpu()
    return out


def decode_predictions(
    model: MultiTaskModel, texts: list[Text], names: list[str], batch_size: int, max_length: int | None
) -> list[dict[str, Any]]:
    """Run the backbone once per batch and every requested head on it; decode labels, scores and spans."""
    if not texts:
        return []
    encoded = tokenize(model, texts, resolve_max_length(model, max_length), offsets=True)
    results: list[dict[str, Any]] = [{} for _ in texts]
    with eval_mode(model):
        for rows, batch in padded_batches(encoded, batch_size, model.tokenizer.pad_token_id or 0, model.device):
            token_states, features = model.embed(
                batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
            )
            for name in names:
                task, head = model.config.get_task(name), model.heads[name]
                logits = head(token_states if head.level == "token" else features).float().cpu()
                for r, i in enumerate(rows):
                    results[i][name] = _decode_one(task, logits[r], encoded, i, texts[i])
    return results


def _decode_one(task: dict, logits: torch.Tensor, encoded, index: int, text: Text) -> dict[str, Any]:
    labels = task["labels"]
    if task["type"] == "regression":
        return {"score": float(logits)}
    if task["type"] == "classification":
        probs = logits.softmax(-1)
        best = int(probs.argmax())
        return {"label": labels[best], "score": float(probs[best]), "scores": dict(zip(labels, probs.tolist()))}
    return _decode_tokens(labels, logits.softmax(-1), encoded, index, text[0] if isinstance(text, tuple) else text)


def _decode_tokens(labels: list[str], probs: torch.Tensor, encoded, index: int, text: str) -> dict[str, Any]:
    """Per-word tags (from each word's first sub-token) and IOB2 entity spans with character offsets."""
    encoding = encoded.encodings[index]
    offsets = encoding.offsets
    words: dict[int, list[int]] = {}
    for position, (word, sequence) in enumerate(zip(encoding.word_ids, encoding.sequence_ids)):
        if word is not None and sequence == 0:
            words.setdefault(word, []).append(position)
    tags, entities, current = [], [], None
    for positions in words.values():
        first = positions[0]
        best = int(probs[first].argmax())
        tag, score = labels[best], float(probs[first, best])
        start, end = offsets[first][0], offsets[positions[-1]][1]
        tags.append((text[start:end], tag))
        prefix, _, kind = tag.partition("-")
        if prefix in ("B", "I") and kind and not (prefix == "I" and current and current["entity"] == kind):
            current = {"entity": kind, "start": start, "end": end, "scores": [score]}
            entities.append(current)
        elif prefix == "I" and current and current["entity"] == kind:
            current["end"] = end
            current["scores"].append(score)
        else:
            current = None
    spans = [
        {
            "entity": e["entity"],
            "word": text[e["start"] : e["end"]],
            "start": e["start"],
            "end": e["end"],
            "score": sum(e["scores"]) / len(e["scores"]),
        }
        for e in entities
    ]
    return {"entities": spans, "tags": tags}

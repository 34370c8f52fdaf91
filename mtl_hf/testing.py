"""Offline factories for tiny models, tokenizers, tasks, run configs and training arguments, for mtl_hf's tests and
users' own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import BertConfig, DistilBertConfig, PreTrainedTokenizerFast, RobertaConfig

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer

    from .training_args import MultiTaskTrainingArguments

TINY_WORDS = (
    "the a an is was good bad great awful movie film plot actor acting love hate boring fun paris london "
    "john mary google apple works lives in at on visited city company team played won lost game match "
    "sports politics science music song new old happy sad angry"
).split()

TINY_TASKS = [
    {"name": "topic", "type": "classification", "labels": ["sports", "politics", "science"]},
    {"name": "sentiment", "type": "classification", "labels": ["negative", "positive"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]},
    {"name": "similarity", "type": "regression"},
]

# The tasks of a tiny run: a checkpoint saved with these heads matches `tiny_task_entries()`.
TINY_RUN_TASKS = [
    {"name": "sentiment", "labels": ["negative", "positive"]},
    {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "B-LOC"]},
]
# Tests count steps from these sizes: the train files hold each list twice (12 sentiment rows, 6 NER sentences), the
# validation files the first 4 sentiment rows and the 3 sentences once.
TINY_SENTIMENT_ROWS = [
    ("the movie was good fun", "positive"),
    ("bad boring film", "negative"),
    ("great acting", "positive"),
    ("awful plot", "negative"),
    ("i love the song", "positive"),
    ("i hate the game", "negative"),
]
TINY_NER_SENTENCES = [
    [("john", "B-PER"), ("lives", "O"), ("in", "O"), ("paris", "B-LOC")],
    [("mary", "B-PER"), ("visited", "O"), ("london", "B-LOC")],
    [("john", "B-PER"), ("won", "O"), ("the", "O"), ("game", "O")],
]
# Trainer settings every tiny run shares: small, quiet, deterministic, nothing saved or reported.
_QUIET_TRAINER_SETTINGS = {
    "per_device_train_batch_size": 4,
    "learning_rate": 1.0e-2,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "disable_tqdm": True,
    "dataloader_pin_memory": False,
    "seed": 0,
}


def bert_style_tokenizer(backend: Tokenizer, **kwargs: Any) -> PreTrainedTokenizerFast:
    """Wrap a `tokenizers` backend whose vocabulary holds [PAD] [UNK] [CLS] [SEP]: BERT's specials and templates."""
    from tokenizers import processors

    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", **kwargs
    )


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level BERT-style tokenizer over `TINY_WORDS` (no download)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + list(dict.fromkeys(TINY_WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return bert_style_tokenizer(
        backend,
        mask_token="[MASK]",
        model_max_length=64,
        # BERT-style: return segment ids, so pair inputs reach the backbone as they do with real BERT tokenizers.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def tiny_encoder_config(architecture: str = "bert", vocab_size: int = 99) -> dict:
    """A 2-layer, 32-wide encoder config as a dict, for `bert`, `distilbert` or `roberta`."""
    bert_like = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 37,
    }
    if architecture == "bert":
        config = BertConfig(**bert_like, max_position_embeddings=64)
    elif architecture == "distilbert":
        config = DistilBertConfig(
            vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64
        )
    elif architecture == "roberta":
        # Match `tiny_tokenizer`'s [PAD] (id 0): RoBERTa derives position ids from this id and zeroes its
        # embedding, so id 1 would turn the tiny tokenizer's [UNK] into padding.
        config = RobertaConfig(**bert_like, max_position_embeddings=70, pad_token_id=0)
    else:
        raise ValueError(f"Unknown tiny architecture {architecture!r}; choose bert, distilbert or roberta.")
    return config.to_dict()


def tiny_model(tasks: list[dict] | None = None, architecture: str = "bert", **config_kwargs):
    """A randomly initialised `MultiTaskModel` with the tiny tokenizer attached."""
    from .modeling import MultiTaskConfig, MultiTaskModel

    tokenizer = tiny_tokenizer()
    config = MultiTaskConfig(
        encoder_config=tiny_encoder_config(architecture, vocab_size=len(tokenizer)),
        tasks=TINY_TASKS if tasks is None else tasks,
        **config_kwargs,
    )
    model = MultiTaskModel(config)
    model.tokenizer = tokenizer
    return model


def save_tiny_checkpoint(path: str | Path, tasks: list[dict] | None = None, seed: int = 0) -> Path:
    """Save a `tiny_model` (default: `TINY_RUN_TASKS`), initialised from `seed`, to `path`."""
    import torch

    torch.manual_seed(seed)
    tiny_model(TINY_RUN_TASKS if tasks is None else tasks).save_pretrained(path)
    return Path(path)


# ---------------------------------------------------------------- tiny runs: data files and run configs


def write_tiny_csv(path: str | Path, rows: Sequence[tuple[str, str]]) -> None:
    """Write `(text, label)` rows as a CSV with a `text,label` header."""
    lines = ["text,label"] + [f"{text},{label}" for text, label in rows]
    Path(path).write_text("\n".join(lines) + "\n")


def _write_conll(path: Path, sentences: Sequence[Sequence[tuple[str, str]]]) -> None:
    path.write_text("\n\n".join("\n".join(f"{word}\t{tag}" for word, tag in s) for s in sentences) + "\n")


def tiny_task_entries() -> list[dict]:
    """Run-config task entries for `TINY_RUN_TASKS`, reading the files `write_tiny_task_files` writes."""
    sentiment, ner = TINY_RUN_TASKS
    return [
        {
            **sentiment,
            "labels": list(sentiment["labels"]),
            "text_columns": ["text"],
            "data_files": {"train": "sentiment_train.csv", "validation": "sentiment_validation.csv"},
        },
        {
            **ner,
            "labels": list(ner["labels"]),
            "data_files": {"train": "ner_train.conll", "validation": "ner_validation.conll"},
        },
    ]


def write_tiny_task_files(folder: str | Path) -> list[dict]:
    """Write the sentiment CSVs and NER CoNLL files of a tiny run to `folder`; return `tiny_task_entries()`."""
    folder = Path(folder)
    write_tiny_csv(folder / "sentiment_train.csv", TINY_SENTIMENT_ROWS * 2)
    write_tiny_csv(folder / "sentiment_validation.csv", TINY_SENTIMENT_ROWS[:4])
    _write_conll(folder / "ner_train.conll", TINY_NER_SENTENCES * 2)
    _write_conll(folder / "ner_validation.conll", TINY_NER_SENTENCES)
    return tiny_task_entries()


def write_tiny_run_config(
    folder: str | Path,
    checkpoint: str | Path,
    tasks: list[dict] | None = None,
    *,
    filename: str = "run.yaml",
    **settings: Any,
) -> Path:
    """Write the tiny data files and a run config for `checkpoint` to `folder`; return the config's path.

    Two epochs at batch size 4 and lr 1e-2, evaluated every epoch, quiet and unsaved, into `folder / "out"`;
    `tasks` (default `tiny_task_entries()`) and `settings` override.
    """
    import yaml

    folder = Path(folder)
    entries = write_tiny_task_files(folder)
    config = {
        "model_name_or_path": str(checkpoint),
        "tasks": entries if tasks is None else tasks,
        "output_dir": str(folder / "out"),
        "num_train_epochs": 2,
        "eval_strategy": "epoch",
        **_QUIET_TRAINER_SETTINGS,
        **settings,
    }
    path = folder / filename
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------- training arguments and parameter changes


def tiny_training_args(output_dir: str | Path, **overrides: Any) -> MultiTaskTrainingArguments:
    """`MultiTaskTrainingArguments` for tiny runs: batch size 4, lr 1e-2, a log every step, seed 0, nothing saved."""
    from .training_args import MultiTaskTrainingArguments

    return MultiTaskTrainingArguments(output_dir=str(output_dir), **{**_QUIET_TRAINER_SETTINGS, **overrides})


def parameter_snapshot(model) -> dict[str, torch.Tensor]:
    """A detached copy of every named parameter of `model`."""
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def changed_parameters(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    """The names in `before` whose tensor in `after` is not bit-identical (snapshots or state dicts)."""
    import torch

    return {name for name in before if not torch.equal(before[name], after[name])}


TINY_TEXTS = ["the movie was good fun", "bad boring film", "john lives in paris", "mary visited london"]


def tiny_task_datasets(tokenizer, tasks: list[dict] | None = None, names: tuple[str, ...] | None = None) -> dict:
    """Four tokenised rows per task of `tasks` (default `TINY_TASKS`), with task ids in that order.

    Labels: topic / sentiment class ids, NER tags 0-2 on every word token (-100 on [CLS]/[SEP]), similarity floats.
    With batch size 4 this is one batch per task and epoch. `names` keeps only those tasks.
    """
    from datasets import Dataset

    tasks = TINY_TASKS if tasks is None else tasks
    encoded = tokenizer(TINY_TEXTS)
    tags = [[-100] + [i % 3 for i in range(len(ids) - 2)] + [-100] for ids in encoded["input_ids"]]
    labels = {"topic": [0, 1, 2, 0], "sentiment": [1, 0, 1, 0], "ner": tags, "similarity": [0.9, 0.1, 0.5, 0.3]}
    return {
        task["name"]: Dataset.from_dict({**encoded, "labels": labels[task["name"]], "task_ids": [i] * len(TINY_TEXTS)})
        for i, task in enumerate(tasks)
        if names is None or task["name"] in names
    }

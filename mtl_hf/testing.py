"""Offline factories for tiny models, tokenizers and tasks, for mtl_hf's tests and users' own."""

from __future__ import annotations

from transformers import BertConfig, DistilBertConfig, PreTrainedTokenizerFast, RobertaConfig

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


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level BERT-style tokenizer over `TINY_WORDS` (no download)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + list(dict.fromkeys(TINY_WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
        # BERT-style: return segment ids, so pair inputs reach the backbone as they do with real BERT tokenizers.
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def tiny_encoder_config(architecture: str = "bert", vocab_size: int = 99) -> dict:
    """A 2-layer, 32-wide encoder config as a dict, for `bert`, `distilbert` or `roberta`."""
    if architecture == "bert":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    elif architecture == "distilbert":
        config = DistilBertConfig(
            vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64
        )
    elif architecture == "roberta":
        config = RobertaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=70,
            # Match `tiny_tokenizer`'s [PAD] (id 0): RoBERTa derives position ids from this id and zeroes its
            # embedding, so id 1 would turn the tiny tokenizer's [UNK] into padding.
            pad_token_id=0,
        )
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

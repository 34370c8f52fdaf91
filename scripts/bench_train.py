"""Training throughput: MultiTaskTrainer on one task vs the plain Trainer + AutoModelForSequenceClassification.

    python scripts/bench_train.py                          # SST-2 train subsample, packaged MiniLM, 40 steps
    python scripts/bench_train.py --samples 4000 --steps 80 --batch-size 32

Both runs use the same sentences, backbone, batch size, number of steps, optimizer and length grouping; they
alternate `--repeats` times and the median samples/s of each is printed with the ratio (target >= 0.95). It also
prints the padding waste (padded tokens / real tokens) of mtl_hf's task sampler over one epoch (target <= 10%),
next to the waste of unsorted random batches.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from mtl_hf import MultiTaskModel, resolve_backbone
from mtl_hf.data import MultiTaskBatchSampler, padding_waste
from mtl_hf.trainer import MultiTaskTrainer
from mtl_hf.training_args import MultiTaskTrainingArguments

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "train.tsv"


def read_sst2(path: Path, limit: int) -> tuple[list[str], list[int]]:
    if not path.is_file():
        raise FileNotFoundError(f"Benchmark data {path} not found; pass --data PATH (SST-2 style TSV).")
    rows = [line.rsplit("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1 : limit + 1]]
    return [text.strip() for text, _ in rows], [int(label) for _, label in rows]


def common_args(output_dir: str, args: argparse.Namespace) -> dict:
    return dict(
        output_dir=output_dir,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=5e-5,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        logging_steps=10_000,
        disable_tqdm=True,
        train_sampling_strategy="group_by_length",
        seed=42,
        dataloader_num_workers=0,
    )


def run_mtl(source: str, tokenized: Dataset, args: argparse.Namespace, output_dir: str) -> float:
    model = MultiTaskModel.from_backbone(source, tasks=[{"name": "sst2", "labels": ["negative", "positive"]}])
    train = tokenized.add_column("task_ids", [0] * len(tokenized))
    trainer = MultiTaskTrainer(
        model=model, args=MultiTaskTrainingArguments(**common_args(output_dir, args)), train_dataset={"sst2": train}
    )
    return trainer.train().metrics["train_samples_per_second"]


def run_plain(source: str, tokenized: Dataset, tokenizer, args: argparse.Namespace, output_dir: str) -> float:
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**common_args(output_dir, args)),
        train_dataset=tokenized,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    return trainer.train().metrics["train_samples_per_second"]


def sampler_waste(lengths: list[int], batch_size: int, group_by_length: bool) -> float:
    sampler = MultiTaskBatchSampler([len(lengths)], batch_size, lengths=[lengths], group_by_length=group_by_length)
    return padding_waste(list(sampler), lengths)


def trainer_sampler_waste(lengths: list[int], batch_size: int) -> float:
    """Padding waste of the plain Trainer's `LengthGroupedSampler` (what `group_by_length` gives it)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    torch.manual_seed(42)
    order = list(LengthGroupedSampler(batch_size, lengths=lengths))
    return padding_waste([order[i : i + batch_size] for i in range(0, len(order), batch_size)], lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    hf_logging.set_verbosity_error()

    source = resolve_backbone(None)
    tokenizer = AutoTokenizer.from_pretrained(source)
    texts, labels = read_sst2(args.data, args.samples)
    tokenized = Dataset.from_dict({"text": texts, "labels": labels}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=128), batched=True, remove_columns=["text"]
    )
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            torch.manual_seed(0)
            ours.append(run_mtl(source, tokenized, args, tmp))
            torch.manual_seed(0)
            plain.append(run_plain(source, tokenized, tokenizer, args, tmp))
    lengths = [len(ids) for ids in tokenized["input_ids"]]
    ours_rate, plain_rate = statistics.median(ours), statistics.median(plain)
    print(
        f"data: {args.data} ({len(texts)} sentences) | batch {args.batch_size} | {args.steps} steps "
        f"| torch threads {torch.get_num_threads()} | backbone {source}"
    )
    print(f"MultiTaskTrainer + MultiTaskModel            {ours_rate:8.1f} samples/s  (runs: {ours})")
    print(f"Trainer + AutoModelForSequenceClassification {plain_rate:8.1f} samples/s  (runs: {plain})")
    print(f"ratio: {ours_rate / plain_rate:.3f}  (target >= 0.95)")
    ours_waste = sampler_waste(lengths, args.batch_size, True)
    print(
        f"padding waste (padded / real tokens): mtl_hf task sampler {ours_waste:.1%} (target <= 10%), "
        f"Trainer LengthGroupedSampler {trainer_sampler_waste(lengths, args.batch_size):.1%}, "
        f"random batches {sampler_waste(lengths, args.batch_size, False):.1%}"
    )


if __name__ == "__main__":
    main()

"""`mtl-hf`: train, evaluate, predict and encode from the command line.

Examples:

    mtl-hf train configs/quickstart.yaml
    mtl-hf train configs/quickstart.yaml --num_train_epochs 1 --learning_rate 1e-4 --output_dir outputs/try
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/train.py --config configs/real_mtl.yaml
    mtl-hf evaluate outputs/quickstart configs/quickstart.yaml
    mtl-hf predict outputs/quickstart "Apple opened a new office in Paris." --tasks topic,ner
    mtl-hf encode "first sentence" "second sentence" --output embeddings.npy

YAML keys fill the arguments of `ModelArguments`, `DataArguments` and `MultiTaskTrainingArguments`; `--key value`
flags after the config override them; unknown keys fail with the list of valid ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtl-hf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="Train a multi-task model from a YAML run config.")
    train.add_argument("config", help="YAML run config (see configs/).")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs that override the config.")

    evaluate = commands.add_parser("evaluate", help="Evaluate a saved model on the config's validation/test data.")
    evaluate.add_argument("model", help="mtl_hf checkpoint folder.")
    evaluate.add_argument("config", help="YAML run config whose tasks give the data.")
    evaluate.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value overrides.")

    predict = commands.add_parser("predict", help="Labels/scores of every task head for some texts (JSON lines).")
    predict.add_argument("model", help="mtl_hf checkpoint folder.")
    predict.add_argument("texts", nargs="*", help="Texts to label (or use --input-file).")
    predict.add_argument("--tasks", default=None, help="Comma-separated task names (default: all).")
    predict.add_argument("--input-file", type=Path, default=None, help="One text per line.")
    predict.add_argument("--batch-size", type=int, default=32)

    encode = commands.add_parser("encode", help="Sentence embeddings for some texts.")
    encode.add_argument("texts", nargs="*", help="Texts to encode (or use --input-file).")
    encode.add_argument("--model", default=None, help="Checkpoint or encoder (default: all-MiniLM-L6-v2).")
    encode.add_argument("--input-file", type=Path, default=None, help="One text per line.")
    encode.add_argument("--output", type=Path, default=None, help="Save embeddings as .npy.")
    encode.add_argument("--batch-size", type=int, default=32)
    return parser


def _read_texts(texts: list[str], input_file: Path | None) -> list[str]:
    if input_file is not None:
        if not input_file.is_file():
            raise FileNotFoundError(f"Input file {input_file} does not exist.")
        texts = texts + [line for line in input_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValueError("No texts given; pass them as arguments or with --input-file.")
    return texts


def _configure_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("mtl_hf").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    _configure_logging()
    try:
        return _run(args)
    except (ValueError, TypeError, OSError) as err:  # TypeError: a config entry of the wrong type
        print(f"mtl-hf {args.command}: error: {err}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from .run_config import load_run_config, parse_overrides

    if args.command == "train":
        from .training import run_training

        run_training(*load_run_config(args.config, parse_overrides(args.overrides)))
    elif args.command == "evaluate":
        from .training import run_evaluation

        _, data_args, training_args = load_run_config(args.config, parse_overrides(args.overrides))
        run_evaluation(args.model, data_args, training_args)
    elif args.command == "predict":
        from .loading import load_model

        model = load_model(args.model)
        tasks = args.tasks.split(",") if args.tasks else None
        texts = _read_texts(args.texts, args.input_file)
        for text, result in zip(texts, model.predict(texts, tasks=tasks, batch_size=args.batch_size)):
            print(json.dumps({"text": text, **result}, ensure_ascii=False))
    elif args.command == "encode":
        from .loading import load_model

        model = load_model(args.model)
        embeddings = model.encode(_read_texts(args.texts, args.input_file), batch_size=args.batch_size)
        if args.output is not None:
            np.save(args.output, embeddings)
            print(f"Saved embeddings of shape {embeddings.shape} to {args.output}")
        else:
            np.set_printoptions(precision=4, suppress=True, linewidth=120)
            print(f"shape {embeddings.shape}")
            print(embeddings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

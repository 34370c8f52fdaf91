"""Thin launcher for `accelerate launch` / `torchrun`:

accelerate launch scripts/train.py --config configs/quickstart.yaml [--key value ...]
accelerate launch --config_file configs/accelerate/multi_cpu.yaml scripts/train.py --config configs/quickstart.yaml
"""

import sys

from mtl_hf.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--config"]:
        argv = argv[1:]
    elif argv and argv[0].startswith("--config="):
        argv = [argv[0].split("=", 1)[1]] + argv[1:]
    sys.exit(main(["train", *argv]))

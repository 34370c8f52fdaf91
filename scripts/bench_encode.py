"""Encoding throughput: mtl_hf vs sentence-transformers on the same packaged model, side by side in one run.

    python scripts/bench_encode.py                                   # SST-2 dev (872 sentences), batch 32
    python scripts/bench_encode.py --data ../shared/data/sst2/train.tsv --limit 5000 --batch-size 64

Prints sentences/s of both, their ratio (mtl_hf / sentence-transformers; target >= 1.0) and the minimum cosine
between the two embeddings of each sentence (target >= 0.99999). Runs alternate and the median of `--repeats`
timed runs is reported, after one warm-up run each.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mtl_hf import MultiTaskModel, resolve_backbone

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "dev.tsv"


def read_sentences(path: Path, limit: int | None) -> list[str]:
    """First column of a TSV with a header (SST-2 layout)."""
    if not path.is_file():
        raise FileNotFoundError(f"Benchmark data {path} not found; pass --data PATH (a TSV with a header).")
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0].strip() for line in lines if line.strip()]
    return sentences[:limit] if limit else sentences


def timed(encode, sentences: list[str]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    embeddings = encode(sentences)
    return time.perf_counter() - start, embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    sentences = read_sentences(args.data, args.limit)
    source = resolve_backbone(None)
    ours = MultiTaskModel.from_backbone(None).to(args.device)  # mean pooling + normalise, as the checkpoint says
    theirs = SentenceTransformer(source, device=args.device)

    def encode_ours(batch: list[str]) -> np.ndarray:
        return ours.encode(batch, batch_size=args.batch_size)

    def encode_theirs(batch: list[str]) -> np.ndarray:
        return theirs.encode(batch, batch_size=args.batch_size, convert_to_numpy=True)

    timed(encode_ours, sentences[:256])
    timed(encode_theirs, sentences[:256])
    ours_times, theirs_times = [], []
    for _ in range(args.repeats):
        t, ours_emb = timed(encode_ours, sentences)
        ours_times.append(t)
        t, theirs_emb = timed(encode_theirs, sentences)
        theirs_times.append(t)
    ours_rate = len(sentences) / statistics.median(ours_times)
    theirs_rate = len(sentences) / statistics.median(theirs_times)
    cosines = (ours_emb * theirs_emb).sum(1) / (np.linalg.norm(ours_emb, axis=1) * np.linalg.norm(theirs_emb, axis=1))
    print(
        f"data: {args.data} ({len(sentences)} sentences) | batch {args.batch_size} | device {args.device} "
        f"| torch threads {torch.get_num_threads()} | model {source}"
    )
    print(f"mtl_hf                 {ours_rate:9.1f} sentences/s  (median of {args.repeats})")
    print(f"sentence-transformers  {theirs_rate:9.1f} sentences/s  (median of {args.repeats})")
    print(f"ratio mtl_hf / sentence-transformers: {ours_rate / theirs_rate:.3f}  (target >= 1.0)")
    print(f"min cosine between the two embeddings: {cosines.min():.7f}  (target >= 0.99999)")


if __name__ == "__main__":
    main()

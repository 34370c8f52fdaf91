"""Encode a few sentences with the default backbone and show the embeddings and their cosine similarities.

python scripts/encode_demo.py                    # packaged all-MiniLM-L6-v2 when offline
python scripts/encode_demo.py --plot sim.png     # also save a heat map
python scripts/encode_demo.py --model outputs/quickstart --pooling cls
"""

from __future__ import annotations

import argparse

import numpy as np

from mtl_hf import load_model
from mtl_hf.plotting import plot_similarity

SENTENCES = [
    "The striker scored twice in the final minutes.",
    "A late double from the forward won the match.",
    "Parliament passed the new budget on Tuesday.",
    "Lawmakers approved the spending plan this week.",
    "The telescope captured images of a distant galaxy.",
    "I loved every minute of this film.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Encoder name/folder or mtl_hf checkpoint (default MiniLM).")
    parser.add_argument("--pooling", default=None, choices=["mean", "cls", "max", "mean_sqrt_len"])
    parser.add_argument("--plot", default=None, help="Save a cosine-similarity heat map to this PNG.")
    args = parser.parse_args()

    model = load_model(args.model, pooling=args.pooling)
    embeddings = model.encode(SENTENCES, normalize_embeddings=True)
    print(
        f"model: {args.model or 'sentence-transformers/all-MiniLM-L6-v2'} | pooling={model.config.pooling} "
        f"| normalize={model.config.normalize} | projection_dim={model.config.projection_dim}"
    )
    print(f"embeddings: shape={embeddings.shape} dtype={embeddings.dtype}")
    for sentence, row in zip(SENTENCES, embeddings):
        print(f"  {np.array2string(row[:4], precision=4, suppress_small=True)} ... {sentence}")
    similarity = embeddings @ embeddings.T
    print("cosine similarity:")
    print("      " + " ".join(f"{j:>6}" for j in range(len(SENTENCES))))
    for i, row in enumerate(similarity):
        print(f"{i:>5} " + " ".join(f"{v:6.3f}" for v in row))
    if args.plot:
        plot_similarity(similarity, [s[:32] for s in SENTENCES], args.plot)
        print(f"saved heat map to {args.plot}")


if __name__ == "__main__":
    main()

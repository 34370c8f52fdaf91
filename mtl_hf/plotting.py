"""Figures: similarity heat maps and training curves (matplotlib, installed with the `plot` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("Plotting needs matplotlib: `pip install 'mtl_hf[plot]'`.") from err
    return plt


def plot_similarity(similarity: np.ndarray, labels: list[str], path: str | Path) -> Path:
    """Save a cosine-similarity heat map with the value in each cell."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.0 * len(labels) + 2))
    image = ax.imshow(similarity, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_task_curves(curves: dict[str, list[dict]], tasks: dict[str, str], path: str | Path) -> Path:
    """Training loss (`loss_<task>`) and eval metric (`eval_<task>_<metric>`) per task, one line per run.

    `curves` maps a run name to a Trainer `log_history`; `tasks` maps a task to its main eval metric.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6.5), squeeze=False)
    for col, (task, metric) in enumerate(tasks.items()):
        for name, history in curves.items():
            losses = [(h["step"], h[f"loss_{task}"]) for h in history if f"loss_{task}" in h]
            evals = [(h["epoch"], h[f"eval_{task}_{metric}"]) for h in history if f"eval_{task}_{metric}" in h]
            if losses:
                axes[0, col].plot(*zip(*losses), label=name, linewidth=1.2)
            if evals:
                axes[1, col].plot(*zip(*evals), marker="o", label=name, linewidth=1.2)
        axes[0, col].set_title(f"{task}: training loss")
        axes[0, col].set_xlabel("step")
        axes[1, col].set_title(f"{task}: eval {metric}")
        axes[1, col].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_metric_vs_params(points: dict[str, tuple[float, ...]], path: str | Path) -> Path:
    """Eval average (left) and, when given, STS Spearman (right) against trainable parameters (log scale).

    `points` maps a run name to `(trainable_parameters, eval_average[, sts_spearman])`.
    """
    plt = _pyplot()
    panels = 2 if all(len(p) > 2 for p in points.values()) else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.8), squeeze=False)
    titles = ("eval average (mean of main metrics, %)", "STS-B dev Spearman of embeddings (x100)")
    for panel in range(panels):
        ax = axes[0, panel]
        ranked = sorted(points.items(), key=lambda item: item[1][panel + 1])
        for rank, (name, values) in enumerate(ranked):
            x, y = max(values[0], 1), values[panel + 1] * (100 if panel == 0 else 1)
            ax.scatter(x, y)
            ax.annotate(
                name,
                (x, y),
                fontsize=7,
                xytext=(-6 if rank % 2 else 5, 3 + 4 * (rank % 3)),
                textcoords="offset points",
                ha="right" if rank % 2 else "left",
            )
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log scale)")
        ax.set_ylabel(titles[panel])
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

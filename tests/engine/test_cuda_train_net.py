"""tools/train_net.py end to end on the GPU: a tiny Conditional-DETR on 4 synthetic images with fp16 AMP
(so checkpoints carry a GradScaler): train with a checkpoint, --resume to a longer schedule, --eval-only.
``--num-gpus 1`` runs in the launching process (no process group, as detectron2); two GPUs run two NCCL
processes with DistributedDataParallel. Every run is a subprocess (`sys.executable tools/train_net.py`)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONFIG = "tests/configs/tiny_conditional_detr.py"
AMP = ["train.device=cuda", "train.amp.enabled=True", "train.amp.dtype=float16"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return dict(os.environ, DETREX_DATASETS=str(tmp_path_factory.mktemp("datasets")), PYTHONUNBUFFERED="1")


def train_net(env, *args):
    argv = [sys.executable, "tools/train_net.py", "--config-file", CONFIG, *args]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )
    return proc


def losses_by_iteration(output_dir):
    by_iter = {}
    for line in (Path(output_dir) / "metrics.json").read_text().splitlines():
        record = json.loads(line)
        if "total_loss" in record:
            by_iter[record["iteration"]] = record["total_loss"]
    return by_iter


def test_train_resume_and_eval_only_on_one_gpu(env, tmp_path):
    out = tmp_path / "run"
    proc = train_net(env, "--num-gpus", "1", *AMP, f"train.output_dir={out}")
    assert "Mixed precision: cuda autocast to float16 with a GradScaler" in proc.stdout
    assert (out / "model_0000003.pth").is_file() and (out / "model_final.pth").is_file()
    ckpt = torch.load(out / "model_final.pth", weights_only=False, map_location="cpu")
    assert {"iteration", "optimizer", "grad_scaler"} <= set(ckpt["trainer"])
    losses = losses_by_iteration(out)
    assert sorted(losses) == list(range(8)) and all(math.isfinite(v) for v in losses.values())

    proc = train_net(env, "--num-gpus", "1", "--resume", *AMP, f"train.output_dir={out}", "train.max_iter=12")
    assert "Restored trainer state: iteration, optimizer, grad_scaler" in proc.stdout
    assert "Starting training from iteration 8" in proc.stdout
    resumed = losses_by_iteration(out)
    assert sorted(resumed) == list(range(12)) and all(math.isfinite(v) for v in resumed.values())

    evaluation = tmp_path / "eval"
    proc = train_net(
        env, "--eval-only", "train.device=cuda", f"train.output_dir={evaluation}",
        f"train.init_checkpoint={out / 'model_final.pth'}",
    )  # fmt: skip
    assert "copypaste: Task: bbox" in proc.stdout and "|    AP |   AP50 |" in proc.stdout
    assert (evaluation / "inference" / "coco_instances_results.json").is_file()


def test_two_gpus_train_with_nccl_and_ddp(env, tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices")
    out = tmp_path / "ddp"
    train_net(env, "--num-gpus", "2", *AMP, f"train.output_dir={out}", "train.max_iter=4")
    assert "World size: 2" in (out / "log.txt").read_text()
    ckpt = torch.load(out / "model_final.pth", weights_only=False, map_location="cpu")
    assert len(ckpt["trainer"]["rng_states"]) == 2 and "grad_scaler" in ckpt["trainer"]
    assert sorted(losses_by_iteration(out)) == list(range(4))

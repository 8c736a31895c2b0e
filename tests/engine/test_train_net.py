"""tools/train_net.py end to end on CPU: a tiny Conditional-DETR on 4 synthetic images, two gloo processes.

Covers training outputs, exact resume after a kill, a NaN stop, --eval-only, two "machines" on one host
and override typos. Every run is a subprocess (`sys.executable tools/train_net.py ...`).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from detrex.engine import find_free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONFIG = "tests/configs/tiny_conditional_detr.py"
TIMING_KEYS = {"time", "data_time", "eta_seconds"}
TIMINGS: dict[str, float] = {}


def command(*args):
    return [sys.executable, "tools/train_net.py", "--config-file", CONFIG, *args]


def run_tool(name, env, *args, timeout=900):
    start = time.perf_counter()
    proc = subprocess.run(command(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    TIMINGS[name] = time.perf_counter() - start
    print(f"[timing] {name}: {TIMINGS[name]:.1f}s")
    return proc


def output_of(proc):
    return f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"


def read_metrics(output_dir):
    by_iter = {}
    for line in (Path(output_dir) / "metrics.json").read_text().splitlines():
        record = json.loads(line)
        by_iter.setdefault(record.pop("iteration"), {}).update(record)  # later lines win (resumed runs)
    return {it: {k: v for k, v in r.items() if k not in TIMING_KEYS} for it, r in by_iter.items()}


def assert_same_metrics(got, expected):
    assert sorted(got) == sorted(expected)
    for it in expected:
        assert got[it].keys() == expected[it].keys(), it
        for key, value in expected[it].items():
            assert got[it][key] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), (it, key)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return dict(
        os.environ,
        DETREX_DATASETS=str(tmp_path_factory.mktemp("datasets")),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )


@pytest.fixture(scope="module")
def full_run(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    proc = run_tool(
        "train 2 procs, 8 iters", env, "--num-gpus", "2", "train.device=cpu", f"train.output_dir={out}"
    )
    assert proc.returncode == 0, output_of(proc)
    return out, proc


@pytest.fixture(scope="module")
def killed_run(env, tmp_path_factory):
    """The same training, killed (SIGKILL, whole process group) once model_0000003.pth is written."""
    out = tmp_path_factory.mktemp("killed")
    args = command("--num-gpus", "2", "train.device=cpu", f"train.output_dir={out}")
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    tag = out / "last_checkpoint"
    try:
        while proc.poll() is None and not (tag.exists() and tag.read_text() == "model_0000003.pth"):
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    TIMINGS["train until killed"] = time.perf_counter() - start
    assert not (out / "model_final.pth").exists(), "the run finished before it could be interrupted"
    return out


def test_two_cpu_processes_write_outputs(full_run):
    out, proc = full_run
    for name in (
        "log.txt",
        "log.txt.rank1",
        "config.yaml",
        "metrics.json",
        "last_checkpoint",
        "model_final.pth",
    ):
        assert (out / name).is_file(), name
    assert (out / "model_0000003.pth").is_file()
    assert list(out.glob("events.out.tfevents.*"))
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    log = (out / "log.txt").read_text()
    assert "World size: 2" in log and "Environment info" in log and "Full config saved to" in log
    assert "Rank of current process: 1" in (out / "log.txt.rank1").read_text()
    assert " iter: 7  total_loss: " in proc.stdout and "   lr: " in proc.stdout
    assert (
        "Grad strides do not match bucket view strides" not in proc.stderr
    )  # DDP copies no gradient strided
    metrics = read_metrics(out)
    assert sorted(metrics) == list(range(8))
    assert {"total_loss", "loss_class", "loss_bbox", "loss_giou", "loss_class_0", "lr", "bbox/AP"} <= set(
        metrics[7]
    )
    ckpt = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)
    assert {"model", "trainer", "scheduler", "iteration"} <= set(ckpt) and ckpt["iteration"] == 7
    assert {"iteration", "optimizer", "storage", "rng_states"} <= set(ckpt["trainer"])
    assert len(ckpt["trainer"]["rng_states"]) == 2  # both ranks' generators


def test_resume_after_kill_continues_exactly(full_run, killed_run, env, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(killed_run, out)
    proc = run_tool(
        "resume 2 procs", env, "--num-gpus", "2", "--resume", "train.device=cpu", f"train.output_dir={out}"
    )
    assert proc.returncode == 0, output_of(proc)
    assert "Resuming from" in proc.stdout and "model_0000003.pth" in proc.stdout
    assert "train.init_checkpoint='' is ignored" in proc.stdout
    assert "Restored trainer state: iteration, optimizer" in proc.stdout
    assert "Starting training from iteration 4" in proc.stdout
    assert_same_metrics(read_metrics(out), read_metrics(full_run[0]))
    # the rows the killed run wrote after its checkpoint were dropped, not left as duplicates
    seen = [
        (r["iteration"], k)
        for r in map(json.loads, (out / "metrics.json").read_text().splitlines())
        for k in r
        if k != "iteration"
    ]
    assert len(seen) == len(set(seen))


def test_nan_loss_stops_without_touching_the_last_checkpoint(killed_run, env, tmp_path):
    out = tmp_path / "nan"
    shutil.copytree(killed_run, out)
    digest = sha256(out / "model_0000003.pth")
    proc = run_tool(
        "nan stop 2 procs",
        env,
        "--num-gpus",
        "2",
        "--resume",
        "train.device=cpu",
        f"train.output_dir={out}",
        "model.criterion.weight_dict.loss_bbox=nan",  # every loss_bbox term becomes NaN
    )
    assert proc.returncode != 0
    assert "NonFiniteStepError: Loss became infinite or NaN at iteration=4: loss_bbox" in proc.stderr
    assert (out / "last_checkpoint").read_text() == "model_0000003.pth"
    assert sha256(out / "model_0000003.pth") == digest
    assert not (out / "model_final.pth").exists() and not (out / "model_0000007.pth").exists()


def test_eval_only_prints_ap_table(full_run, env, tmp_path):
    checkpoint = full_run[0] / "model_final.pth"
    proc = run_tool(
        "eval-only 1 proc", env, "--eval-only", "train.device=cpu", f"train.output_dir={tmp_path}",
        f"train.init_checkpoint={checkpoint}",
    )  # fmt: skip
    assert proc.returncode == 0, output_of(proc)
    assert "copypaste: Task: bbox" in proc.stdout and "copypaste: AP,AP50,AP75,APs,APm,APl" in proc.stdout
    assert "|    AP |   AP50 |" in proc.stdout
    assert (tmp_path / "inference" / "coco_instances_results.json").is_file()


def test_eval_only_with_ema_weights_needs_ema_state(full_run, env, tmp_path):
    checkpoint = full_run[0] / "model_final.pth"
    proc = run_tool(
        "eval-only ema error", env, "--eval-only", "train.device=cpu", f"train.output_dir={tmp_path}",
        f"train.init_checkpoint={checkpoint}", "train.model_ema.enabled=True",
        "train.model_ema.use_ema_weights_for_eval_only=True",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "has no 'ema_state'; set train.model_ema.enabled=False" in proc.stderr


def test_two_machines_on_one_host_match_two_processes(full_run, env, tmp_path):
    port = find_free_port()
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            command(
                "--num-gpus",
                "1",
                "--num-machines",
                "2",
                "--machine-rank",
                str(rank),
                "--dist-url",
                f"tcp://127.0.0.1:{port}",
                "train.device=cpu",
                f"train.output_dir={tmp_path}",
            ),  # fmt: skip
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    TIMINGS["train 2 machines x 1 proc"] = time.perf_counter() - start
    for p, (stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, f"{stdout[-3000:]}\n{stderr[-3000:]}"
    assert "World size: 2" in (tmp_path / "log.txt").read_text()
    assert (tmp_path / "log.txt.rank1").is_file()
    assert_same_metrics(read_metrics(tmp_path), read_metrics(full_run[0]))  # same world size, same seed


def test_override_typo_fails_with_suggestion(env):
    proc = run_tool("override typo", env, "train.device=cpu", "train.max_iters=10")
    assert proc.returncode != 0
    assert "train.max_iters" in proc.stderr and "train.max_iter" in proc.stderr.replace("train.max_iters", "")


def test_report_timings():
    print("\n".join(f"[timing] {k}: {v:.1f}s" for k, v in TIMINGS.items()))

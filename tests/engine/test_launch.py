import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detrex.engine import default_argument_parser, find_free_port, launch
from detrex.engine.launch import _first_slurm_host, _job_from_environment
from detrex.utils import comm


def test_help_explains_with_examples(capsys):
    parser = default_argument_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--config-file",
        "--resume",
        "--eval-only",
        "--num-gpus",
        "--num-machines",
        "--machine-rank",
    ):
        assert flag in text
    assert "Examples:" in text
    assert "--eval-only train.init_checkpoint=" in text
    assert "--num-gpus 2 train.device=cpu" in text
    assert "--dist-url tcp://" in text and "torchrun" in text


def test_parser_defaults_and_trailing_overrides():
    args = default_argument_parser().parse_args(
        ["--config-file", "c.py", "--num-gpus", "2", "train.max_iter=10", "train.device=cpu"]
    )
    assert args.dist_url == "auto" and args.num_machines == 1 and not args.resume
    assert args.opts == ["train.max_iter=10", "train.device=cpu"]


def test_find_free_port_is_bindable_and_avoids_busy_ports():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = {find_free_port() for _ in range(5)}
        assert busy.getsockname()[1] not in ports
    port = find_free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_auto_dist_url_needs_one_machine():
    with pytest.raises(ValueError, match="one machine"):
        launch(print, 1, num_machines=2, machine_rank=0, dist_url="auto", device="cpu")


def test_cuda_device_without_cuda_suggests_cpu():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(RuntimeError, match="train.device=cpu"):
        launch(print, 1, device="cuda")


def test_slurm_and_torchrun_environments(monkeypatch):
    for key in list(os.environ):
        if key.startswith("SLURM_") or key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
            monkeypatch.delenv(key)
    assert _job_from_environment(1, "auto") is None
    assert _first_slurm_host("gpu[03-05,9],cpu1") == "gpu03"
    assert _first_slurm_host("node7,node8") == "node7"

    slurm = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_NNODES": "2", "SLURM_LOCALID": "1"}
    for k, v in {**slurm, "SLURM_NODELIST": "n[1-2]", "SLURM_JOB_ID": "123", "SLURM_NODEID": "1"}.items():
        monkeypatch.setenv(k, v)
    job = _job_from_environment(1, "auto")
    assert job == {
        "rank": 3,
        "world_size": 4,
        "local_rank": 1,
        "local_size": 2,
        "init_method": "tcp://n1:20123",
    }
    monkeypatch.setenv("SLURM_NTASKS", "2")  # one task per node, 8 GPUs each: spawn per node
    assert _job_from_environment(8, "tcp://x:999") == {
        "num_machines": 2,
        "machine_rank": 1,
        "dist_url": "tcp://n1:999",
    }
    for k, v in {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(k, v)
    job = _job_from_environment(1, "auto")
    assert job == {"rank": 5, "world_size": 8, "local_rank": 1, "local_size": 4, "init_method": "env://"}


def _report_worker(out_dir):
    value = torch.tensor([float(comm.get_rank() + 1)])
    dist.all_reduce(value)
    record = {
        "rank": comm.get_rank(),
        "world": comm.get_world_size(),
        "local": comm.get_local_rank(),
        "backend": dist.get_backend(),
        "sum": value.item(),
        "threads": torch.get_num_threads(),
    }
    with open(os.path.join(out_dir, f"rank{comm.get_rank()}.json"), "w") as f:
        json.dump(record, f)


def _failing_worker():
    if comm.get_rank() == 1:
        raise ValueError("rank one failed on purpose")
    dist.barrier()  # rank 0 waits here until the launcher stops it


def test_two_cpu_processes_with_gloo(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    launch(_report_worker, 2, dist_url="auto", args=(str(tmp_path),), device="cpu")
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["local"], r["world"], r["backend"], r["sum"]) for r in records] == [
        (0, 0, 2, "gloo", 3.0),
        (1, 1, 2, "gloo", 3.0),
    ]
    # the two processes split the cores instead of each starting one thread per core
    cores = len(os.sched_getaffinity(0))
    assert [r["threads"] for r in records] == [max(1, cores // 2)] * 2


def test_explicit_omp_num_threads_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    launch(_report_worker, 2, dist_url="auto", args=(str(tmp_path),), device="cpu")
    assert [json.loads((tmp_path / f"rank{r}.json").read_text())["threads"] for r in range(2)] == [1, 1]


@pytest.mark.slow
def test_worker_failure_propagates_and_stops_the_others():
    with pytest.raises(mp.ProcessRaisedException, match="rank one failed on purpose"):
        launch(_failing_worker, 2, dist_url="auto", device="cpu")


_SCRIPT = """
import json, os, sys
import torch.distributed as dist
from detrex.engine import launch
from detrex.utils import comm

def main(out_dir):
    value = __import__("torch").tensor([1.0])
    dist.all_reduce(value)
    record = {"rank": comm.get_rank(), "world": comm.get_world_size(), "local": comm.get_local_rank(),
              "sum": value.item()}
    with open(os.path.join(out_dir, f"rank{comm.get_rank()}.json"), "w") as f:
        json.dump(record, f)

if __name__ == "__main__":
    launch(main, 1, args=(sys.argv[1],), device="cpu")  # --num-gpus 1: the environment defines the job
"""


def _run_script(tmp_path, envs, prefix=()):
    script = tmp_path / "job.py"
    script.write_text(_SCRIPT)
    procs = [
        subprocess.Popen([*prefix, str(script), str(tmp_path)], env=env, cwd=os.getcwd()) for env in envs
    ]
    assert [p.wait(timeout=600) for p in procs] == [0] * len(procs)
    return sorted(
        (r["rank"], r["local"], r["world"], r["sum"])
        for r in (json.loads(p.read_text()) for p in tmp_path.glob("rank*.json"))
    )


def _clean_env():
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        keep.pop(key, None)
    return {**keep, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_started_by_torchrun(tmp_path):
    prefix = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
              str(find_free_port()))  # fmt: skip
    assert _run_script(tmp_path, [_clean_env()], prefix) == [(0, 0, 2, 2.0), (1, 1, 2, 2.0)]


@pytest.mark.slow
def test_started_by_slurm_one_task_per_process(tmp_path):
    base = {**_clean_env(), "SLURM_NTASKS": "2", "SLURM_NNODES": "1", "SLURM_NODELIST": "localhost",
            "SLURM_JOB_ID": "77", "MASTER_PORT": str(find_free_port())}  # fmt: skip
    envs = [{**base, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r), "SLURM_NODEID": "0"} for r in (0, 1)]
    assert _run_script(tmp_path, envs, (sys.executable,)) == [(0, 0, 2, 2.0), (1, 1, 2, 2.0)]

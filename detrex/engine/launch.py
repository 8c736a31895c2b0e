"""Start one training process per device: spawned here, or already started by torchrun or SLURM.

The backend follows the device: NCCL for "cuda", gloo for "cpu" (``--num-gpus 2 train.device=cpu``
runs two CPU processes).
"""

import logging
import os
import re
import socket
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detrex.utils import comm

__all__ = ["DEFAULT_TIMEOUT", "launch", "find_free_port"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)


def find_free_port() -> int:
    """A TCP port on this host that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def check_device(device: str, num_per_machine: int = 1) -> None:
    """Fail early, with the fix, when ``device`` is not a torch device (ValueError), or is CUDA but CUDA (or
    enough GPUs) is missing (RuntimeError)."""
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"train.device={device!r} is not a device: use cpu, cuda or cuda:N (e.g. train.device=cpu)"
        ) from None
    if not str(device).startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"train.device={device!r} but CUDA is not available on this machine. "
            "Run on the CPU by adding train.device=cpu to the command line."
        )
    if num_per_machine > torch.cuda.device_count():
        raise RuntimeError(
            f"--num-gpus {num_per_machine} but this machine has {torch.cuda.device_count()} GPUs visible"
        )


def launch(
    main_func: Callable,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = None,
    args: tuple = (),
    timeout: timedelta = DEFAULT_TIMEOUT,
    device: str | None = None,
) -> None:
    """Run ``main_func(*args)`` in every process of a (possibly) distributed job.

    Args:
        num_gpus_per_machine: processes per machine (one per GPU; any number on CPU).
        num_machines, machine_rank: the machines of the job and this one's index (0 = master).
        dist_url: "tcp://HOST:PORT" of the master machine; "auto" (one machine only) picks a free port.
        timeout: for the collectives of the process group.
        device: "cuda" or "cpu" (default: cuda when available); chooses NCCL or gloo.
    When started by torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) or by SLURM with one task per device,
    this process joins the job described by the environment and nothing is spawned.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    backend = "nccl" if str(device).startswith("cuda") else "gloo"
    job = _job_from_environment(num_gpus_per_machine, dist_url)
    if job is not None and "rank" in job:  # torchrun/SLURM started this very process
        check_device(device, job["local_size"])
        _init_and_run(job["local_rank"], job, backend, device, timeout, main_func, args)
        return
    if job is not None:  # SLURM with one task per machine: spawn as on a plain multi-machine job
        num_machines, machine_rank, dist_url = job["num_machines"], job["machine_rank"], job["dist_url"]

    world_size = num_machines * num_gpus_per_machine
    check_device(device, num_gpus_per_machine)
    if world_size == 1:
        main_func(*args)
        return
    if dist_url in (None, "auto"):
        if num_machines != 1:
            raise ValueError("--dist-url auto only works on one machine; give tcp://MASTER_IP:PORT instead")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// is not a reliable init method across machines; prefer tcp://")
    job = {
        "world_size": world_size,
        "local_size": num_gpus_per_machine,
        "machine_rank": machine_rank,
        "init_method": dist_url,
    }
    # start_processes re-raises the first worker failure with its traceback and stops the others
    mp.start_processes(
        _spawned_worker,
        nprocs=num_gpus_per_machine,
        args=(job, backend, device, timeout, main_func, args),
        daemon=False,
        start_method="spawn",
    )


def _spawned_worker(local_rank, job, backend, device, timeout, main_func, args):
    job = {**job, "rank": job["machine_rank"] * job["local_size"] + local_rank}
    _init_and_run(local_rank, job, backend, device, timeout, main_func, args)


def _init_and_run(local_rank, job, backend, device, timeout, main_func, args) -> None:
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(
            backend=backend,
            init_method=job["init_method"],
            world_size=job["world_size"],
            rank=job["rank"],
            timeout=timeout,
        )
    except Exception:
        logger.error(f"Could not join the process group at {job['init_method']} as rank {job['rank']}")
        raise
    comm.create_local_process_group(job["local_size"])  # for comm.get_local_rank()
    _share_cpu_threads(job["local_size"])
    comm.synchronize()  # all ranks are up before any collective with a timeout starts
    main_func(*args)
    comm.synchronize()  # tear the group down together: a rank leaving while a peer still works can abort it
    dist.destroy_process_group()


def _share_cpu_threads(local_size: int) -> None:
    """Give each of the ``local_size`` processes on this machine its share of the CPU cores.

    A spawned worker would otherwise start as many intra-op threads as the machine has cores, and N
    workers would oversubscribe the cores N times over. An explicit OMP_NUM_THREADS (torchrun sets 1) is left alone. The number
    chosen shows as "CPU threads (torch)" in the environment table at the top of each rank's log."""
    if local_size <= 1 or os.environ.get("OMP_NUM_THREADS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // local_size))  # (logging is not set up yet in a fresh worker)


def _job_from_environment(num_gpus_per_machine: int, dist_url: str | None) -> dict | None:
    """The job described by torchrun's or SLURM's environment variables, or None (a plain start)."""
    env = os.environ
    if all(k in env for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")) and int(env["WORLD_SIZE"]) > 1:
        world_size = int(env["WORLD_SIZE"])
        return {
            "rank": int(env["RANK"]),
            "world_size": world_size,
            "local_rank": int(env["LOCAL_RANK"]),
            "local_size": int(env.get("LOCAL_WORLD_SIZE", world_size)),
            "init_method": "env://",  # MASTER_ADDR / MASTER_PORT
        }
    num_tasks, num_nodes = int(env.get("SLURM_NTASKS", 1)), int(env.get("SLURM_NNODES", 1))
    if "SLURM_PROCID" not in env or max(num_tasks, num_nodes) == 1:
        return None
    master = f"tcp://{_first_slurm_host(env['SLURM_NODELIST'])}:{_slurm_port(dist_url)}"
    tasks_per_node = num_tasks // num_nodes
    if tasks_per_node > 1 or num_gpus_per_machine == 1:  # one task per device
        return {
            "rank": int(env["SLURM_PROCID"]),
            "world_size": num_tasks,
            "local_rank": int(env.get("SLURM_LOCALID", 0)),
            "local_size": tasks_per_node,
            "init_method": master,
        }
    return {"num_machines": num_nodes, "machine_rank": int(env.get("SLURM_NODEID", 0)), "dist_url": master}


def _first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[03-05,9],cpu1" -> "gpu03"."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None:
        raise ValueError(f"Cannot read the master host from SLURM_NODELIST={nodelist!r}")
    prefix, ranges = match.group(1), match.group(2)
    return prefix if ranges is None else prefix + ranges.split(",")[0].split("-")[0]


def _slurm_port(dist_url: str | None) -> int:
    """MASTER_PORT, else the port of a tcp:// --dist-url, else one derived from the job id."""
    if "MASTER_PORT" in os.environ:
        return int(os.environ["MASTER_PORT"])
    if dist_url and dist_url.startswith("tcp://") and dist_url.rsplit(":", 1)[-1].isdigit():
        return int(dist_url.rsplit(":", 1)[-1])
    return 20000 + int(os.environ.get("SLURM_JOB_ID", 0)) % 20000

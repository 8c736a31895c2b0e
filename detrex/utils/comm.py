"""Distributed helpers that behave sensibly with world size 1 and without torch.distributed initialised."""

from __future__ import annotations

import functools
import pickle
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

# The group of processes on this machine; set by `create_local_process_group` (engine.launch).
_LOCAL_PROCESS_GROUP = None


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if _initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if _initialized() else 0


def get_local_rank() -> int:
    """Rank of this process among the processes of its machine."""
    if not _initialized():
        return 0
    if _LOCAL_PROCESS_GROUP is None:
        raise RuntimeError("get_local_rank: no local process group; call create_local_process_group first")
    return dist.get_rank(group=_LOCAL_PROCESS_GROUP)


def get_local_size() -> int:
    if not _initialized():
        return 1
    if _LOCAL_PROCESS_GROUP is None:
        return get_world_size()
    return dist.get_world_size(group=_LOCAL_PROCESS_GROUP)


def create_local_process_group(num_workers_per_machine: int) -> None:
    """Create one subgroup per machine (ranks machine*k .. machine*k+k-1); every rank must call this."""
    global _LOCAL_PROCESS_GROUP
    if _LOCAL_PROCESS_GROUP is not None:
        raise RuntimeError("create_local_process_group was already called")
    world_size = get_world_size()
    if world_size % num_workers_per_machine != 0:
        raise ValueError(
            f"world size {world_size} is not a multiple of {num_workers_per_machine} per machine"
        )
    machine = get_rank() // num_workers_per_machine
    for i in range(world_size // num_workers_per_machine):
        ranks = list(range(i * num_workers_per_machine, (i + 1) * num_workers_per_machine))
        group = dist.new_group(ranks)  # collective: every rank creates every group
        if i == machine:
            _LOCAL_PROCESS_GROUP = group


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op when not distributed."""
    if get_world_size() == 1:
        return
    if dist.get_backend() == dist.Backend.NCCL and torch.cuda.is_available():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@functools.lru_cache
def _cpu_group():
    """A gloo group for object collectives, so pickled data never has to go through NCCL."""
    if dist.get_backend() == "nccl":
        return dist.new_group(backend="gloo")
    return dist.group.WORLD


def all_gather(data: Any, group=None) -> list[Any]:
    """Gather any picklable object from every rank; returns the list ordered by rank."""
    if get_world_size() == 1:
        return [data]
    group = group if group is not None else _cpu_group()
    if dist.get_world_size(group) == 1:
        return [data]
    output = [None] * dist.get_world_size(group)
    dist.all_gather_object(output, data, group=group)
    return output


def gather(data: Any, dst: int = 0, group=None) -> list[Any]:
    """Gather picklable objects onto rank `dst`; other ranks get an empty list."""
    if get_world_size() == 1:
        return [data]
    group = group if group is not None else _cpu_group()
    if dist.get_world_size(group) == 1:
        return [data]
    if dist.get_rank(group) == dst:
        output = [None] * dist.get_world_size(group)
        dist.gather_object(data, output, dst=dst, group=group)
        return output
    dist.gather_object(data, None, dst=dst, group=group)
    return []


def shared_random_seed() -> int:
    """A random int that is the same on all ranks (rank 0's draw)."""
    seed = np.random.randint(2**31)
    return all_gather(seed)[0]


def reduce_dict(input_dict: dict[str, torch.Tensor], average: bool = True) -> dict[str, torch.Tensor]:
    """Reduce scalar tensors across ranks; keys are processed in sorted order so ranks agree.

    Every rank gets the reduced values (all_reduce), averaged when `average`.
    """
    world_size = get_world_size()
    if world_size < 2:
        return input_dict
    with torch.no_grad():
        names = sorted(input_dict.keys())
        values = torch.stack([input_dict[k].detach().reshape(()) for k in names])
        dist.all_reduce(values)
        if average:
            values /= world_size
        return dict(zip(names, values))


def object_size_bytes(data: Any) -> int:
    """Size of `data` once pickled (useful to warn about very large gathers)."""
    return len(pickle.dumps(data))

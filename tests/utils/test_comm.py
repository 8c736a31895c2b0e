import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from detrex.utils import comm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, result_queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        comm.create_local_process_group(world_size)
        gathered = comm.all_gather({"rank": rank, "payload": list(range(rank + 1))})
        to_root = comm.gather(rank * 10)
        reduced = comm.reduce_dict({"b": torch.tensor(float(rank)), "a": torch.tensor(2.0 * rank + 1)})
        summed = comm.reduce_dict({"x": torch.tensor(float(rank + 1))}, average=False)
        seed = comm.shared_random_seed()
        comm.synchronize()
        result_queue.put(
            (
                rank,
                gathered,
                to_root,
                {k: v.item() for k, v in reduced.items()},
                summed["x"].item(),
                seed,
                comm.get_local_rank(),
                comm.get_world_size(),
                comm.is_main_process(),
            )
        )
    finally:
        dist.destroy_process_group()


def test_collectives_in_two_process_gloo_group():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    (r0, g0, t0, red0, sum0, seed0, lr0, ws0, main0), (r1, g1, t1, red1, sum1, seed1, lr1, ws1, main1) = (
        results
    )
    expected = [{"rank": 0, "payload": [0]}, {"rank": 1, "payload": [0, 1]}]
    assert g0 == expected and g1 == expected
    assert t0 == [0, 10] and t1 == []
    assert red0 == red1 == {"a": 2.0, "b": 0.5}  # averages of (1, 3) and (0, 1)
    assert sum0 == sum1 == 3.0
    assert seed0 == seed1
    assert (lr0, lr1) == (0, 1) and ws0 == ws1 == 2 and main0 and not main1


def test_helpers_without_distributed():
    assert comm.get_world_size() == 1 and comm.get_rank() == 0 and comm.get_local_rank() == 0
    assert comm.is_main_process()
    assert comm.all_gather({"x": 1}) == [{"x": 1}] and comm.gather(5) == [5]
    d = {"loss": torch.tensor(1.5)}
    assert comm.reduce_dict(d) is d
    comm.synchronize()

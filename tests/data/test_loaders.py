import itertools
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from detrex.data import (
    DatasetCatalog,
    InferenceSampler,
    TrainingSampler,
    build_detection_test_loader,
    build_detection_train_loader,
)

SIZES = [(30, 20), (20, 30), (25, 25), (40, 10), (10, 40), (33, 32), (12, 13), (50, 49), (9, 8), (7, 70)]


def _dicts(n=len(SIZES)):
    return [{"image_id": i, "width": SIZES[i % 10][0], "height": SIZES[i % 10][1]} for i in range(n)]


def _random_mapper(d):
    """Stands in for augmentation: the output depends on the global RNG state."""
    return {"image_id": d["image_id"], "landscape": d["width"] > d["height"], "r": float(np.random.rand())}


def _summary(loader, num_batches):
    return [[(x["image_id"], x["r"]) for x in batch] for batch in itertools.islice(loader, num_batches)]


def test_train_batches_grouped_and_seeded():
    loader = build_detection_train_loader(_dicts(), _random_mapper, total_batch_size=3, seed=11)
    batches = list(itertools.islice(loader, 12))
    assert all(len(b) == 3 for b in batches)
    assert all(len({x["landscape"] for x in b}) == 1 for b in batches)  # aspect-ratio grouping
    assert loader.batch_sampler.seed == 11
    again = build_detection_train_loader(_dicts(), _random_mapper, total_batch_size=3, seed=11)
    assert _summary(again, 12) == [[(x["image_id"], x["r"]) for x in b] for b in batches]
    other = build_detection_train_loader(_dicts(), _random_mapper, total_batch_size=3, seed=12)
    assert _summary(other, 12) != _summary(again, 12)
    ungrouped = build_detection_train_loader(_dicts(), _random_mapper, 4, aspect_ratio_grouping=False, seed=1)
    first_epoch = [x["image_id"] for b in itertools.islice(ungrouped, 2) for x in b]
    assert len(set(first_epoch)) == 8  # a shuffled pass: no repeats before the epoch ends


def test_same_data_with_workers_and_after_resume():
    def build(**kwargs):
        return build_detection_train_loader(_dicts(), _random_mapper, total_batch_size=2, seed=5, **kwargs)

    full = _summary(build(), 14)
    assert _summary(build(num_workers=2), 14) == full  # per-sample seeding: worker count does not matter
    assert _summary(build(start_iter=9), 5) == full[9:]
    late = build()
    late.batch_sampler.start_iter = 9
    assert _summary(late, 5) == full[9:]


def test_mapper_returning_none_is_retried():
    def drop_odd(d):
        return None if d["image_id"] % 2 else {"image_id": d["image_id"]}

    loader = build_detection_train_loader(_dicts(), drop_odd, 4, aspect_ratio_grouping=False, seed=0)
    ids = [x["image_id"] for b in itertools.islice(loader, 5) for x in b]
    assert len(ids) == 20 and all(i % 2 == 0 for i in ids)


def test_train_loader_errors():
    with pytest.raises(ValueError, match="positive multiple"):
        build_detection_train_loader(_dicts(), _random_mapper, total_batch_size=0)
    with pytest.raises(ValueError, match="size must be a positive int"):
        TrainingSampler(0)


def test_test_loader_covers_dataset_in_order(unique_name):
    name = unique_name()
    DatasetCatalog.register(name, lambda: _dicts(7))
    loader = build_detection_test_loader(name, lambda d: d["image_id"], batch_size=3)
    assert list(loader) == [[0, 1, 2], [3, 4, 5], [6]]


def test_inference_sampler_shards():
    for total, world in [(7, 2), (10, 3), (2, 4), (100, 8)]:
        shards = [list(InferenceSampler._get_local_indices(total, world, r)) for r in range(world)]
        assert list(itertools.chain(*shards)) == list(range(total))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def _rank_main(rank, world_size, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    np.random.seed(100 + rank)  # different global states: the shared seed must still agree
    sampler = TrainingSampler(10)
    result = {"seed": sampler.seed, "stream": list(itertools.islice(iter(sampler), 15))}
    train = build_detection_train_loader(_dicts(), _random_mapper, 4, aspect_ratio_grouping=False, seed=3)
    result["train"] = [[x["image_id"] for x in b] for b in itertools.islice(train, 3)]
    try:
        build_detection_train_loader(_dicts(), _random_mapper, total_batch_size=3)
    except ValueError as e:
        result["error"] = str(e)
    test = build_detection_test_loader(_dicts(7), lambda d: d["image_id"], batch_size=2)
    result["test"] = [i for b in test for i in b]
    with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
        pickle.dump(result, f)
    dist.barrier()  # tear gloo down together (a rank leaving early can abort its peer)
    dist.destroy_process_group()


def test_two_gloo_ranks_shard_without_overlap():
    with tempfile.TemporaryDirectory() as folder:  # private to this test, even with concurrent pytest runs
        tmp.spawn(_rank_main, args=(2, f"{folder}/init", folder), nprocs=2, join=True)
        r0, r1 = (pickle.loads(Path(folder, f"rank{r}.pkl").read_bytes()) for r in range(2))
    assert r0["seed"] == r1["seed"]
    for epoch in range(3):  # each epoch of 10 is split 5 / 5 between the ranks
        part0, part1 = r0["stream"][5 * epoch : 5 * epoch + 5], r1["stream"][5 * epoch : 5 * epoch + 5]
        assert sorted(part0 + part1) == list(range(10))
    assert all(len(b) == 2 for b in r0["train"] + r1["train"])  # 4 in total, 2 per rank
    first_8 = [i for b in r0["train"][:2] + r1["train"][:2] for i in b]  # 8 of the first 10-image epoch
    assert len(set(first_8)) == 8
    assert "total_batch_size (3)" in r0["error"] and "number of processes (2)" in r0["error"]
    assert r0["test"] == [0, 1, 2, 3] and r1["test"] == [4, 5, 6]

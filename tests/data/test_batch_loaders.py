"""Loaders with detectron2's contract: build_batch_data_loader, iterable datasets, mapper=None, DataLoader
options, worker_init_reset_seed(worker_id), and aspect-ratio grouping as a config option."""

import itertools
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from detrex.config import InstantiationError, LazyConfig, instantiate
from detrex.config import LazyCall as L
from detrex.data import (
    DatasetCatalog,
    DatasetFromList,
    InferenceSampler,
    ToIterableDataset,
    TrainingSampler,
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    worker_init_reset_seed,
)
from detrex.data.common import AspectRatioGroupedDataset


def _flat(loader):
    return [x for batch in loader for x in batch]


@pytest.mark.parametrize("size", [48, 47, 46, 40, 39])
def test_batch_loader_over_an_inference_sampler_covers_the_dataset(size):
    dataset = DatasetFromList(list(range(size)))
    loader = build_batch_data_loader(dataset, InferenceSampler(size), 8, num_workers=2)
    batches = list(loader)
    assert len(batches) == len(loader) == size // 8 and all(len(b) == 8 for b in batches)
    assert sorted(_flat(batches)) == list(range(size // 8 * 8))
    loader = build_batch_data_loader(dataset, InferenceSampler(size), 8, num_workers=2, drop_last=False)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-size // 8)
    assert sorted(_flat(batches)) == list(range(size))


def test_batch_loader_groups_by_aspect_ratio_and_collates():
    dicts = [{"i": i, "width": 10 + (i % 3), "height": 11} for i in range(30)]  # 12 -> landscape
    loader = build_batch_data_loader(
        DatasetFromList(dicts), TrainingSampler(30, seed=0), 4, aspect_ratio_grouping=True
    )
    assert isinstance(loader, AspectRatioGroupedDataset)
    for batch in itertools.islice(loader, 20):
        assert len(batch) == 4 and len({d["width"] > d["height"] for d in batch}) == 1
    collated = build_batch_data_loader(
        DatasetFromList(dicts),
        TrainingSampler(30, seed=0),
        4,
        aspect_ratio_grouping=True,
        collate_fn=lambda batch: [d["i"] for d in batch],
    )
    first = next(iter(collated))
    assert len(first) == 4 and all(isinstance(i, int) for i in first)
    with pytest.raises(ValueError, match="keep drop_last"):
        build_batch_data_loader(
            DatasetFromList(dicts), TrainingSampler(30), 4, aspect_ratio_grouping=True, drop_last=False
        )


def test_batch_loader_arguments():
    dataset = DatasetFromList(list(range(10)))
    loader = build_batch_data_loader(
        dataset, InferenceSampler(10), None, single_gpu_batch_size=5, drop_last=False
    )
    assert list(loader) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    with pytest.raises(ValueError, match="not both"):
        build_batch_data_loader(dataset, InferenceSampler(10), 4, single_gpu_batch_size=2)
    with pytest.raises(ValueError, match="takes no sampler"):
        build_batch_data_loader(ToIterableDataset(dataset, InferenceSampler(10)), InferenceSampler(10), 2)
    with pytest.raises(TypeError, match="'pin_memroy'.*Closest: pin_memory"):
        build_batch_data_loader(dataset, InferenceSampler(10), 2, pin_memroy=True)
    timed = build_batch_data_loader(dataset, InferenceSampler(10), 2, timeout=0)  # any DataLoader option
    assert isinstance(timed, DataLoader) and timed.timeout == 0


class _Ones(IterableDataset):
    def __iter__(self):
        while True:
            yield {"value": 1, "width": 4, "height": 3}


def test_train_loader_over_an_iterable_dataset():
    data = DatasetFromList([{"i": i, "width": 5, "height": 4} for i in range(20)])
    iterable = ToIterableDataset(data, TrainingSampler(20, seed=1))
    loader = build_detection_train_loader(
        dataset=iterable, mapper=lambda d: {**d, "mapped": 1}, total_batch_size=4
    )
    batch = next(iter(loader))  # grouped by the mapped dicts' width and height
    assert len(batch) == 4 and {d["i"] for d in batch} <= set(range(20)) and all(d["mapped"] for d in batch)
    plain = build_detection_train_loader(
        _Ones(), mapper=None, total_batch_size=2, aspect_ratio_grouping=False
    )
    assert next(iter(plain)) == [{"value": 1, "width": 4, "height": 3}] * 2
    with pytest.raises(ValueError, match="takes no sampler"):
        build_detection_train_loader(_Ones(), None, 2, sampler=TrainingSampler(3))


def test_train_loader_without_a_mapper_and_with_dataloader_options(unique_name):
    name = unique_name()
    DatasetCatalog.register(
        name, lambda: [{"image_id": i, "width": 8, "height": 6, "annotations": [{}]} for i in range(6)]
    )
    loader = build_detection_train_loader(name, mapper=None, total_batch_size=3, seed=0, pin_memory=False)
    batch = next(iter(loader))
    assert [set(d) for d in batch] == [{"image_id", "width", "height", "annotations"}] * 3
    options = dict(num_workers=1, pin_memory=True, persistent_workers=True, prefetch_factor=3)
    for dataset in (name, _Ones()):  # both kinds of loader get the DataLoader options
        loader = build_detection_train_loader(dataset, mapper=None, total_batch_size=3, **options)
        loader = loader.dataset if isinstance(loader, AspectRatioGroupedDataset) else loader
        got = (loader.num_workers, loader.pin_memory, loader.persistent_workers, loader.prefetch_factor)
        assert got == (1, True, True, 3)
    # every argument is named: a misspelt config key fails in instantiate with the closest name
    for key, closest in (("num_worker", "num_workers"), ("aspect_ratio_groupin", "aspect_ratio_grouping")):
        cfg = L(build_detection_train_loader)(dataset=name, mapper=None, total_batch_size=3, **{key: True})
        with pytest.raises(InstantiationError, match=f"unexpected key '{key}'. Closest: {closest}."):
            instantiate(cfg)


def test_test_loader_over_an_iterable_dataset_with_workers():
    dataset = ToIterableDataset(DatasetFromList(list(range(50))), InferenceSampler(50))
    loader = build_detection_test_loader(dataset=dataset, mapper=lambda x: x, num_workers=2)
    assert sorted(_flat(loader)) == list(range(50))
    loader = build_detection_test_loader(DatasetFromList(list(range(7))), mapper=None, batch_size=4)
    assert list(loader) == [[0, 1, 2, 3], [4, 5, 6]]


def _draws(_):
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_worker_init_reset_seed_seeds_every_rng_from_torch_seed_plus_worker_id():
    torch.manual_seed(7)
    worker_init_reset_seed(3)
    got = _draws(None)
    random.seed(10)
    np.random.seed(10)
    torch.manual_seed(10)
    assert got == _draws(None)

    def loader():
        return DataLoader(
            [0, 1, 2, 3],
            batch_size=None,
            num_workers=2,
            worker_init_fn=worker_init_reset_seed,  # DataLoader calls it with the worker id alone
            collate_fn=_draws,
            generator=torch.Generator().manual_seed(5),
        )

    first = list(loader())
    assert list(loader()) == first  # a seeded loader reseeds its workers the same way
    assert all(a != b for a, b in zip(first[0], first[1]))  # two workers, different numbers


def test_aspect_ratio_grouping_is_a_config_key_of_the_shipped_loaders():
    for path in ("configs/common/data/coco_detr.py", "configs/common/data/synthetic.py"):
        cfg = LazyConfig.load(path)
        assert cfg.dataloader.train.aspect_ratio_grouping is True
        LazyConfig.apply_overrides(cfg, ["dataloader.train.aspect_ratio_grouping=False"])
        assert cfg.dataloader.train.aspect_ratio_grouping is False


def test_aspect_ratio_grouping_option_reaches_the_batches(unique_name):
    name = unique_name()
    sizes = [(30, 20), (20, 30)] * 10
    DatasetCatalog.register(
        name,
        lambda: [
            {"image_id": i, "width": w, "height": h, "annotations": [{}]} for i, (w, h) in enumerate(sizes)
        ],
    )
    cfg = LazyConfig.load("configs/common/data/synthetic.py").dataloader.train
    cfg.dataset.names = name
    cfg.mapper = None
    cfg.num_workers = 0
    cfg.total_batch_size = 4
    grouped = [[d["width"] > d["height"] for d in b] for b in itertools.islice(instantiate(cfg), 10)]
    assert all(len(set(b)) == 1 for b in grouped)
    cfg.aspect_ratio_grouping = False
    mixed = [[d["width"] > d["height"] for d in b] for b in itertools.islice(instantiate(cfg), 10)]
    assert any(len(set(b)) == 2 for b in mixed)

"""detrex.data.common as detectron2's: DatasetFromList serializers, MapDataset (map-style, iterable,
pickled with a lambda), ToIterableDataset sharding and AspectRatioGroupedDataset."""

import itertools
import operator
import os
import pickle
from functools import partial

import pytest
import torch
from iopath.common.file_io import LazyPath
from torch.utils.data import DataLoader, IterableDataset

import detrex.data
from detrex.data.common import (
    AspectRatioGroupedDataset,
    DatasetFromList,
    MapDataset,
    SerializedList,
    ToIterableDataset,
    set_default_dataset_from_list_serialize_method,
)
from detrex.data.samplers import InferenceSampler, TrainingSampler


def _path(i):
    return f"path/{i}"


def _double_unless_two(x):
    return None if x == 2 else x * 2


class _OneTwoThree(IterableDataset):
    def __iter__(self):
        yield from [1, 2, 3]


def test_dataset_from_list_serializes_and_returns_fresh_items():
    items = [{"file_name": LazyPath(partial(_path, i)), "boxes": [i, i + 1]} for i in range(5)]
    dataset = DatasetFromList(items)
    assert isinstance(dataset._lst, SerializedList) and len(dataset) == 5
    for i in range(5):
        item = dataset[i]
        assert isinstance(item["file_name"], LazyPath) and os.fspath(item["file_name"]) == f"path/{i}"
        item["boxes"].append(99)  # a fresh copy: the next read is unchanged
        assert dataset[i]["boxes"] == [i, i + 1]
    plain = DatasetFromList(items, copy=True, serialize=False)
    plain[0]["boxes"].append(99)
    assert items[0]["boxes"] == [0, 1]
    shared = DatasetFromList(items, copy=False, serialize=False)
    assert shared[0] is items[0]


def test_dataset_from_list_with_a_callable_or_a_new_default_serializer():
    assert DatasetFromList([1, 2, 3], serialize=torch.tensor)[2] == torch.tensor(3)
    with set_default_dataset_from_list_serialize_method(torch.tensor):
        inside = DatasetFromList([1, 2, 3], serialize=True)
        assert isinstance(inside[2], torch.Tensor) and inside[2].item() == 3
    after = DatasetFromList([1, 2, 3], serialize=True)
    assert after[2] == 3 and type(after[2]) is int
    with pytest.raises(TypeError, match="bool or a callable"):
        DatasetFromList([1], serialize="yes")


def test_map_dataset_map_style_retries_none_on_another_index():
    dataset = MapDataset(DatasetFromList([1, 2, 3]), _double_unless_two)
    assert [dataset[0], dataset[2]] == [2, 6]
    assert all(dataset[1] in (2, 6) for _ in range(5))


def test_map_dataset_over_an_iterable_is_iterable_and_skips_none():
    dataset = MapDataset(_OneTwoThree(), _double_unless_two)
    assert isinstance(dataset, IterableDataset) and list(dataset) == [2, 6]
    assert list(MapDataset(_OneTwoThree(), lambda x: x + 1)) == [2, 3, 4]


def test_map_dataset_with_a_lambda_pickles():
    dataset = pickle.loads(pickle.dumps(MapDataset(DatasetFromList([1, 2, 3]), lambda x: x * 2)))
    assert [dataset[i] for i in range(3)] == [2, 4, 6]
    offset = 10
    iterable = pickle.loads(pickle.dumps(MapDataset(_OneTwoThree(), lambda x: x + offset)))
    assert list(iterable) == [11, 12, 13]


def test_to_iterable_dataset_keeps_the_sampler_order_with_workers():
    sampler = TrainingSampler(100, seed=10)
    expected = list(itertools.islice(sampler, 100))
    assert set(expected) == set(range(100))
    dataset = ToIterableDataset(DatasetFromList(list(range(100))), sampler)
    for workers in (0, 2):
        loader = DataLoader(
            dataset,
            num_workers=workers,
            collate_fn=operator.itemgetter(0),
            worker_init_fn=detrex.data.worker_init_reset_seed,  # reseeding must not change the sampler
        )
        assert list(itertools.islice(loader, 100)) == expected


def test_to_iterable_dataset_shards_chunks_over_workers():
    dataset = ToIterableDataset(DatasetFromList(list(range(10))), InferenceSampler(10), shard_chunk_size=3)
    loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=list)
    batches = list(loader)
    # worker 0 reads [0, 1, 2] and [6, 7, 8]; worker 1 reads [3, 4, 5] and [9]; the loader alternates
    assert batches == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]] and len(dataset) == 10
    unsharded = ToIterableDataset(DatasetFromList(list(range(4))), InferenceSampler(4), shard_sampler=False)
    both = list(DataLoader(unsharded, batch_size=None, num_workers=2))
    assert sorted(both) == [0, 0, 1, 1, 2, 2, 3, 3]  # every worker reads all of it
    with pytest.raises(TypeError, match="iterable already"):
        ToIterableDataset(unsharded, InferenceSampler(4))
    with pytest.raises(TypeError, match="torch Sampler"):
        ToIterableDataset(DatasetFromList([1]), [0])


def test_aspect_ratio_grouped_dataset_batches_by_orientation_and_leaves_no_full_bucket():
    sizes = [(1, 0), (0, 1), (1, 0), (0, 1), (3, 2), (2, 2)]
    data = [{"width": w, "height": h, "i": i} for i, (w, h) in enumerate(sizes)]
    dataset = AspectRatioGroupedDataset(data, 2)
    assert [[d["i"] for d in batch] for batch in dataset] == [[0, 2], [1, 3]]
    for _ in range(5):
        for index, _batch in enumerate(dataset):
            if index == 1:
                break  # stop early: buckets must not keep a full batch for the next pass
        assert all(len(bucket) < 2 for bucket in dataset._buckets)

"""Dataset wrappers used by the loaders (detectron2's `detectron2.data.common`): a compact list of dicts,
lazy mapping, map-style to iterable conversion, aspect-ratio grouping and per-rank batching."""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import pickle
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from detrex.utils.serialize import PicklableWrapper

__all__ = [
    "AspectRatioGroupedDataset",
    "DatasetFromList",
    "MapDataset",
    "SerializedList",
    "ToIterableDataset",
    "TrainBatchSampler",
    "seeded_rng",
    "set_default_dataset_from_list_serialize_method",
]

logger = logging.getLogger(__name__)


class SerializedList:
    """A list whose items are pickled into one uint8 tensor (plus a tensor of end offsets).

    Dataloader workers then share two buffers instead of touching, and so copying, 100k+ Python objects:
    copy-on-write pages stay shared under fork, and torch moves the tensors to shared memory under spawn.
    Each read unpickles a fresh copy of the item.
    """

    def __init__(self, lst: Sequence):
        blobs = [
            np.frombuffer(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8) for x in lst
        ]
        self._addr = torch.from_numpy(np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64)))
        self._lst = torch.from_numpy(np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8))
        logger.info(f"Serialized {len(blobs)} dataset items into {len(self._lst) / 1024**2:.2f} MiB")

    def __len__(self) -> int:
        return len(self._addr)

    def __getitem__(self, idx: int) -> Any:
        start = 0 if idx == 0 else int(self._addr[idx - 1])
        return pickle.loads(memoryview(self._lst[start : int(self._addr[idx])].numpy()))


_default_serialize: Callable[[list], Any] = SerializedList


@contextlib.contextmanager
def set_default_dataset_from_list_serialize_method(method: Callable[[list], Any]):
    """Within the block, `DatasetFromList(lst, serialize=True)` stores `method(lst)` (default: SerializedList)."""
    global _default_serialize
    previous, _default_serialize = _default_serialize, method
    try:
        yield
    finally:
        _default_serialize = previous


class DatasetFromList(Dataset):
    """A list as a map-style Dataset.

    serialize: True stores the list as a SerializedList (or what set_default_dataset_from_list_serialize_method
        chose); a callable stores `serialize(lst)` and reads items from it by index; False keeps the list.
    copy: with serialize=False, return a deep copy of each item so that a mapper may modify it in place
        (a serialized list returns fresh objects anyway).
    """

    def __init__(self, lst: list, copy: bool = True, serialize: bool | Callable[[list], Any] = True):
        if not isinstance(serialize, bool) and not callable(serialize):
            raise TypeError(f"DatasetFromList: serialize must be a bool or a callable, got {serialize!r}")
        self._copy = copy
        self._serialize = serialize is not False
        if self._serialize:
            method = serialize if callable(serialize) else _default_serialize
            logger.info(f"Serializing the dataset with {getattr(method, '__qualname__', method)}")
            self._lst = method(lst)
        else:
            self._lst = lst

    def __len__(self) -> int:
        return len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        if self._copy and not self._serialize:
            return copy.deepcopy(self._lst[idx])
        return self._lst[idx]


@contextlib.contextmanager
def seeded_rng(*entropy: int):
    """Seed numpy's, python's and torch's global RNGs from `entropy` inside the block, restoring their
    previous states afterwards (so augmentation randomness is a function of the sample, not of history)."""
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.random.get_rng_state()
    s = np.random.SeedSequence([int(e) for e in entropy]).generate_state(2)
    np.random.seed(int(s[0]))
    random.seed(int(s[1]))
    torch.default_generator.manual_seed(int(s[0]) * 2**32 + int(s[1]))  # CPU only: CUDA RNG untouched
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        torch.random.set_rng_state(torch_state)


class _MapIterableDataset(IterableDataset):
    """MapDataset over an IterableDataset: maps each element as it streams by, dropping None results."""

    def __init__(self, dataset: IterableDataset, map_func: Callable[[Any], Any]):
        self._dataset = dataset
        self._map_func = PicklableWrapper(map_func)

    def __len__(self) -> int:
        return len(self._dataset)

    def __iter__(self) -> Iterator[Any]:
        for item in self._dataset:
            mapped = self._map_func(item)
            if mapped is not None:
                yield mapped


class MapDataset(Dataset):
    """Apply `map_func` to items of `dataset` lazily, on access.

    Over an IterableDataset, this is an IterableDataset that maps each element and skips those mapped to
    None. Over a map-style dataset, a None result (e.g. an image whose annotations were all filtered) is
    retried on another randomly chosen index. Keys may be plain indices or `(index, position)` pairs from
    TrainBatchSampler: then the RNGs are seeded from (seed, position) around the call, so the augmentation
    of the sample at stream position p is the same whatever the worker count, and after a resume.
    `map_func` may be a lambda or a closure: it is pickled with cloudpickle (for spawned workers).
    """

    def __new__(cls, dataset: Sequence | Dataset, map_func: Callable[[Any], Any], seed: int = 0):
        if isinstance(dataset, IterableDataset):
            return _MapIterableDataset(dataset, map_func)
        return super().__new__(cls)

    def __init__(self, dataset: Sequence | Dataset, map_func: Callable[[Any], Any], seed: int = 0):
        self._dataset = dataset
        self._map_func = PicklableWrapper(map_func)
        self._seed = int(seed)

    def __getnewargs__(self):  # pickle calls __new__ with these: it needs the dataset to pick a class
        return self._dataset, self._map_func, self._seed

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        index, position = key if isinstance(key, tuple) else (int(key), None)
        for attempt in range(100):
            if position is None:
                data = self._map_func(self._dataset[index])
            else:
                with seeded_rng(self._seed, position, attempt):
                    data = self._map_func(self._dataset[index])
            if data is not None:
                return data
            if attempt >= 2:
                logger.warning(
                    f"mapper returned None for {attempt + 1} samples in a row (last index {index})"
                )
            rng = np.random.default_rng(
                [self._seed, index, attempt] + ([] if position is None else [position])
            )
            index = int(rng.integers(len(self._dataset)))
        raise RuntimeError(
            "the dataset mapper returned None for 100 samples in a row; check the mapper and data"
        )


def _shard_for_worker(iterable: Iterable, chunk_size: int = 1) -> Iterator:
    """Inside a dataloader worker, keep this worker's share of `iterable`: chunks of `chunk_size`
    consecutive items, dealt round-robin to the workers (worker w gets chunks w, w + W, w + 2W, ...)."""
    info = get_worker_info()
    if info is None or info.num_workers == 1:
        yield from iterable
        return
    stride = info.num_workers * chunk_size
    # one slice per position inside a chunk, interleaved back into chunk order
    slices = [itertools.islice(iterable, info.id * chunk_size + i, None, stride) for i in range(chunk_size)]
    yield from _round_robin(slices)


def _round_robin(iterators: list[Iterator]) -> Iterator:
    """Items of the iterators in turn (a0, b0, a1, b1, ...), dropping each iterator when it ends."""
    active = [iter(it) for it in iterators]
    while active:
        still = []
        for it in active:
            try:
                yield next(it)
            except StopIteration:
                continue
            still.append(it)
        active = still


class ToIterableDataset(IterableDataset):
    """An iterable dataset yielding `dataset[i]` for each index `i` of `sampler`.

    shard_sampler: in dataloader workers, each worker keeps its own share of the indices (chunks of
        `shard_chunk_size`), so that workers do not produce the same data; turn off for a sampler that
        already shards by worker.
    """

    def __init__(
        self, dataset: Dataset, sampler: Sampler, shard_sampler: bool = True, shard_chunk_size: int = 1
    ):
        if isinstance(dataset, IterableDataset):
            raise TypeError("ToIterableDataset: the dataset is iterable already; use it directly")
        if not isinstance(sampler, Sampler):
            raise TypeError(
                f"ToIterableDataset: sampler must be a torch Sampler, got {type(sampler).__name__}"
            )
        self.dataset = dataset
        self.sampler = sampler
        self.shard_sampler = shard_sampler
        self.shard_chunk_size = shard_chunk_size

    def __iter__(self) -> Iterator[Any]:
        indices = (
            _shard_for_worker(self.sampler, self.shard_chunk_size) if self.shard_sampler else self.sampler
        )
        for idx in indices:
            yield self.dataset[idx]

    def __len__(self) -> int:
        return len(self.sampler)


class AspectRatioGroupedDataset(IterableDataset):
    """Batches of `batch_size` dicts from `dataset` (an iterable of dicts with "width" and "height") in which
    all images are landscape (w > h) or all are portrait/square; each batch is yielded when its group fills."""

    def __init__(self, dataset: Iterable[dict], batch_size: int):
        self.dataset = dataset
        self.batch_size = batch_size
        self._buckets: list[list] = [[], []]

    def __iter__(self) -> Iterator[list]:
        for d in self.dataset:
            bucket = self._buckets[0 if d["width"] > d["height"] else 1]
            bucket.append(d)
            if len(bucket) == self.batch_size:
                batch = bucket[:]
                del bucket[:]  # emptied before the yield: a consumer that stops early leaves no full bucket
                yield batch


def _batches(keyed: Iterable[tuple[int, int]], batch_size: int, group_ids: Sequence[int] | None):
    """Group (index, position) keys into lists of batch_size; with group_ids, one group per batch."""
    buckets: dict[int, list] = {}
    for key in keyed:
        group = 0 if group_ids is None else group_ids[key[0]]
        bucket = buckets.setdefault(group, [])
        bucket.append(key)
        if len(bucket) == batch_size:
            yield bucket
            buckets[group] = []


class TrainBatchSampler:
    """Turn an index sampler (e.g. TrainingSampler) into per-rank batches of `(index, position)` keys.

    group_ids: optional group of each dataset index (aspect-ratio buckets); a batch then contains only
        indices of one group, in arrival order (leftovers wait for their group to fill).
    rank, world_size: this process's place, so that positions are unique across ranks.
    start_iter: the number of batches to skip, decided from indices alone (no image is read): set it
        (here or as `loader.batch_sampler.start_iter = n` before iterating) to resume a run at iteration n
        with the data order and augmentations of an uninterrupted run.
    """

    def __init__(
        self,
        sampler: Iterable[int],
        batch_size: int,
        group_ids: Sequence[int] | None = None,
        start_iter: int = 0,
        rank: int = 0,
        world_size: int = 1,
        seed: int | None = None,
    ):
        if batch_size <= 0:
            raise ValueError(f"TrainBatchSampler: batch_size must be positive, got {batch_size}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.group_ids = group_ids
        self.start_iter = int(start_iter)
        self._rank, self._world_size = rank, world_size
        self.seed = seed  # the seed MapDataset uses for per-sample augmentation (informational here)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        # positions are global stream positions (unique across ranks), used to seed each sample
        keyed = ((index, i * self._world_size + self._rank) for i, index in enumerate(self.sampler))
        return itertools.islice(_batches(keyed, self.batch_size, self.group_ids), self.start_iter, None)

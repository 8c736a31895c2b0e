"""Dataset wrappers used by the loaders: a compact list of dicts, lazy mapping, per-rank batching."""

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
from torch.utils.data import Dataset

__all__ = ["DatasetFromList", "MapDataset", "TrainBatchSampler", "seeded_rng"]

logger = logging.getLogger(__name__)


class DatasetFromList(Dataset):
    """A list of dataset dicts as a map-style Dataset.

    serialize=True pickles the dicts into one numpy byte buffer: dataloader workers then share it
    copy-on-write instead of each touching (and so copying) 100k+ Python objects.
    """

    def __init__(self, lst: list, copy: bool = True, serialize: bool = True):
        self._copy = copy
        self._serialize = serialize
        if serialize:
            blobs = [
                np.frombuffer(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8) for x in lst
            ]
            self._addr = np.cumsum(np.asarray([len(b) for b in blobs], dtype=np.int64))
            self._lst = np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8)
            logger.info(f"Serialized {len(lst)} dataset dicts into {self._lst.nbytes / 1024**2:.2f} MiB")
        else:
            self._lst = lst

    def __len__(self) -> int:
        return len(self._addr) if self._serialize else len(self._lst)

    def __getitem__(self, idx: int) -> Any:
        if self._serialize:
            start = 0 if idx == 0 else int(self._addr[idx - 1])
            return pickle.loads(memoryview(self._lst[start : int(self._addr[idx])]))
        return copy.deepcopy(self._lst[idx]) if self._copy else self._lst[idx]


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


class MapDataset(Dataset):
    """Apply `map_func` to items of `dataset` lazily, on access.

    A map_func returning None (e.g. an image whose annotations were all filtered) is retried on another
    randomly chosen index. Keys may be plain indices or `(index, position)` pairs from TrainBatchSampler:
    then the RNGs are seeded from (seed, position) around the call, so the augmentation of the sample at
    stream position p is the same whatever the worker count, and after a resume.
    """

    def __init__(self, dataset: Sequence | Dataset, map_func: Callable[[Any], Any], seed: int = 0):
        self._dataset = dataset
        self._map_func = map_func
        self._seed = int(seed)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        index, position = key if isinstance(key, tuple) else (key, None)
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

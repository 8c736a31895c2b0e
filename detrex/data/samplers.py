"""Index samplers: an infinite shuffled stream for training, contiguous shards for inference."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from detrex.utils import comm

__all__ = ["TrainingSampler", "InferenceSampler"]


class TrainingSampler(Sampler[int]):
    """An endless stream of dataset indices, reshuffled every epoch with a seeded generator.

    All ranks draw the same stream (same seed) and rank r keeps positions r, r + W, r + 2W, ...
    (W = world size), so ranks see disjoint samples within each stretch of W samples.
    seed: None draws one random seed on rank 0 and shares it with every rank (a collective call: build
    the sampler on all ranks). Fix it, or keep `.seed`, to replay the same order, e.g. when resuming.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"TrainingSampler: size must be a positive int, got {size!r}")
        self._size = size
        self._shuffle = shuffle
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank = comm.get_rank()
        self._world_size = comm.get_world_size()

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=generator).tolist()
            else:
                yield from range(self._size)


class InferenceSampler(Sampler[int]):
    """Split range(size) into contiguous per-rank shards whose sizes differ by at most one.

    Every index appears on exactly one rank (no padding, no drops), so gathered predictions cover the
    dataset once.
    """

    def __init__(self, size: int):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"InferenceSampler: size must be a positive int, got {size!r}")
        self._size = size
        rank, world_size = comm.get_rank(), comm.get_world_size()
        self._local_indices = self._get_local_indices(size, world_size, rank)

    @staticmethod
    def _get_local_indices(total_size: int, world_size: int, rank: int) -> range:
        base, extra = divmod(total_size, world_size)
        shard_sizes = [base + int(r < extra) for r in range(world_size)]
        begin = sum(shard_sizes[:rank])
        return range(begin, begin + shard_sizes[rank])

    def __iter__(self) -> Iterator[int]:
        return iter(self._local_indices)

    def __len__(self) -> int:
        return len(self._local_indices)

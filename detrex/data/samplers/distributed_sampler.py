"""Index samplers: infinite shuffled streams for training (plain, a random subset, or with per-image repeat
factors), contiguous shards for inference (detectron2's `detectron2.data.samplers`)."""

from __future__ import annotations

import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from detrex.utils import comm

__all__ = [
    "InferenceSampler",
    "RandomSubsetTrainingSampler",
    "RepeatFactorTrainingSampler",
    "TrainingSampler",
]

logger = logging.getLogger(__name__)


class TrainingSampler(Sampler[int]):
    """An endless stream of dataset indices, reshuffled every epoch with a seeded generator.

    All ranks draw the same stream (same seed) and rank r keeps positions r, r + W, r + 2W, ...
    (W = world size), so ranks see disjoint samples within each stretch of W samples.
    seed: None draws one random seed on rank 0 and shares it with every rank (a collective call: build
    the sampler on all ranks). Fix it, or keep `.seed`, to replay the same order, e.g. when resuming.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None):
        if not isinstance(size, int):
            raise TypeError(
                f"{type(self).__name__}: size must be a positive int, got {type(size).__name__} {size!r}"
            )
        if size <= 0:
            raise ValueError(f"{type(self).__name__}: size must be a positive int, got {size!r}")
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


class RandomSubsetTrainingSampler(TrainingSampler):
    """TrainingSampler over a fixed random subset of int(size * subset_ratio) indices (e.g. to measure
    accuracy against the amount of data). seed_subset picks the subset; seed_shuffle orders each pass;
    None draws one shared by all ranks."""

    def __init__(
        self,
        size: int,
        subset_ratio: float,
        shuffle: bool = True,
        seed_shuffle: int | None = None,
        seed_subset: int | None = None,
    ):
        super().__init__(size=size, shuffle=shuffle, seed=seed_shuffle)
        if not 0.0 < subset_ratio <= 1.0:
            raise ValueError(
                f"RandomSubsetTrainingSampler: subset_ratio must be in (0, 1], got {subset_ratio}"
            )
        self._size_subset = int(size * subset_ratio)
        if self._size_subset <= 0:
            raise ValueError(
                f"RandomSubsetTrainingSampler: {size} * {subset_ratio} leaves no index to sample"
            )
        seed_subset = int(comm.shared_random_seed() if seed_subset is None else seed_subset)
        generator = torch.Generator()
        generator.manual_seed(seed_subset)
        self._indexes_subset = torch.randperm(self._size, generator=generator)[: self._size_subset]
        logger.info(f"RandomSubsetTrainingSampler: {self._size_subset} of {self._size} indices")

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        while True:
            if self._shuffle:
                yield from self._indexes_subset[
                    torch.randperm(self._size_subset, generator=generator)
                ].tolist()
            else:
                yield from self._indexes_subset.tolist()


class RepeatFactorTrainingSampler(TrainingSampler):
    """An endless stream in which index i appears repeat_factors[i] times per pass on average (LVIS-style
    class balancing); all ones is TrainingSampler. Fractional factors are rounded up or down at random
    each pass, with the right expectation. Ranks split the stream like TrainingSampler."""

    def __init__(self, repeat_factors: torch.Tensor, *, shuffle: bool = True, seed: int | None = None):
        repeat_factors = torch.as_tensor(repeat_factors, dtype=torch.float32)
        super().__init__(size=len(repeat_factors), shuffle=shuffle, seed=seed)
        self._int_part = torch.trunc(repeat_factors)
        self._frac_part = repeat_factors - self._int_part

    @staticmethod
    def repeat_factors_from_category_frequency(
        dataset_dicts: list[dict], repeat_thresh: float, sqrt: bool = True
    ) -> torch.Tensor:
        """Per-image repeat factors (float32, one per dataset dict) from category frequencies (LVIS paper,
        appendix B.2): f(c) is the fraction of images containing category c, r(c) = max(1, sqrt(t / f(c)))
        (t / f(c) without sqrt), and an image repeats max over its categories of r(c) (1 without any)."""
        image_categories = [{a["category_id"] for a in d["annotations"]} for d in dataset_dicts]
        counts: dict[int, int] = defaultdict(int)
        for categories in image_categories:
            for c in categories:
                counts[c] += 1
        num_images = len(dataset_dicts)
        category_repeat = {}
        for c, n in counts.items():
            ratio = repeat_thresh / (n / num_images)
            category_repeat[c] = max(1.0, math.sqrt(ratio) if sqrt else ratio)
        for c in sorted(category_repeat):
            logger.info(
                f"category {c}: frequency {counts[c] / num_images:.2f}, repeat {category_repeat[c]:.2f}"
            )
        factors = [
            max((category_repeat[c] for c in categories), default=1.0) for categories in image_categories
        ]
        return torch.tensor(factors, dtype=torch.float32)

    def _get_epoch_indices(self, generator: torch.Generator) -> torch.Tensor:
        """The indices of one pass, index i repeated int_part[i] times plus once more with probability
        frac_part[i]."""
        draws = torch.rand(len(self._frac_part), generator=generator)
        repeats = (self._int_part + (draws < self._frac_part).float()).long()
        return torch.repeat_interleave(torch.arange(len(repeats)), repeats)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed)
        while True:
            indices = self._get_epoch_indices(generator)
            if self._shuffle:
                yield from indices[torch.randperm(len(indices), generator=generator)].tolist()
            else:
                yield from indices.tolist()


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

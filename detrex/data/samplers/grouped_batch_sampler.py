"""GroupedBatchSampler: batches whose indices all share a group (e.g. an aspect-ratio bucket)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import BatchSampler, Sampler

__all__ = ["GroupedBatchSampler"]


class GroupedBatchSampler(BatchSampler):
    """Batches of `batch_size` indices from `sampler`, each batch from one group (`group_ids[i]` is index
    i's group), in the order the sampler gives them: a batch is yielded when its group has collected
    `batch_size` indices. Leftovers at the end of a finite sampler are dropped, so len() is undefined."""

    def __init__(self, sampler: Sampler, group_ids: Sequence[int], batch_size: int):
        if not isinstance(sampler, Sampler):
            raise ValueError(f"GroupedBatchSampler: sampler must be a torch Sampler, got {sampler!r}")
        self.sampler = sampler
        self.group_ids = np.asarray(group_ids)
        if self.group_ids.ndim != 1:
            raise ValueError(f"GroupedBatchSampler: group_ids must be 1-D, got shape {self.group_ids.shape}")
        self.batch_size = batch_size
        self.buffer_per_group: dict = {g: [] for g in np.unique(self.group_ids).tolist()}

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self.sampler:
            buffer = self.buffer_per_group[self.group_ids[idx]]
            buffer.append(idx)
            if len(buffer) == self.batch_size:
                yield buffer[:]
                del buffer[:]

    def __len__(self) -> int:
        raise NotImplementedError("GroupedBatchSampler has no length: batches depend on the group order")

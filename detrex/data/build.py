"""Dataset dicts from catalog names, and the train / test data loaders.

loader = build_detection_train_loader(dataset="synthetic_shapes_train", mapper=mapper, total_batch_size=8)
batch = next(iter(loader))    # list of per_rank_batch mapped dicts (here 8 on one process)
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from detrex.utils import comm

from .catalog import DatasetCatalog, MetadataCatalog
from .common import DatasetFromList, MapDataset, TrainBatchSampler
from .samplers import InferenceSampler, TrainingSampler

__all__ = [
    "get_detection_dataset_dicts",
    "build_detection_train_loader",
    "build_detection_test_loader",
    "trivial_batch_collator",
    "worker_init_reset_seed",
]

logger = logging.getLogger(__name__)


def get_detection_dataset_dicts(names: str | Sequence[str], filter_empty: bool = True) -> list[dict]:
    """Load and concatenate the datasets `names` from DatasetCatalog.

    filter_empty: drop images without a non-crowd annotation (training wants them out; evaluation keeps
    all images, so pass False there).
    """
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("get_detection_dataset_dicts: no dataset names given")
    dicts = []
    for name in names:
        d = DatasetCatalog.get(name)
        if len(d) == 0:
            raise ValueError(f"dataset {name!r} is empty")
        dicts.append(d)
    _check_same_classes(names)
    dataset_dicts = [record for d in dicts for record in d]
    if filter_empty and any("annotations" in r for r in dataset_dicts):
        before = len(dataset_dicts)
        dataset_dicts = [r for r in dataset_dicts if any(a.get("iscrowd", 0) == 0 for a in r["annotations"])]
        logger.info(
            f"Removed {before - len(dataset_dicts)} images without usable annotations; {len(dataset_dicts)} left"
        )
    if not dataset_dicts:
        raise ValueError(f"no images left in {names} after filtering empty ones")
    return dataset_dicts


def _check_same_classes(names: list[str]) -> None:
    classes = {n: MetadataCatalog.get(n).get("thing_classes") for n in names}
    known = {n: c for n, c in classes.items() if c is not None}
    if len({tuple(c) for c in known.values()}) > 1:
        raise ValueError(f"datasets {names} have different thing_classes and cannot be concatenated: {known}")


def trivial_batch_collator(batch: list) -> list:
    """Keep a batch as the list of mapped dicts (images differ in size; the model pads them)."""
    return batch


def worker_init_reset_seed(base_seed: int, rank: int, worker_id: int) -> None:
    """Seed numpy, random and torch in a dataloader worker from (base_seed, rank, worker_id)."""
    s = np.random.SeedSequence([base_seed, rank, worker_id]).generate_state(2)
    np.random.seed(int(s[0]))
    random.seed(int(s[1]))
    torch.manual_seed(int(s[0]))


def _as_dataset(dataset: str | Sequence[str] | list | Dataset, filter_empty: bool):
    if isinstance(dataset, str) or (
        isinstance(dataset, Sequence) and dataset and isinstance(dataset[0], str)
    ):
        dataset = get_detection_dataset_dicts(dataset, filter_empty=filter_empty)
    return dataset


def _aspect_ratio_groups(dataset) -> list[int] | None:
    """0 for landscape (w > h), 1 for portrait/square images, from the dataset dicts' sizes (no image
    read); None when they are not known without loading (a generic torch Dataset)."""
    if isinstance(dataset, list) and all("width" in d and "height" in d for d in dataset):
        return [0 if d["width"] > d["height"] else 1 for d in dataset]
    groups = getattr(dataset, "group_ids", None)
    if groups is None:
        logger.warning("aspect_ratio_grouping: the dataset does not give image sizes up front; not grouping")
    return groups


def build_detection_train_loader(
    dataset: str | Sequence[str] | list[dict] | Dataset,
    mapper: Callable[[Any], Any],
    total_batch_size: int,
    num_workers: int = 0,
    aspect_ratio_grouping: bool = True,
    sampler: Sampler | None = None,
    seed: int | None = None,
    start_iter: int = 0,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """An endless training loader whose batches are lists of `total_batch_size / world size` mapped dicts.

    dataset: a dataset name / list of names (loaded with get_detection_dataset_dicts), a list of dataset
        dicts, or a torch Dataset. The mapper runs lazily in the workers.
    sampler: default TrainingSampler(len(dataset), seed=seed); each rank gets its own shard.
    aspect_ratio_grouping: batches hold only landscape or only portrait images (by the dataset dicts'
        width/height, so the grouping is known without reading images).
    seed: the data order and per-sample augmentation seed; None draws one shared by all ranks
        (deterministic when the global RNGs were seeded before). Read back as `loader.batch_sampler.seed`.
    start_iter: skip the first `start_iter` batches at index level (no image is read): a run resumed at
        iteration n with the same seed and start_iter=n sees the same batches and augmentations as an
        uninterrupted run from iteration n on. Can also be set later: `loader.batch_sampler.start_iter = n`.
    """
    world_size = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"total_batch_size ({total_batch_size}) must be a positive multiple of the number of processes "
            f"({world_size}); each process gets total_batch_size // world_size images"
        )
    dataset = _as_dataset(dataset, filter_empty=True)
    group_ids = _aspect_ratio_groups(dataset) if aspect_ratio_grouping else None
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if sampler is None:
        sampler = TrainingSampler(len(dataset), seed=seed)
    base_seed = getattr(sampler, "seed", None)
    if base_seed is None:
        base_seed = int(comm.shared_random_seed() if seed is None else seed)
    rank = comm.get_rank()
    batch_sampler = TrainBatchSampler(
        sampler, total_batch_size // world_size, group_ids, start_iter, rank, world_size, seed=base_seed
    )
    return DataLoader(
        MapDataset(dataset, mapper, seed=base_seed),
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        worker_init_fn=functools.partial(worker_init_reset_seed, base_seed, rank),
    )


def build_detection_test_loader(
    dataset: str | Sequence[str] | list[dict] | Dataset,
    mapper: Callable[[Any], Any],
    batch_size: int = 1,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A finite loader over this rank's InferenceSampler shard (contiguous, no duplicates, nothing
    dropped); batches are lists of mapped dicts. Names load with filter_empty=False."""
    dataset = _as_dataset(dataset, filter_empty=False)
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if sampler is None:
        sampler = InferenceSampler(len(dataset))
    return DataLoader(
        MapDataset(dataset, mapper),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
    )

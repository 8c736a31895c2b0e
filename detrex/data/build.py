"""Dataset dicts from catalog names, and the train / test data loaders.

loader = build_detection_train_loader(dataset="synthetic_shapes_train", mapper=mapper, total_batch_size=8)
batch = next(iter(loader))    # list of per_rank_batch mapped dicts (here 8 on one process)
"""

from __future__ import annotations

import difflib
import inspect
import logging
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, IterableDataset, Sampler

from detrex.utils import comm
from detrex.utils.env import seed_all_rng

from .catalog import DatasetCatalog, MetadataCatalog
from .common import (
    AspectRatioGroupedDataset,
    DatasetFromList,
    MapDataset,
    ToIterableDataset,
    TrainBatchSampler,
)
from .samplers import InferenceSampler, TrainingSampler

__all__ = [
    "get_detection_dataset_dicts",
    "build_batch_data_loader",
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
    dicts = [DatasetCatalog.get(name) for name in names]
    if isinstance(dicts[0], Dataset):  # a registered torch Dataset is used as it is (no filtering)
        return dicts[0] if len(dicts) == 1 else ConcatDataset(dicts)
    for name, d in zip(names, dicts):
        if len(d) == 0:
            raise ValueError(f"dataset {name!r} is empty")
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


def worker_init_reset_seed(worker_id: int) -> None:
    """A DataLoader `worker_init_fn`: seed python's, numpy's and torch's RNGs in worker `worker_id` from
    the torch seed the DataLoader gave that worker, so workers (and epochs) draw different numbers."""
    seed_all_rng(torch.initial_seed() % 2**31 + worker_id)


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


def _per_rank_batch_size(total_batch_size: int) -> int:
    world_size = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size != 0:
        raise ValueError(
            f"total_batch_size ({total_batch_size}) must be a positive multiple of the number of processes "
            f"({world_size}); each process gets total_batch_size // world_size images"
        )
    return total_batch_size // world_size


_LOADER_ARGS = frozenset(inspect.signature(DataLoader.__init__).parameters) - {"self"}


def _check_loader_kwargs(function: str, kwargs: dict) -> None:
    """Refuse, with the closest names, extra keyword arguments that torch's DataLoader does not take."""
    for key in kwargs:
        if key not in _LOADER_ARGS:
            close = difflib.get_close_matches(key, sorted(_LOADER_ARGS), n=3)
            hint = f" Closest: {', '.join(close)}." if close else ""
            raise TypeError(
                f"{function}: unexpected argument {key!r} (extra arguments go to DataLoader).{hint}"
            )


def _as_is(x: Any) -> Any:  # the mapper when none is given (a module-level function pickles)
    return x


def build_batch_data_loader(
    dataset: Dataset,
    sampler: Sampler | None,
    total_batch_size: int,
    *,
    aspect_ratio_grouping: bool = False,
    num_workers: int = 0,
    collate_fn: Callable | None = None,
    drop_last: bool = True,
    single_gpu_batch_size: int | None = None,
    prefetch_factor: int = 2,
    persistent_workers: bool = False,
    pin_memory: bool = False,
    seed: int | None = None,
    **kwargs: Any,
) -> DataLoader | AspectRatioGroupedDataset | MapDataset:
    """Batches of a map-style dataset read in `sampler` order, or of an iterable dataset (sampler None), as
    detectron2's function: lists of per-rank-batch elements, no collation by default.

    total_batch_size is split over the processes; or give single_gpu_batch_size (per process) instead.
    aspect_ratio_grouping: batch only landscape or only portrait elements (dicts with "width" and
        "height"); batches then form as groups fill, and drop_last must hold.
    drop_last: drop an incomplete last batch (of a finite sampler). seed: seeds the DataLoader's generator
        (worker seeds). Other keyword arguments go to torch's DataLoader.
    """
    _check_loader_kwargs("build_batch_data_loader", kwargs)
    if single_gpu_batch_size:
        if total_batch_size:
            raise ValueError(
                "build_batch_data_loader: give total_batch_size or single_gpu_batch_size, not both"
            )
        batch_size = single_gpu_batch_size
    else:
        batch_size = _per_rank_batch_size(total_batch_size)
    logger.info(f"Making a batched data loader with batch_size={batch_size}")
    if isinstance(dataset, IterableDataset):
        if sampler is not None:
            raise ValueError(
                "build_batch_data_loader: an iterable dataset takes no sampler; pass sampler=None"
            )
    else:
        # each worker reads whole chunks of batch_size indices, so batches stay complete and ordered
        dataset = ToIterableDataset(dataset, sampler, shard_chunk_size=batch_size)
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    options = dict(
        num_workers=num_workers,
        worker_init_fn=worker_init_reset_seed,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=persistent_workers,
        pin_memory=pin_memory,
        generator=generator,
        **kwargs,
    )
    if not aspect_ratio_grouping:
        collate = trivial_batch_collator if collate_fn is None else collate_fn
        return DataLoader(dataset, batch_size=batch_size, drop_last=drop_last, collate_fn=collate, **options)
    if not drop_last:
        raise ValueError(
            "build_batch_data_loader: aspect_ratio_grouping drops incomplete batches; keep drop_last"
        )
    elements = DataLoader(dataset, collate_fn=operator.itemgetter(0), **options)  # one element at a time
    grouped = AspectRatioGroupedDataset(elements, batch_size)
    return grouped if collate_fn is None else MapDataset(grouped, collate_fn)


def build_detection_train_loader(
    dataset: str | Sequence[str] | list[dict] | Dataset,
    mapper: Callable[[Any], Any] | None,
    total_batch_size: int,
    num_workers: int = 0,
    aspect_ratio_grouping: bool = True,
    sampler: Sampler | None = None,
    seed: int | None = None,
    start_iter: int = 0,
    collate_fn: Callable | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int = 2,
) -> DataLoader | AspectRatioGroupedDataset | MapDataset:
    """An endless training loader whose batches are lists of `total_batch_size / world size` mapped dicts.

    dataset: a dataset name / list of names (loaded with get_detection_dataset_dicts), a list of dataset
        dicts, or a torch Dataset (map-style or iterable). The mapper (None: items as they are) runs lazily
        in the workers.
    sampler: default TrainingSampler(len(dataset), seed=seed); each rank gets its own shard. None for an
        iterable dataset, which is batched by build_batch_data_loader (seed and start_iter then unused).
    aspect_ratio_grouping: batches hold only landscape or only portrait images, so that less padding is
        needed (by the dataset dicts' width/height, so the grouping is known without reading images).
    seed: the data order and per-sample augmentation seed; None draws one shared by all ranks
        (deterministic when the global RNGs were seeded before). Read back as `loader.batch_sampler.seed`.
    start_iter: skip the first `start_iter` batches at index level (no image is read): a run resumed at
        iteration n with the same seed and start_iter=n sees the same batches and augmentations as an
        uninterrupted run from iteration n on. Can also be set later: `loader.batch_sampler.start_iter = n`.
    pin_memory, persistent_workers, prefetch_factor (batches each worker reads ahead): torch's DataLoader
        options. Every argument is named, so that a misspelt config key fails in ``instantiate`` with the
        closest name.
    """
    batch_size = _per_rank_batch_size(total_batch_size)
    mapper = _as_is if mapper is None else mapper
    dataset = _as_dataset(dataset, filter_empty=True)
    if isinstance(dataset, IterableDataset):
        if sampler is not None:
            raise ValueError(
                "build_detection_train_loader: an iterable dataset takes no sampler; pass sampler=None"
            )
        return build_batch_data_loader(
            MapDataset(dataset, mapper),
            None,
            total_batch_size,
            aspect_ratio_grouping=aspect_ratio_grouping,
            num_workers=num_workers,
            collate_fn=collate_fn,
            prefetch_factor=prefetch_factor,
            persistent_workers=persistent_workers,
            pin_memory=pin_memory,
        )
    group_ids = _aspect_ratio_groups(dataset) if aspect_ratio_grouping else None
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if sampler is None:
        sampler = TrainingSampler(len(dataset), seed=seed)
    base_seed = getattr(sampler, "seed", None)
    if base_seed is None:
        base_seed = int(comm.shared_random_seed() if seed is None else seed)
    rank, world_size = comm.get_rank(), comm.get_world_size()
    batch_sampler = TrainBatchSampler(
        sampler, batch_size, group_ids, start_iter, rank, world_size, seed=base_seed
    )
    return DataLoader(
        MapDataset(dataset, mapper, seed=base_seed),
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
        worker_init_fn=worker_init_reset_seed,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=persistent_workers,
        pin_memory=pin_memory,
    )


def build_detection_test_loader(
    dataset: str | Sequence[str] | list[dict] | Dataset,
    mapper: Callable[[Any], Any] | None,
    batch_size: int = 1,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    collate_fn: Callable | None = None,
) -> DataLoader:
    """A finite loader over this rank's InferenceSampler shard (contiguous, no duplicates, nothing
    dropped); batches are lists of mapped dicts. Names load with filter_empty=False. An iterable dataset
    is read as it streams (no sampler; shard it yourself, e.g. with ToIterableDataset)."""
    dataset = _as_dataset(dataset, filter_empty=False)
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    if isinstance(dataset, IterableDataset):
        if sampler is not None:
            raise ValueError(
                "build_detection_test_loader: an iterable dataset takes no sampler; pass sampler=None"
            )
    elif sampler is None:
        sampler = InferenceSampler(len(dataset))
    return DataLoader(
        MapDataset(dataset, _as_is if mapper is None else mapper),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=trivial_batch_collator if collate_fn is None else collate_fn,
    )

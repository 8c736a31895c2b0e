"""Data: dataset catalogs, COCO json and synthetic shapes, transforms, the DETR mapper, loaders."""

from . import (
    datasets,  # noqa: F401  (registers the builtin datasets)
    transforms,  # noqa: F401
)
from .build import (
    build_batch_data_loader,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
    trivial_batch_collator,
    worker_init_reset_seed,
)
from .catalog import DatasetCatalog, Metadata, MetadataCatalog
from .common import DatasetFromList, MapDataset, ToIterableDataset, TrainBatchSampler
from .datasets import (
    convert_to_coco_dict,
    convert_to_coco_json,
    generate_synthetic_shapes,
    get_datasets_root,
    load_coco_json,
    register_coco_instances,
)
from .detection_utils import BoxMode, ImageReadError, read_image
from .detr_dataset_mapper import DetrDatasetMapper
from .samplers import (
    GroupedBatchSampler,
    InferenceSampler,
    RandomSubsetTrainingSampler,
    RepeatFactorTrainingSampler,
    TrainingSampler,
)

__all__ = [
    "BoxMode",
    "DatasetCatalog",
    "DatasetFromList",
    "DetrDatasetMapper",
    "GroupedBatchSampler",
    "ImageReadError",
    "InferenceSampler",
    "MapDataset",
    "Metadata",
    "MetadataCatalog",
    "RandomSubsetTrainingSampler",
    "RepeatFactorTrainingSampler",
    "ToIterableDataset",
    "TrainBatchSampler",
    "TrainingSampler",
    "build_batch_data_loader",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "datasets",
    "generate_synthetic_shapes",
    "get_datasets_root",
    "get_detection_dataset_dicts",
    "load_coco_json",
    "read_image",
    "register_coco_instances",
    "transforms",
    "trivial_batch_collator",
    "worker_init_reset_seed",
]

"""Built-in COCO 2017 datasets, found under the datasets root when they load (see root.py):

<root>/coco/annotations/instances_{train,val}2017.json
<root>/coco/{train,val,test}2017/*.jpg
"""

from __future__ import annotations

import os

from detrex.data.catalog import DatasetCatalog, MetadataCatalog

from .builtin_meta import coco_instances_meta
from .coco import load_coco_json
from .root import DATASETS_ROOT_HELP, get_datasets_root

__all__ = ["COCO_2017_SPLITS", "register_all_coco"]

# name -> (image folder, annotation file), relative to the datasets root
COCO_2017_SPLITS = {
    "coco_2017_train": ("coco/train2017", "coco/annotations/instances_train2017.json"),
    "coco_2017_val": ("coco/val2017", "coco/annotations/instances_val2017.json"),
    "coco_2017_test": ("coco/test2017", "coco/annotations/image_info_test2017.json"),
    "coco_2017_test-dev": ("coco/test2017", "coco/annotations/image_info_test-dev2017.json"),
    "coco_2017_val_100": (
        "coco/val2017",
        "coco/annotations/instances_val2017_100.json",
    ),  # first 100 val images
}

_COCO_LAYOUT = "coco/annotations/instances_{train,val}2017.json, coco/{train,val}2017/*.jpg"


def missing_dataset_error(dataset_name: str, missing: str, layout: str) -> FileNotFoundError:
    """The error for a dataset file or folder that is not on disk: names it, the root rule and the layout."""
    return FileNotFoundError(
        f"dataset {dataset_name!r}: no {missing}\n  ({DATASETS_ROOT_HELP}). Expected layout:\n  {layout}"
    )


def _load_builtin_coco(name: str, image_dir: str, json_rel: str) -> list[dict]:
    root = get_datasets_root()
    json_file, image_root = os.path.join(root, json_rel), os.path.join(root, image_dir)
    for path, is_file in ((json_file, True), (image_root, False)):
        if not (os.path.isfile(path) if is_file else os.path.isdir(path)):
            raise missing_dataset_error(name, path, _COCO_LAYOUT)
    return load_coco_json(json_file, image_root, name)


def register_all_coco() -> None:
    """Register every COCO_2017_SPLITS entry, with metadata known without reading any file."""
    meta = coco_instances_meta()
    for name, (image_dir, json_rel) in COCO_2017_SPLITS.items():
        if name in DatasetCatalog:
            continue
        DatasetCatalog.register(name, lambda n=name, d=image_dir, j=json_rel: _load_builtin_coco(n, d, j))
        MetadataCatalog.get(name).set(evaluator_type="coco", **meta).set_lazy(
            json_file=lambda j=json_rel: os.path.join(get_datasets_root(), j),
            image_root=lambda d=image_dir: os.path.join(get_datasets_root(), d),
        )

"""COCO-format json <-> dataset dicts.

Loading groups annotations by image with plain dicts instead of building pycocotools' COCO index:
the 118k-image train json loads in seconds (see tests/data/test_coco_load_speed.py).
"""

from __future__ import annotations

import datetime
import gc
import json
import logging
import os
import time
from collections import defaultdict

from detrex.data.catalog import DatasetCatalog, MetadataCatalog
from detrex.data.detection_utils import BoxMode
from detrex.utils.file_io import atomic_write

try:  # 2-3x faster than the json module on big annotation files; optional
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

__all__ = [
    "load_coco_json",
    "register_coco_instances",
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "read_json",
]

logger = logging.getLogger(__name__)


def read_json(path: str):
    with open(path, "rb") as f:
        data = f.read()
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def load_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: str | None = None,
    extra_annotation_keys: list[str] | None = None,
) -> list[dict]:
    """Read a COCO instances json into dataset dicts.

    Returns one dict per image: {"file_name", "height", "width", "image_id", "annotations": [{"bbox"
    (XYWH_ABS), "bbox_mode", "category_id" (contiguous 0..C-1, in order of the json's category ids),
    "iscrowd", *extra_annotation_keys}]}. Annotations marked `"ignore": 1` are skipped. A json without
    "annotations" (test-dev image lists) gives images with empty annotation lists.
    With `dataset_name`, sets its metadata `thing_classes` and `thing_dataset_id_to_contiguous_id`.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO json not found: {json_file}")
    start = time.perf_counter()
    gc_enabled = gc.isenabled()
    gc.disable()  # collections triggered by millions of new dicts would cost more than parsing them
    try:
        dataset_dicts, num_anns = _load(json_file, image_root, dataset_name, extra_annotation_keys)
    finally:
        if gc_enabled:
            gc.enable()
    seconds = time.perf_counter() - start
    logger.info(
        f"Loaded {len(dataset_dicts)} images, {num_anns} annotations from {json_file} in {seconds:.2f}s"
    )
    return dataset_dicts


def _load(json_file, image_root, dataset_name, extra_annotation_keys) -> tuple[list[dict], int]:
    data = read_json(json_file)
    for key in ("images", "categories"):
        if key not in data:
            raise ValueError(f"{json_file} is not a COCO instances json: it has no {key!r} list")

    categories = sorted(data["categories"], key=lambda c: c["id"])
    id_map = {c["id"]: i for i, c in enumerate(categories)}
    if dataset_name is not None:
        MetadataCatalog.get(dataset_name).set(
            thing_classes=[c["name"] for c in categories], thing_dataset_id_to_contiguous_id=id_map
        )

    extra = list(extra_annotation_keys or [])
    per_image = defaultdict(list)
    for ann in data.get("annotations", []):
        if ann.get("ignore", 0):
            continue
        try:
            category = id_map[ann["category_id"]]
        except KeyError:
            raise ValueError(
                f"{json_file}: annotation {ann.get('id')} has category_id {ann['category_id']} which is not "
                f"among the json's categories {sorted(id_map)}"
            ) from None
        record = {
            "iscrowd": ann.get("iscrowd", 0),
            "bbox": ann["bbox"],
            "category_id": category,
            "bbox_mode": BoxMode.XYWH_ABS,
        }
        for key in extra:
            if key in ann:
                record[key] = ann[key]
        per_image[ann["image_id"]].append(record)

    dataset_dicts = [
        {
            "file_name": os.path.join(image_root, img["file_name"]),
            "height": img["height"],
            "width": img["width"],
            "image_id": img["id"],
            "annotations": per_image.get(img["id"], []),
        }
        for img in data["images"]
    ]
    return dataset_dicts, sum(len(v) for v in per_image.values())


def register_coco_instances(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """Register a COCO-format detection dataset under `name` (loaded on first DatasetCatalog.get).

    metadata: extra attributes (e.g. {} or {"thing_classes": [...]}) stored with json_file, image_root
    and evaluator_type="coco", so COCOEvaluator(name) works on it.
    Registering the same name with the same files again does nothing (config files that register their
    dataset are loaded more than once); other files under a taken name are an error.
    """
    if not isinstance(name, str):
        raise TypeError(f"register_coco_instances: name must be a str, got {type(name)}")
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file"), meta.get("image_root")) != (json_file, image_root):
            raise KeyError(
                f"register_coco_instances({name!r}, ...): {name!r} is already registered with "
                f"json_file={meta.get('json_file')!r}, image_root={meta.get('image_root')!r}; "
                "use another name, or DatasetCatalog.remove(name) first"
            )
        # the same files again: a config file that registers its dataset was loaded once more
        meta.set(**metadata)  # (a conflicting value is still an error)
        return
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )


def convert_to_coco_dict(dataset_name: str) -> dict:
    """A COCO instances dict (images, annotations, categories) built from a registered dataset's dicts.

    Category ids are mapped back through metadata `thing_dataset_id_to_contiguous_id` when present.
    Areas are box areas (dataset dicts do not keep masks).
    """
    dataset_dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    classes = metadata.get("thing_classes")
    if classes is None:
        raise ValueError(
            f"dataset {dataset_name!r} has no metadata thing_classes; cannot write COCO categories"
        )
    id_map = metadata.get("thing_dataset_id_to_contiguous_id")
    to_dataset_id = {v: k for k, v in id_map.items()} if id_map else {i: i for i in range(len(classes))}
    categories = [{"id": to_dataset_id[i], "name": n} for i, n in enumerate(classes)]

    images, annotations = [], []
    for index, record in enumerate(dataset_dicts):
        image_id = record.get("image_id", index)
        images.append(
            {
                "id": image_id,
                "width": record["width"],
                "height": record["height"],
                "file_name": record["file_name"],
            }
        )
        for ann in record.get("annotations", []):
            x, y, w, h = BoxMode.convert(
                list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYWH_ABS
            )
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCOeval needs ids > 0
                    "image_id": image_id,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(ann.get("area", w * h)),
                    "iscrowd": int(ann.get("iscrowd", 0)),
                    "category_id": to_dataset_id[ann["category_id"]],
                }
            )
    info = {
        "description": f"converted from dataset {dataset_name!r} by detrex",
        "date_created": str(datetime.date.today()),
    }
    logger.info(
        f"Converted dataset {dataset_name!r} to COCO format: {len(images)} images, {len(annotations)} boxes"
    )
    return {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": categories,
        "licenses": [],
    }


def convert_to_coco_json(dataset_name: str, output_file: str, allow_cached: bool = True) -> str:
    """Write convert_to_coco_dict(dataset_name) to `output_file` (atomically); reuse an existing one if
    `allow_cached`. Returns `output_file`."""
    if allow_cached and os.path.isfile(output_file):
        logger.info(f"Reusing cached COCO-format annotations of {dataset_name!r} at {output_file}")
        return output_file
    coco_dict = convert_to_coco_dict(dataset_name)
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    atomic_write(output_file, lambda f: json.dump(coco_dict, f), mode="w")
    return output_file

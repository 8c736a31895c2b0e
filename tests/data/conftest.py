"""Fixtures for tests/data: a tiny COCO-format dataset on disk and catalog cleanup."""

import json
import uuid

import numpy as np
import pytest
from PIL import Image

from detrex.data import DatasetCatalog, MetadataCatalog


@pytest.fixture
def unique_name():
    """Dataset names unique to one test; removed from both catalogs afterwards."""
    names = []

    def make(prefix="test_ds"):
        names.append(f"{prefix}_{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        DatasetCatalog.pop(name, None)
        MetadataCatalog.pop(name, None)


@pytest.fixture
def tiny_coco(tmp_path):
    """4 images (landscape and portrait) with non-contiguous category ids 2, 5, 9, a crowd box and an
    image without annotations. Returns (json_file, image_root, coco_dict)."""
    image_root = tmp_path / "images"
    image_root.mkdir()
    sizes = [(64, 48), (40, 72), (50, 50), (80, 30)]  # (w, h)
    rng = np.random.default_rng(0)
    images = []
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(image_root / f"{i}.png")
        images.append({"id": 10 + i, "file_name": f"{i}.png", "width": w, "height": h})
    annotations = [
        {
            "id": 1,
            "image_id": 10,
            "category_id": 5,
            "bbox": [4.0, 5.0, 20.0, 10.0],
            "area": 200.0,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 10,
            "category_id": 2,
            "bbox": [30.0, 8.0, 12.5, 30.0],
            "area": 375.0,
            "iscrowd": 0,
        },
        {
            "id": 3,
            "image_id": 11,
            "category_id": 9,
            "bbox": [1.0, 2.0, 30.0, 40.0],
            "area": 1200.0,
            "iscrowd": 0,
        },
        {
            "id": 4,
            "image_id": 11,
            "category_id": 2,
            "bbox": [0.0, 0.0, 40.0, 72.0],
            "area": 2880.0,
            "iscrowd": 1,
        },
        {
            "id": 5,
            "image_id": 13,
            "category_id": 2,
            "bbox": [10.0, 3.0, 20.0, 20.0],
            "area": 400.0,
            "iscrowd": 1,
        },
    ]
    categories = [{"id": 9, "name": "nine"}, {"id": 2, "name": "two"}, {"id": 5, "name": "five"}]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    json_file = tmp_path / "instances.json"
    json_file.write_text(json.dumps(coco))
    return str(json_file), str(image_root), coco

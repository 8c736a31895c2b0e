"""Benchmark: load_coco_json on a COCO-train-sized json (118k images, 860k boxes) takes seconds.

Run: python -m pytest tests/data/test_coco_load_speed.py -m slow -s
"""

import json
import time

import numpy as np
import pytest

from detrex.data import load_coco_json
from detrex.data.datasets import COCO_CATEGORIES

NUM_IMAGES, NUM_ANNOTATIONS = 118_287, 860_001  # COCO 2017 train


def write_coco_train_sized_json(path, polygon_points=0, seed=0):
    """A json with COCO train's counts; `polygon_points` > 0 adds a polygon per box (COCO's file size)."""
    rng = np.random.default_rng(seed)
    images = [
        {"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": 640, "height": 480, "license": 1}
        for i in range(NUM_IMAGES)
    ]
    image_ids = rng.integers(1, NUM_IMAGES + 1, NUM_ANNOTATIONS).tolist()
    cats = rng.choice([c for c, _ in COCO_CATEGORIES], NUM_ANNOTATIONS).tolist()
    boxes = np.round(rng.uniform(0, 300, (NUM_ANNOTATIONS, 4)), 2).tolist()
    polygon = np.round(rng.uniform(0, 400, 2 * polygon_points), 2).tolist()
    annotations = [
        {
            "id": k + 1,
            "image_id": image_ids[k],
            "category_id": cats[k],
            "bbox": boxes[k],
            "area": 100.0,
            "iscrowd": 0,
            "segmentation": [polygon] if polygon_points else [],
        }
        for k in range(NUM_ANNOTATIONS)
    ]
    categories = [{"id": c, "name": n, "supercategory": "x"} for c, n in COCO_CATEGORIES]
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


@pytest.mark.slow
@pytest.mark.parametrize("polygon_points", [0, 24])
def test_load_coco_train_sized_json_in_seconds(tmp_path, polygon_points):
    path = tmp_path / "instances_train_like.json"
    write_coco_train_sized_json(path, polygon_points)
    start = time.perf_counter()
    dicts = load_coco_json(str(path), "images")
    seconds = time.perf_counter() - start
    size_mb = path.stat().st_size / 2**20
    print(
        f"\nload_coco_json: {NUM_IMAGES} images, {NUM_ANNOTATIONS} boxes, {size_mb:.0f} MB json: {seconds:.1f}s"
    )
    assert len(dicts) == NUM_IMAGES
    assert sum(len(d["annotations"]) for d in dicts) == NUM_ANNOTATIONS
    assert seconds < 60  # pycocotools' COCO() + detectron2-style per-image lookups take minutes here

"""Synthetic shapes: a small COCO-format detection dataset drawn with PIL, generated on first use.

Five classes (rectangle, ellipse, triangle, cross, ring), one base colour each, 1-5 non-overlapping
objects per image on a textured, noisy background; images 128-256 px with varying aspect ratios.
Boxes are exact: each is the tight extent of the pixels its shape covers (before JPEG encoding).

    <root>/synthetic_shapes/{train,val}/annotations.json    COCO instances json (category ids 1..5)
    <root>/synthetic_shapes/{train,val}/images/000000.jpg

Registered as `synthetic_shapes_train` (2000 images) and `synthetic_shapes_val` (200 images); the root
follows the COCO rule ($DETREX_DATASETS, else $DETECTRON2_DATASETS, else ./datasets).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image, ImageDraw

from detrex.data.catalog import DatasetCatalog, MetadataCatalog

from .coco import load_coco_json, read_json
from .root import get_datasets_root

__all__ = [
    "SHAPE_CLASSES",
    "SYNTHETIC_SPLITS",
    "generate_synthetic_shapes",
    "ensure_synthetic_shapes",
    "register_synthetic_shapes",
    "synthetic_shapes_meta",
]

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; the atomic rename alone keeps data consistent
    fcntl = None

logger = logging.getLogger(__name__)

SHAPE_CLASSES = ("rectangle", "ellipse", "triangle", "cross", "ring")
_CLASS_COLORS = ((225, 45, 45), (45, 190, 70), (50, 90, 230), (235, 205, 40), (200, 60, 210))
GENERATOR_VERSION = 1  # bump when drawing changes, so stale folders are detected

# name -> (folder under <root>/synthetic_shapes, number of images, seed)
SYNTHETIC_SPLITS = {
    "synthetic_shapes_train": ("train", 2000, 0),
    "synthetic_shapes_val": ("val", 200, 1),
}


def synthetic_shapes_meta() -> dict:
    return {
        "thing_classes": list(SHAPE_CLASSES),
        "thing_dataset_id_to_contiguous_id": {i + 1: i for i in range(len(SHAPE_CLASSES))},
    }


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Low-frequency colour blobs, desaturated towards grey so the class colours stand out."""
    coarse = rng.uniform(60, 190, size=(4, 4, 3))
    grey = coarse.mean(axis=2, keepdims=True)
    coarse = (0.6 * grey + 0.4 * coarse).astype(np.uint8)
    return Image.fromarray(coarse).resize((w, h), Image.BILINEAR)


def _draw_shape(
    draw: ImageDraw.ImageDraw, cls: int, box: tuple[int, int, int, int], rng: np.random.Generator
):
    """Draw class `cls` filling the inclusive pixel box (x0, y0, x1, y1) with value 255."""
    x0, y0, x1, y1 = box
    name = SHAPE_CLASSES[cls]
    if name == "rectangle":
        draw.rectangle(box, fill=255)
    elif name == "ellipse":
        draw.ellipse(box, fill=255)
    elif name == "triangle":
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        corners = [  # apex up, down, left, right
            [(x0, y1), (x1, y1), (xm, y0)],
            [(x0, y0), (x1, y0), (xm, y1)],
            [(x1, y0), (x1, y1), (x0, ym)],
            [(x0, y0), (x0, y1), (x1, ym)],
        ]
        draw.polygon(corners[int(rng.integers(4))], fill=255)
    elif name == "cross":
        tx, ty = max(2, (x1 - x0) // 3), max(2, (y1 - y0) // 3)  # arm thickness: a third of each side
        xm, ym = (x0 + x1) // 2, (y0 + y1) // 2
        draw.rectangle((xm - tx // 2, y0, xm - tx // 2 + tx, y1), fill=255)
        draw.rectangle((x0, ym - ty // 2, x1, ym - ty // 2 + ty), fill=255)
    else:  # ring
        draw.ellipse(box, outline=255, width=max(3, min(x1 - x0, y1 - y0) // 5))


def _overlaps(box, boxes, gap: int = 2) -> bool:
    return any(
        box[0] <= b[2] + gap and b[0] <= box[2] + gap and box[1] <= b[3] + gap and b[1] <= box[3] + gap
        for b in boxes
    )


def _render_image(
    seed: int, index: int, min_size: int, max_size: int, max_objects: int, noise_std: float = 6.0
):
    """One image and its objects [(class, (x0, y0, x1, y1) exclusive pixel box, area)]: depends only on
    (seed, index), so any subset can be regenerated identically. Pixel noise is drawn last: the image
    without noise (noise_std=0) has the same shapes."""
    rng = np.random.default_rng([seed, index])
    w, h = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    image = _background(rng, w, h)
    short = min(w, h)
    objects, placed = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(len(SHAPE_CLASSES)))
        for _try in range(20):  # rejection sampling for a free spot; give up on this object otherwise
            bw, bh = (int(v) for v in rng.uniform(0.18, 0.5, size=2) * short)
            if SHAPE_CLASSES[cls] in ("cross", "ring"):
                bh = bw  # square extents keep thin arms / rims visible
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            box = (x0, y0, x0 + bw - 1, y0 + bh - 1)
            if not _overlaps(box, placed):
                break
        else:
            continue
        mask = Image.new("L", (w, h), 0)
        _draw_shape(ImageDraw.Draw(mask), cls, box, rng)
        tight = mask.getbbox()  # exclusive (x0, y0, x1, y1) of the drawn pixels
        if tight is None:
            continue
        color = np.clip(np.array(_CLASS_COLORS[cls]) + rng.integers(-25, 26, size=3), 0, 255)
        image.paste(tuple(int(c) for c in color), mask=mask)
        placed.append(box)
        objects.append((cls, tight, int(np.count_nonzero(np.asarray(mask)))))
    noise = rng.normal(0.0, noise_std, size=(h, w, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels), objects


def generate_synthetic_shapes(
    output_dir: str,
    num_images: int,
    seed: int = 0,
    min_size: int = 128,
    max_size: int = 256,
    max_objects: int = 5,
) -> str:
    """Write `num_images` images to output_dir/images and their COCO json to output_dir/annotations.json.

    Deterministic in `seed` (same json and image bytes). Returns the json path.
    """
    if min_size < 32 or max_size < min_size:
        raise ValueError(f"need 32 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
    image_dir = os.path.join(output_dir, "images")
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image, objects = _render_image(seed, index, min_size, max_size, max_objects)
        file_name = f"{index:06d}.jpg"
        image.save(os.path.join(image_dir, file_name), quality=92)
        images.append({"id": index + 1, "file_name": file_name, "width": image.width, "height": image.height})
        for cls, (x0, y0, x1, y1), area in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": cls + 1,
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float(area),
                    "iscrowd": 0,
                }
            )
    info = {
        "description": "detrex synthetic shapes",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "num_images": num_images,
        "image_size": [min_size, max_size],
        "max_objects": max_objects,
    }
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPE_CLASSES)]
    coco = {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": categories,
        "licenses": [],
    }
    json_file = os.path.join(output_dir, "annotations.json")
    with open(json_file, "w") as f:
        json.dump(coco, f)
    return json_file


def _check_existing(folder: str, num_images: int, seed: int, min_size: int, max_size: int, max_objects: int):
    info = read_json(os.path.join(folder, "annotations.json")).get("info", {})
    expected = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "num_images": num_images,
        "image_size": [min_size, max_size],
        "max_objects": max_objects,
    }
    found = {k: info.get(k) for k in expected}
    if found != expected:
        raise RuntimeError(
            f"synthetic shapes in {folder} were generated with {found}, expected {expected}. "
            f"Delete the folder to regenerate it."
        )


def ensure_synthetic_shapes(
    folder: str, num_images: int, seed: int, min_size: int = 128, max_size: int = 256, max_objects: int = 5
) -> str:
    """Generate the split into `folder` (see `generate_synthetic_shapes`) unless it is there; returns folder.
    A folder generated with other arguments is an error.

    Process-safe: generation writes into a temporary sibling folder that is renamed into place, so a
    concurrent rank either sees nothing or a complete folder; a lock file lets other ranks wait
    instead of generating the same images again.
    """
    json_file = os.path.join(folder, "annotations.json")
    if os.path.isfile(json_file):
        _check_existing(folder, num_images, seed, min_size, max_size, max_objects)
        return folder
    if os.path.isdir(folder) and os.listdir(folder):
        raise RuntimeError(
            f"{folder} exists but has no annotations.json (interrupted copy?); delete it to regenerate"
        )
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, f".{os.path.basename(folder)}.lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # best effort: the rename below is what guarantees consistency
        try:
            if not os.path.isfile(json_file):
                start = time.perf_counter()
                tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}-", dir=parent)
                try:
                    generate_synthetic_shapes(tmp, num_images, seed, min_size, max_size, max_objects)
                    try:
                        os.rename(tmp, folder)
                    except OSError:  # another process won the race; its copy is identical
                        if not os.path.isfile(json_file):
                            raise
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                logger.info(
                    f"Generated {num_images} synthetic images in {folder} ({time.perf_counter() - start:.1f}s)"
                )
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
    _check_existing(folder, num_images, seed, min_size, max_size, max_objects)
    return folder


def register_synthetic_shapes(
    name: str,
    subdir: str,
    num_images: int,
    seed: int,
    min_size: int = 128,
    max_size: int = 256,
    max_objects: int = 5,
) -> None:
    """Register a synthetic shapes split generated into <root>/synthetic_shapes/<subdir> on first load
    (`generate_synthetic_shapes`' arguments; the root is looked up at each load)."""

    def folder() -> str:
        return os.path.join(get_datasets_root(), "synthetic_shapes", subdir)

    def load() -> list[dict]:
        path = ensure_synthetic_shapes(folder(), num_images, seed, min_size, max_size, max_objects)
        return load_coco_json(os.path.join(path, "annotations.json"), os.path.join(path, "images"), name)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(evaluator_type="coco", **synthetic_shapes_meta()).set_lazy(
        json_file=lambda: os.path.join(folder(), "annotations.json"),
        image_root=lambda: os.path.join(folder(), "images"),
    )


def register_all_synthetic() -> None:
    for name, (subdir, num_images, seed) in SYNTHETIC_SPLITS.items():
        if name not in DatasetCatalog:
            register_synthetic_shapes(name, subdir, num_images, seed)

import json
import multiprocessing as mp
import os

import numpy as np
import pytest
from PIL import Image

from detrex.data import DatasetCatalog, MetadataCatalog
from detrex.data.datasets import (
    SHAPE_CLASSES,
    ensure_synthetic_shapes,
    generate_synthetic_shapes,
    register_synthetic_shapes,
)
from detrex.data.datasets.synthetic import _render_image


def _files(folder):
    return {name: (folder / "images" / name).read_bytes() for name in sorted(os.listdir(folder / "images"))}


def test_same_seed_same_bytes(tmp_path):
    a = generate_synthetic_shapes(str(tmp_path / "a"), 12, seed=3)
    b = generate_synthetic_shapes(str(tmp_path / "b"), 12, seed=3)
    c = generate_synthetic_shapes(str(tmp_path / "c"), 12, seed=4)
    assert open(a).read() == open(b).read()
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert open(a).read() != open(c).read()
    assert _files(tmp_path / "a")["000000.jpg"] != _files(tmp_path / "c")["000000.jpg"]


def test_json_contents(tmp_path):
    data = json.loads(open(generate_synthetic_shapes(str(tmp_path), 40, seed=0)).read())
    assert [c["name"] for c in data["categories"]] == list(SHAPE_CLASSES)
    assert len(data["images"]) == 40
    per_image = np.bincount([a["image_id"] for a in data["annotations"]], minlength=41)[1:]
    assert per_image.min() >= 1 and per_image.max() <= 5
    for img in data["images"]:
        assert 128 <= img["width"] <= 256 and 128 <= img["height"] <= 256
        assert Image.open(tmp_path / "images" / img["file_name"]).size == (img["width"], img["height"])
    sizes = {(i["id"]): min(i["width"], i["height"]) for i in data["images"]}
    for ann in data["annotations"]:  # objects are large: at least ~15% of the short image side
        assert min(ann["bbox"][2:]) >= 0.15 * sizes[ann["image_id"]]
    assert {a["category_id"] for a in data["annotations"]} == {1, 2, 3, 4, 5}


def test_boxes_are_tight_extents_of_drawn_shapes(tmp_path):
    data = json.loads(open(generate_synthetic_shapes(str(tmp_path), 25, seed=5)).read())
    for img in data["images"]:
        # the same image without pixel noise: shapes are saturated, the background is not
        clean, _ = _render_image(5, img["id"] - 1, 128, 256, 5, noise_std=0.0)
        clean = np.asarray(clean).astype(int)
        shape_pixels = (clean.max(axis=2) - clean.min(axis=2)) > 70
        outside = np.ones_like(shape_pixels)
        for ann in (a for a in data["annotations"] if a["image_id"] == img["id"]):
            x, y, w, h = (int(v) for v in ann["bbox"])
            inside = shape_pixels[y : y + h, x : x + w]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
            assert inside.sum() == ann["area"]
            outside[y : y + h, x : x + w] = False
        assert not shape_pixels[outside].any()  # no shape pixel outside every box
        # the written JPEG is that image plus mild noise
        written = np.asarray(Image.open(tmp_path / "images" / img["file_name"]).convert("RGB")).astype(int)
        assert np.abs(written - clean).mean() < 8


def test_registered_split_generated_on_first_use(monkeypatch, tmp_path):
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path))
    meta = MetadataCatalog.get("synthetic_shapes_val")
    assert meta.thing_classes == list(SHAPE_CLASSES)
    assert meta.json_file == str(tmp_path / "synthetic_shapes" / "val" / "annotations.json")
    dicts = DatasetCatalog.get("synthetic_shapes_val")
    assert len(dicts) == 200 and os.path.isfile(meta.json_file)
    assert dicts[0]["file_name"] == str(tmp_path / "synthetic_shapes" / "val" / "images" / "000000.jpg")
    mtime = os.path.getmtime(meta.json_file)
    assert len(DatasetCatalog.get("synthetic_shapes_val")) == 200
    assert os.path.getmtime(meta.json_file) == mtime  # reused, not regenerated
    leftovers = [n for n in os.listdir(tmp_path / "synthetic_shapes") if n.startswith(".val-")]
    assert leftovers == []


def _generate(folder):
    ensure_synthetic_shapes(folder, 30, 7)


def test_concurrent_generation_is_safe(tmp_path):
    folder = str(tmp_path / "synthetic_shapes" / "split")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_generate, args=(folder,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    reference = generate_synthetic_shapes(str(tmp_path / "ref"), 30, seed=7)
    assert open(os.path.join(folder, "annotations.json")).read() == open(reference).read()
    assert sorted(os.listdir(tmp_path / "synthetic_shapes")) == [".split.lock", "split"]


def test_stale_or_partial_folder_is_reported(tmp_path):
    folder = tmp_path / "split"
    generate_synthetic_shapes(str(folder), 3, seed=1)
    with pytest.raises(RuntimeError, match="Delete the folder"):
        ensure_synthetic_shapes(str(folder), 3, seed=2)
    (folder / "annotations.json").unlink()
    with pytest.raises(RuntimeError, match="no annotations.json"):
        ensure_synthetic_shapes(str(folder), 3, seed=1)


def test_split_of_smaller_images_with_fewer_objects(unique_name, monkeypatch, tmp_path):
    """register_synthetic_shapes passes the drawing arguments on; a folder drawn with others is reported."""
    monkeypatch.setenv("DETREX_DATASETS", str(tmp_path))
    name = unique_name("small_shapes")
    register_synthetic_shapes(name, "small", 6, seed=3, max_size=140, max_objects=2)
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 6 and all(128 <= min(d["height"], d["width"]) <= max(d["height"], d["width"]) <= 140
                                   for d in dicts)  # fmt: skip
    assert all(1 <= len(d["annotations"]) <= 2 for d in dicts)
    reference = json.loads(open(generate_synthetic_shapes(str(tmp_path / "ref"), 6, 3, 128, 140, 2)).read())
    assert json.loads(open(MetadataCatalog.get(name).json_file).read()) == reference
    with pytest.raises(RuntimeError, match=r"'image_size': \[128, 140\], 'max_objects': 2}, expected"):
        ensure_synthetic_shapes(str(tmp_path / "synthetic_shapes" / "small"), 6, seed=3)

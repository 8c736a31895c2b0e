import os

import numpy as np
import pytest
from PIL import Image

from detrex.config import LazyConfig, instantiate
from detrex.data import DatasetCatalog
from detrex.utils.visualizer import class_color

TINY = "tests/configs/tiny_conditional_detr.py"


def test_annotations_on_raw_images(tiny_shapes, script, tmp_path, edge_fraction):
    written = script("tools/visualize_data.py").main(
        ["--config-file", TINY, "--source", "annotation", "--output", str(tmp_path), "--num-images", "2"]
    )
    dicts = DatasetCatalog.get("tiny_shapes_train")[:2]
    assert written == [
        str(tmp_path / os.path.basename(d["file_name"]).replace(".jpg", ".png")) for d in dicts
    ]
    for d, path in zip(dicts, written):
        drawn = np.asarray(Image.open(path).convert("RGB"))
        assert drawn.shape == (d["height"], d["width"], 3)
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            assert edge_fraction(drawn, [x, y, x + w, y + h], class_color(a["category_id"]), tol=0) > 0.8


def test_unreadable_image_is_skipped(corrupt_image_dataset, script, tmp_path, capsys):
    """--source annotation on a dataset whose first image cannot be decoded: one warning naming the file,
    and the next images are drawn instead."""
    name, broken = corrupt_image_dataset
    argv = ["--config-file", TINY, "--source", "annotation", "--output", str(tmp_path / "out")]
    written = script("tools/visualize_data.py").main(
        [*argv, "--num-images", "2", f"dataloader.train.dataset.names={name}"]
    )
    dicts = DatasetCatalog.get(name)
    assert dicts[0]["file_name"] == broken
    assert written == [
        str(tmp_path / "out" / os.path.basename(d["file_name"]).replace(".jpg", ".png")) for d in dicts[1:3]
    ]
    assert all(os.path.isfile(p) for p in written)
    captured = capsys.readouterr()
    (warning,) = [line for line in captured.err.splitlines() if "WARNING" in line]
    assert warning.startswith(
        f"WARNING: skipped image_id {dicts[0]['image_id']}: cannot decode image {broken}"
    )
    assert "skipped 1 image(s) that could not be read" in captured.out


def test_loader_output_after_augmentation(tiny_shapes, script, tmp_path, edge_fraction):
    opts = ["+dataloader.train.seed=7"]
    written = script("tools/visualize_data.py").main(
        [
            "--config-file",
            TINY,
            "--source",
            "dataloader",
            "--output",
            str(tmp_path),
            "--num-images",
            "3",
            *opts,
        ]
    )
    assert len(written) == 3 and all(os.path.isfile(p) for p in written)
    # the same seed gives the same augmented batches: their boxes are the ones drawn
    cfg = LazyConfig.apply_overrides(LazyConfig.load(TINY), opts)
    loader = iter(instantiate(cfg.dataloader.train))
    samples = next(loader) + next(loader)
    for x, path in zip(samples, written):
        assert os.path.basename(path).startswith(f"{x['image_id']}_")
        drawn = np.asarray(Image.open(path))
        assert drawn.shape == (*x["image"].shape[1:], 3)  # the augmented size, not the original one
        inst = x["instances"]
        assert len(inst) > 0
        for box, cls in zip(inst.gt_boxes.tensor.tolist(), inst.gt_classes.tolist()):
            h, w = drawn.shape[:2]
            box = [min(box[0], w - 1), min(box[1], h - 1), min(box[2], w - 1), min(box[3], h - 1)]
            assert edge_fraction(drawn, box, class_color(cls), tol=0) > 0.8


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--config-file", TINY, "--source", "model", "--output", "x"], "invalid choice: 'model'"),
        (["--config-file", TINY, "--source", "annotation"], "--output"),
        (["--config-file", TINY, "--source", "annotation", "--output", "x", "--num-images", "0"], ">= 1"),
    ],
)
def test_bad_arguments(argv, message, script, capsys):
    with pytest.raises(SystemExit) as e:
        script("tools/visualize_data.py").main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err

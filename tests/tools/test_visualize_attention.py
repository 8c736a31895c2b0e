"""tools/visualize_attention.py on the tiny test models of both families: the detections and maps it draws,
the pictures it writes, and one-line errors for bad input."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from detrex.config import LazyConfig
from detrex.data import read_image
from detrex.engine.predictor import DefaultPredictor

TOOL = "tools/visualize_attention.py"
TINY_CONDITIONAL = "tests/configs/tiny_conditional_detr.py"
TINY_ANCHOR = "tests/configs/tiny_anchor_detr.py"


@pytest.fixture
def images(tiny_shapes, tmp_path):
    """The two tiny validation images copied as a.png and b.png, in one folder."""
    src = os.path.join(tiny_shapes["tiny_shapes_val"], "images")
    folder = tmp_path / "in"
    folder.mkdir()
    for file, name in zip(sorted(os.listdir(src)), ["a.png", "b.png"]):
        Image.open(os.path.join(src, file)).save(folder / name)
    return folder


def _png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(path).convert("RGB"))


def test_conditional_detr_draws_the_predictors_detection_and_three_maps(
    images, one_box_checkpoint, script, tmp_path, capsys
):
    path, overrides = one_box_checkpoint
    opts = [*overrides, f"train.init_checkpoint={path}"]
    tool = script(TOOL)
    predictor = DefaultPredictor(LazyConfig.apply_overrides(LazyConfig.load(TINY_CONDITIONAL), opts))
    image = read_image(str(images / "a.png"))
    result = tool.attend(predictor, image, layer=-1, topk=3, threshold=0.5)
    expected = predictor(image)["instances"]  # one query: the same single detection
    assert result["queries"].tolist() == [0] and result["classes"].tolist() == [2]
    np.testing.assert_allclose(result["scores"], expected.scores.numpy(), rtol=1e-6)
    np.testing.assert_allclose(result["boxes"], expected.pred_boxes.tensor.numpy(), rtol=1e-5, atol=1e-3)
    assert result["layer"] == 2 and result["num_layers"] == 3 and result["anchors"] is None
    assert list(result["maps"]) == ["spatial", "content", "full"]
    for weights in result["maps"].values():
        assert weights.shape == (1, *image.shape[:2]) and weights.min() >= 0 and weights.max() > 0

    rc = tool.main(["--config-file", TINY_CONDITIONAL, "--input", str(images), "--output",
                    str(tmp_path / "out"), "--layer", "0", *opts])  # fmt: skip
    assert rc == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "b.png"]
    picture = _png(tmp_path / "out" / "a.png")
    assert picture.shape[1] > 2 * picture.shape[0]  # one row of three panels
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 1000  # colour maps drawn, not a blank figure
    assert "a.png: 1 detections" in capsys.readouterr().out


def test_anchor_detr_draws_row_column_product_and_the_anchor_points(images, script, tmp_path, capsys):
    opts = ["train.init_checkpoint="]  # random weights: every score is about 0.01
    tool = script(TOOL)
    predictor = DefaultPredictor(LazyConfig.apply_overrides(LazyConfig.load(TINY_ANCHOR), opts))
    image = read_image(str(images / "b.png"))
    h, w = image.shape[:2]
    result = tool.attend(predictor, image, layer=0, topk=3, threshold=0.0)
    assert len(result["queries"]) == 3 and list(result["maps"]) == ["row", "column", "product"]
    row, column, product = (result["maps"][k] for k in ("row", "column", "product"))
    assert row.shape == column.shape == product.shape == (3, h, w)
    np.testing.assert_allclose(row, np.broadcast_to(row[:, :1], row.shape), rtol=1e-6)  # equal down columns
    np.testing.assert_allclose(
        column, np.broadcast_to(column[:, :, :1], column.shape), rtol=1e-6
    )  # along rows
    transformer = predictor.model.transformer
    points = transformer.position.weight.detach().numpy() * np.array([w, h])  # 10 learned anchor points
    np.testing.assert_allclose(result["anchors"], np.concatenate([points] * 3), rtol=1e-6)  # 3 patterns
    assert result["num_patterns"] == 3 and result["points_kind"] == "learned"

    rc = tool.main(["--config-file", TINY_ANCHOR, "--input", str(images / "*.png"), "--output",
                    str(tmp_path / "out"), "--topk", "2", "--confidence-threshold", "0", "--anchors", *opts])  # fmt: skip
    assert rc == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "a_anchors.png", "b.png", "b_anchors.png"]
    grid, anchors = _png(tmp_path / "out" / "b.png"), _png(tmp_path / "out" / "b_anchors.png")
    assert grid.shape[0] > 1.2 * grid.shape[1] * h / (3 * w)  # two rows of three panels
    assert anchors.shape[1] > anchors.shape[0]  # unit square and image side by side
    assert "b.png: 2 detections" in capsys.readouterr().out
    one = tmp_path / "single" / "picture.png"  # one input and a .png output: that file
    argv = [
        "--config-file",
        TINY_ANCHOR,
        "--input",
        str(images / "a.png"),
        "--output",
        str(one),
        "--anchors",
        *opts,
    ]
    assert tool.main(argv) == 0
    assert sorted(os.listdir(one.parent)) == ["picture.png", "picture_anchors.png"]
    assert f"results written to {one}" in capsys.readouterr().out


def test_unreadable_image_is_one_warning_and_the_others_are_drawn(images, script, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"not an image")
    argv = ["--config-file", TINY_ANCHOR, "--input", str(images / "a.png"), str(images / "broken.png"),
            "--output", str(tmp_path / "out")]  # fmt: skip
    assert script(TOOL).main(argv) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png"]
    err = capsys.readouterr().err
    (warning,) = [line for line in err.splitlines() if "WARNING" in line]
    assert warning.startswith(f"WARNING: skipped {images / 'broken.png'}: ") and "Traceback" not in err
    argv = [
        "--config-file",
        TINY_ANCHOR,
        "--input",
        str(images / "broken.png"),
        "--output",
        str(tmp_path / "o"),
    ]
    assert script(TOOL).main(argv) == 1
    assert "none of the 1 input image(s) could be read" in capsys.readouterr().err


def test_checkpoint_of_the_other_family_is_the_checkpointers_error(
    images, one_box_checkpoint, script, capsys
):
    path, _ = one_box_checkpoint  # a Conditional-DETR checkpoint
    argv = ["--config-file", TINY_ANCHOR, "--input", str(images), f"train.init_checkpoint={path}"]
    assert script(TOOL).main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: train.init_checkpoint: ") and "Traceback" not in err
    assert "Conditional-DETR" in err or "conditional" in err.lower()


@pytest.mark.parametrize(
    "config, extra, message",
    [
        (TINY_CONDITIONAL, ["--anchors"], "--anchors: ConditionalDETR has no anchor points"),
        (TINY_ANCHOR, ["--layer", "3"], "--layer 3: the decoder has 3 layers"),
        (TINY_ANCHOR, ["--topk", "0"], "--topk must be at least 1"),
        (TINY_ANCHOR, ["--confidence-threshold", "1.5"], "must be in [0, 1]"),
        (TINY_ANCHOR, ["--dpi", "5"], "--dpi must be at least 10"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(config, extra, message, images, script, capsys):
    with pytest.raises(SystemExit) as e:
        script(TOOL).main(["--config-file", config, "--input", str(images / "a.png"), *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error_naming_the_fix(images, script, capsys):
    with pytest.raises(SystemExit) as e:
        script(TOOL).main(["--config-file", TINY_ANCHOR, "--input", str(images), "train.device=cuda"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "CUDA is not available" in err and "train.device=cpu" in err


def test_missing_input_is_a_usage_error(script, capsys):
    with pytest.raises(SystemExit) as e:
        script(TOOL).main(["--config-file", TINY_ANCHOR, "--input", "no/such/*.jpg"])
    assert e.value.code == 2 and "no such file, and no images match it" in capsys.readouterr().err

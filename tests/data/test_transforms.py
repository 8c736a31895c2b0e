import numpy as np
import pytest

import detrex.data.transforms as T
from detrex.data.detection_utils import BoxMode, transform_instance_annotations


def _pixel_box(image: np.ndarray):
    """Tight XYXY box (exclusive ends) of the bright pixels, or None."""
    ys, xs = np.nonzero(image[:, :, 0] > 127)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("seed", range(12))
def test_flip_resize_crop_keep_box_on_drawn_rectangle(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(60, 140)), int(rng.integers(60, 140))
    x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
    x1, y1 = int(rng.integers(x0 + 8, w)), int(rng.integers(y0 + 8, h))
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[y0:y1, x0:x1] = 255
    augs = [
        T.RandomFlip(prob=0.5),
        T.RandomFlip(prob=0.5, horizontal=False, vertical=True),
        T.ResizeShortestEdge((90, 110, 170), max_size=220, sample_style="choice"),
        T.RandomCrop("absolute_range", (50, 120)),
        T.ResizeShortestEdge((64, 128), max_size=200, sample_style="range"),
    ]
    np.random.seed(seed)
    aug_input = T.AugInput(image, boxes=np.array([[x0, y0, x1, y1]], dtype=np.float64))
    transforms = T.AugmentationList(augs)(aug_input)
    out = aug_input.image
    new_h, new_w = out.shape[:2]
    ann = transform_instance_annotations(
        {"bbox": [x0, y0, x1 - x0, y1 - y0], "bbox_mode": BoxMode.XYWH_ABS}, transforms, (new_h, new_w)
    )
    assert ann["bbox_mode"] == BoxMode.XYXY_ABS
    box = ann["bbox"]
    assert (box >= 0).all() and box[2] <= new_w and box[3] <= new_h
    drawn = _pixel_box(out)
    if drawn is None:  # the crop removed the rectangle: its box must be empty (it gets dropped)
        assert box[2] - box[0] < 1.5 or box[3] - box[1] < 1.5
    else:
        np.testing.assert_allclose(box, drawn, atol=1.5)
    # AugInput boxes go through the same transforms (before clipping)
    np.testing.assert_allclose(np.clip(aug_input.boxes[0], 0, [new_w, new_h] * 2), box, atol=1e-9)


def test_resize_shortest_edge_output_shape():
    assert T.ResizeShortestEdge.get_output_shape(480, 640, 800, 1333) == (800, 1067)
    assert T.ResizeShortestEdge.get_output_shape(640, 480, 800, 1333) == (1067, 800)
    assert T.ResizeShortestEdge.get_output_shape(100, 1000, 800, 1333) == (133, 1333)  # capped by max_size
    aug = T.ResizeShortestEdge(32, max_size=1000)
    tfm = aug.get_transform(np.zeros((20, 40, 3), np.uint8))
    assert isinstance(tfm, T.ResizeTransform) and (tfm.new_h, tfm.new_w) == (32, 64)
    with pytest.raises(ValueError, match="sample_style"):
        T.ResizeShortestEdge((1, 2, 3), sample_style="range")
    with pytest.raises(ValueError, match="sample_style"):
        T.ResizeShortestEdge(10, sample_style="sometimes")


def test_resize_transform_uint8_and_float():
    image = np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3)
    tfm = T.ResizeTransform(12, 10, 24, 20)
    up = tfm.apply_image(image)
    assert up.shape == (24, 20, 3) and up.dtype == np.uint8
    up_f = tfm.apply_image(image.astype(np.float32))
    assert up_f.shape == (24, 20, 3) and up_f.dtype == np.float32
    np.testing.assert_allclose(tfm.apply_box(np.array([[1.0, 2.0, 5.0, 6.0]])), [[2.0, 4.0, 10.0, 12.0]])
    np.testing.assert_allclose(
        tfm.inverse().apply_box(np.array([[2.0, 4.0, 10.0, 12.0]])), [[1.0, 2.0, 5.0, 6.0]]
    )
    with pytest.raises(ValueError, match="expects a 12x10"):
        tfm.apply_image(np.zeros((5, 5, 3), np.uint8))


@pytest.mark.parametrize(
    "crop_type, crop_size, image_hw, low, high",
    [
        ("relative", (0.5, 0.25), (100, 200), (50, 50), (50, 50)),
        ("absolute", (30, 500), (100, 200), (30, 200), (30, 200)),
        ("absolute_range", (384, 600), (300, 700), (300, 384), (300, 600)),
        ("relative_range", (0.5, 0.8), (100, 200), (50, 160), (100, 200)),
    ],
)
def test_random_crop_sizes(crop_type, crop_size, image_hw, low, high):
    aug = T.RandomCrop(crop_type, crop_size)
    np.random.seed(0)
    for _ in range(50):
        ch, cw = aug.get_crop_size(image_hw)
        assert low[0] <= ch <= high[0] and low[1] <= cw <= high[1]
        tfm = aug.get_transform(np.zeros((*image_hw, 3), np.uint8))
        assert 0 <= tfm.x0 <= image_hw[1] - tfm.w and 0 <= tfm.y0 <= image_hw[0] - tfm.h


def test_random_crop_rejects_bad_arguments():
    with pytest.raises(ValueError, match="crop_type"):
        T.RandomCrop("absolute_ranges", (1, 2))
    with pytest.raises(ValueError, match=r"\(min, max\)"):
        T.RandomCrop("absolute_range", (600, 384))
    with pytest.raises(ValueError, match="fractions"):
        T.RandomCrop("relative", (1.5, 0.5))


def test_random_flip():
    image = np.arange(2 * 3 * 1, dtype=np.uint8).reshape(2, 3, 1)
    assert isinstance(T.RandomFlip(prob=0.0).get_transform(image), T.NoOpTransform)
    h_flip = T.RandomFlip(prob=1.0).get_transform(image)
    np.testing.assert_array_equal(h_flip.apply_image(image), image[:, ::-1])
    np.testing.assert_allclose(h_flip.apply_box(np.array([[0.0, 0.0, 1.0, 2.0]])), [[2.0, 0.0, 3.0, 2.0]])
    v_flip = T.RandomFlip(prob=1.0, horizontal=False, vertical=True).get_transform(image)
    np.testing.assert_array_equal(v_flip.apply_image(image), image[::-1])
    with pytest.raises(ValueError, match="exactly one"):
        T.RandomFlip(horizontal=True, vertical=True)


def test_apply_augmentations_and_repr():
    image = np.zeros((10, 20, 3), np.uint8)
    out, transforms = T.apply_augmentations([T.ResizeShortestEdge(20), T.HFlipTransform(40)], image)
    assert out.shape == (20, 40, 3) and isinstance(transforms, T.TransformList)
    assert repr(T.ResizeShortestEdge((480, 800), max_size=1333)) == (
        "ResizeShortestEdge(short_edge_length=(480, 800), max_size=1333)"
    )
    with pytest.raises(TypeError, match="Augmentation or a Transform"):
        T.AugmentationList(["flip"])

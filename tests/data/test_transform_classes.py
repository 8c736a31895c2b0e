"""Deterministic transforms with detectron2's names: resize, extent, scale, colour; ResizeShortestEdge in TorchScript."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

import detrex.data.transforms as T


@pytest.mark.parametrize("shape", [(100, 100), (100, 100, 1), (100, 100, 3)])
def test_resize_and_extent_keep_the_channel_layout(shape):
    image = np.random.default_rng(0).integers(0, 255, size=shape, dtype=np.uint8)
    out = T.ResizeTransform(100, 100, 200, 150).apply_image(image)
    assert out.shape == (200, 150) + shape[2:] and out.dtype == np.uint8
    out = T.ExtentTransform((20, 20, 80, 80), (200, 200)).apply_image(image)
    assert out.shape == (200, 200) + shape[2:]


def test_resize_transform_default_interp_is_bilinear():
    assert T.ResizeTransform(4, 4, 8, 8).interp == Image.BILINEAR
    assert T.ResizeTransform(4, 4, 8, 8, Image.NEAREST).inverse().interp == Image.NEAREST


def test_extent_transform_image_and_coordinates():
    image = np.zeros((40, 40), np.uint8)
    image[10:20, 10:20] = 255
    tfm = T.ExtentTransform((10, 10, 30, 30), (40, 40), interp=Image.NEAREST)
    out = tfm.apply_image(image)
    assert (out[:20, :20] == 255).all() and out[20:].max() == 0 and out[:, 20:].max() == 0  # 2x zoom
    coords = np.array([[10.0, 10.0], [20.0, 15.0], [30.0, 30.0]])
    np.testing.assert_allclose(tfm.apply_coords(coords), [[0.0, 0.0], [20.0, 10.0], [40.0, 40.0]])
    np.testing.assert_allclose(tfm.apply_box(np.array([[10.0, 10.0, 20.0, 20.0]])), [[0.0, 0.0, 20.0, 20.0]])
    outside = T.ExtentTransform((-10, -10, 30, 30), (40, 40), interp=Image.NEAREST, fill=9).apply_image(image)
    assert (outside[:10, :10] == 9).all() and (outside[20:30, 20:30] == 255).all()  # 1:1, shifted by 10
    seg = np.zeros((40, 40), np.uint8)
    seg[10:20, 10:20] = 3
    assert set(np.unique(tfm.apply_segmentation(seg)).tolist()) == {0, 3}  # nearest: no blended labels


def test_color_transforms_change_only_colours():
    image = (np.random.default_rng(1).random((100, 100, 3)) * 255).astype("uint8")
    identity = T.ColorTransform(lambda img: img)
    assert np.array_equal(identity.apply_image(image), image)
    inverted = T.ColorTransform(lambda img: 255 - img)
    np.testing.assert_array_equal(inverted.apply_image(image), 255 - image)
    boxes = np.array([[1.0, 2.0, 30.0, 40.0]])
    np.testing.assert_array_equal(inverted.apply_box(boxes.copy()), boxes)
    assert isinstance(inverted.inverse(), T.NoOpTransform)
    solarize = T.PILColorTransform(lambda img: ImageOps.solarize(img, 100))
    expected = np.asarray(ImageOps.solarize(Image.fromarray(image), 100))
    np.testing.assert_array_equal(solarize.apply_image(image), expected)
    with pytest.raises(ValueError, match="callable"):
        T.ColorTransform(3)
    with pytest.raises(ValueError, match="callable"):
        T.PILColorTransform("solarize")


def test_scale_transform_is_fvcores():
    tfm = T.ScaleTransform(300, 400, 600, 200, "bilinear")
    assert tfm.apply_image(np.zeros((300, 400, 3), np.float32)).shape == (600, 200, 3)
    np.testing.assert_allclose(
        tfm.apply_box(np.array([[10.0, 20.0, 40.0, 60.0]])), [[5.0, 40.0, 20.0, 120.0]]
    )
    np.testing.assert_allclose(tfm.apply_coords(np.array([[100.0, 100.0]])), [[50.0, 200.0]])
    assert T.TransformList([T.HFlipTransform(400), tfm]).apply_box(
        np.array([[0.0, 0.0, 40.0, 60.0]])
    ).tolist() == [[180.0, 0.0, 200.0, 120.0]]


@pytest.mark.skipif(
    not hasattr(torch.jit, "script"),
    reason="this torch release removed TorchScript (torch.jit.script), which detectron2's contract uses",
)
@pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")
def test_resize_shortest_edge_output_shape_scripts():
    def resize(image):
        new_h, new_w = T.ResizeShortestEdge.get_output_shape(image.shape[-2], image.shape[-1], 80, 133)
        return F.interpolate(image.unsqueeze(0), size=(new_h, new_w))

    scripted = torch.jit.script(resize)
    for shape, expected in [((3, 10, 10), (80, 80)), ((3, 8, 100), (11, 133)), ((3, 120, 60), (133, 67))]:
        image = torch.randn(shape)
        out = scripted(image)
        assert out.shape[-2:] == expected
        torch.testing.assert_close(out, resize(image))

"""Augmentations with detectron2's names: RandomApply, Resize, ResizeScale, FixedSizeCrop, inputs by name."""

from unittest import mock

import numpy as np
import pytest

import detrex.data.transforms as T


def test_random_apply_probability_checks():
    for prob in (0.0, 0.5, 1.0):
        assert T.RandomApply(T.NoOpTransform(), prob=prob).prob == prob
    for prob in (-0.01, 1.01):
        with pytest.raises(ValueError, match=r"prob must be in \[0, 1\]"):
            T.RandomApply(T.NoOpTransform(), prob=prob)
        with pytest.raises(AssertionError):  # what detectron2 raises, whatever the wrapped object
            T.RandomApply(None, prob=prob)
    with pytest.raises(TypeError, match="Augmentation or a Transform"):
        T.RandomApply(None, prob=0.5)


def test_random_apply_draws_then_delegates():
    aug = mock.MagicMock(name="aug", spec=T.Augmentation)
    image = mock.MagicMock(name="image")
    random_apply = T.RandomApply(aug, prob=0.001)
    with mock.patch.object(random_apply, "_rand_range", return_value=0.0001):
        tfm = random_apply.get_transform(image)
    aug.get_transform.assert_called_once_with(image)
    assert tfm is aug.get_transform.return_value

    with mock.patch.object(random_apply, "_rand_range", return_value=0.9):
        assert isinstance(random_apply.get_transform(image), T.NoOpTransform)
    aug.get_transform.assert_called_once()  # not again

    transform = mock.MagicMock(name="tfm", spec=T.Transform)
    wrapped = T.RandomApply(transform, prob=0.001)
    with mock.patch.object(wrapped, "_rand_range", return_value=0.0001):
        assert wrapped.get_transform(image) is transform


def test_random_apply_in_a_list_applies_or_skips():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    flip = T.RandomApply(T.HFlipTransform(3), prob=1.0)
    aug_input = T.AugInput(image, boxes=np.array([[0.0, 0.0, 1.0, 2.0]]))
    tfms = T.AugmentationList([flip])(aug_input)
    assert isinstance(tfms[0], T.HFlipTransform)
    np.testing.assert_array_equal(aug_input.image, image[:, ::-1])
    np.testing.assert_array_equal(aug_input.boxes, [[2.0, 0.0, 3.0, 2.0]])
    never = T.RandomApply(T.RandomFlip(prob=1.0), prob=0.0)
    aug_input = T.AugInput(image)
    assert isinstance(never(aug_input), T.NoOpTransform) and aug_input.image is image


def test_resize_to_a_fixed_shape():
    image = np.zeros((40, 30, 3), np.uint8)
    tfm = T.Resize(20).get_transform(image)
    assert (tfm.h, tfm.w, tfm.new_h, tfm.new_w) == (40, 30, 20, 20)
    out, tfms = T.apply_augmentations([T.Resize((10, 60))], image)
    assert out.shape == (10, 60, 3)
    np.testing.assert_allclose(tfms.apply_box(np.array([[3.0, 4.0, 15.0, 20.0]])), [[6.0, 1.0, 30.0, 5.0]])
    assert str(T.Resize((10, 60))) == "Resize(shape=(10, 60))"


def test_resize_scale_fixed_size_crop_and_flip_follow_the_draws():
    """Scale jitter + fixed-size crop + flip: every number recomputed from the three random draws."""
    np.random.seed(125)
    augs = [T.ResizeScale(0.2, 2.0, 1100, 1000), T.FixedSizeCrop((1100, 1000)), T.RandomFlip()]
    image, tfms = T.apply_augmentations(augs, np.random.rand(900, 800))
    assert image.shape == (1100, 1000)

    np.random.seed(125)
    np.random.rand(900, 800)
    scale, crop_draw, flip_draw = np.random.uniform(0.2, 2.0), np.random.uniform(), np.random.uniform()
    factor = min(1100 * scale / 900, 1000 * scale / 800)
    new_h, new_w = round(900 * factor), round(800 * factor)
    off_y, off_x = round(max(new_h - 1100, 0) * crop_draw), round(max(new_w - 1000, 0) * crop_draw)
    boxes = np.array([[91, 46, 144, 111], [523, 251, 614, 295]], dtype=np.float64)
    expected = boxes * np.tile([new_w / 800, new_h / 900], 2) - np.tile([off_x, off_y], 2)
    if flip_draw < 0.5:
        expected = np.stack([1000 - expected[:, 2], expected[:, 1], 1000 - expected[:, 0], expected[:, 3]], 1)
    np.testing.assert_allclose(tfms.apply_box(boxes), expected, rtol=1e-12)


def test_fixed_size_crop_pads_a_small_image():
    image = np.full((30, 50, 3), 7, np.uint8)
    np.random.seed(0)
    tfm = T.FixedSizeCrop((40, 40), pad_value=128).get_transform(image)
    out = tfm.apply_image(image)
    assert out.shape == (40, 40, 3)
    assert (out[:30] == 7).all() and (out[30:] == 128).all()  # 40 of 50 columns kept, 10 rows padded
    crop = tfm.transforms[0]
    assert crop.y0 == 0 and 0 <= crop.x0 <= 10 and (crop.w, crop.h) == (40, 40)
    np.testing.assert_allclose(
        tfm.apply_box(np.array([[20.0, 5.0, 30.0, 25.0]])), [[20.0 - crop.x0, 5, 30.0 - crop.x0, 25]]
    )
    assert T.FixedSizeCrop((40, 40), pad=False).get_transform(image).apply_image(image).shape == (30, 40, 3)


def test_get_transform_takes_inputs_by_name():
    class HalveWithSegmentation(T.Augmentation):
        def get_transform(self, image, sem_seg):
            assert sem_seg.shape == image.shape[:2]
            return T.ResizeTransform(image.shape[0], image.shape[1], image.shape[0] // 2, image.shape[1] // 2)

    class FlipAfterwards(T.Augmentation):
        def get_transform(self, image):
            assert image.shape[:2] == (50, 50)  # the previous augmentation ran first
            return T.HFlipTransform(image.shape[1])

    sem_seg = np.zeros((100, 100), np.uint8)
    sem_seg[:, :10] = 1
    aug_input = T.AugInput(np.random.rand(100, 100).astype("float32"), sem_seg=sem_seg)
    tfms = aug_input.apply_augmentations([HalveWithSegmentation(), FlipAfterwards()])
    assert isinstance(tfms[0], T.ResizeTransform) and isinstance(tfms[1], T.HFlipTransform)
    assert aug_input.image.shape == (50, 50) and aug_input.sem_seg.shape == (50, 50)
    assert (aug_input.sem_seg[:, 45:] == 1).all() and (
        aug_input.sem_seg[:, :45] == 0
    ).all()  # nearest, flipped

    class NeedsDepth(T.Augmentation):
        def get_transform(self, image, depth):
            return T.NoOpTransform()

    with pytest.raises(AttributeError, match="needs 'depth'"):
        aug_input.apply_augmentations([NeedsDepth()])

    class Vague(T.Augmentation):
        def get_transform(self, image, *rest):
            return T.NoOpTransform()

    with pytest.raises(TypeError, match=r"\*args/\*\*kwargs"):
        aug_input.apply_augmentations([Vague()])


def test_repr_lists_arguments_that_differ_from_the_defaults():
    assert str(T.RandomFlip()) == "RandomFlip()"
    assert str(T.RandomFlip(prob=0.25)) == "RandomFlip(prob=0.25)"
    flip = T.RandomFlip(prob=0.25)
    assert (
        str(T.AugmentationList([flip, T.RandomFlip()]))
        == "AugmentationList[RandomFlip(prob=0.25), RandomFlip()]"
    )
    assert (
        str(T.RandomCrop("relative", (0.5, 0.5))) == "RandomCrop(crop_type='relative', crop_size=(0.5, 0.5))"
    )
    assert T.TransformGen is T.Augmentation and T.StandardAugInput is T.AugInput

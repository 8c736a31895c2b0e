"""Augmentations (detectron2's names and semantics): the ones DETR-style training uses (random flip,
shortest-edge resize, random crop) and fixed-size resize, scale jitter, fixed-size crop, random apply."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .augmentation import Augmentation, as_augmentation
from .transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "FixedSizeCrop",
    "RandomApply",
    "RandomCrop",
    "RandomFlip",
    "Resize",
    "ResizeScale",
    "ResizeShortestEdge",
]


class ProbabilityError(ValueError, AssertionError):
    """A probability outside [0, 1]. Also an AssertionError, which detectron2 raises for it."""


class RandomApply(Augmentation):
    """Apply `tfm_or_aug` (a Transform or an Augmentation) with probability `prob`, else do nothing."""

    def __init__(self, tfm_or_aug: Transform | Augmentation, prob: float = 0.5):
        super().__init__()
        if not 0.0 <= prob <= 1.0:
            raise ProbabilityError(f"RandomApply: prob must be in [0, 1], got {prob}")
        self.aug = as_augmentation(tfm_or_aug)
        self.prob = prob

    def get_transform(self, *args) -> Transform:
        if self._rand_range() < self.prob:
            return self.aug.get_transform(*args)
        return NoOpTransform()

    def __call__(self, aug_input) -> Transform:
        if self._rand_range() < self.prob:
            return self.aug(aug_input)  # the wrapped augmentation picks the inputs it needs
        return NoOpTransform()


class RandomFlip(Augmentation):
    """Flip the image horizontally (or vertically) with probability `prob`."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False):
        super().__init__()
        if horizontal == vertical:
            raise ValueError("RandomFlip: set exactly one of horizontal=True or vertical=True")
        if not 0.0 <= prob <= 1.0:
            raise ProbabilityError(f"RandomFlip: prob must be in [0, 1], got {prob}")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        return HFlipTransform(w) if self.horizontal else VFlipTransform(h)


class Resize(Augmentation):
    """Resize to a fixed `shape` = (h, w) (an int means square), ignoring the aspect ratio."""

    def __init__(self, shape: int | Sequence[int], interp: int = Image.BILINEAR):
        super().__init__()
        shape = (shape, shape) if isinstance(shape, int) else tuple(shape)
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        return ResizeTransform(image.shape[0], image.shape[1], self.shape[0], self.shape[1], self.interp)


class ResizeShortestEdge(Augmentation):
    """Resize keeping the aspect ratio: the short edge to a sampled length, the long edge at most `max_size`.

    short_edge_length: with sample_style="range", a (min, max) interval sampled uniformly (integers);
        with "choice", a list of lengths to choose from. An int means that one length.
    max_size: the longest the long edge may get; interp: a PIL filter.
    `get_output_shape` scripts with TorchScript (the class's other methods are marked unused for it).
    """

    @torch.jit.unused
    def __init__(self, short_edge_length, max_size=sys.maxsize, sample_style="range", interp=Image.BILINEAR):
        # no annotations on the two unused methods: TorchScript would compile the types they name
        super().__init__()
        if sample_style not in ("range", "choice"):
            raise ValueError(
                f"ResizeShortestEdge: sample_style must be 'range' or 'choice', got {sample_style!r}"
            )
        if isinstance(short_edge_length, int):
            short_edge_length = (short_edge_length, short_edge_length)
        short_edge_length = tuple(int(s) for s in short_edge_length)
        if sample_style == "range" and len(short_edge_length) != 2:
            raise ValueError(
                f"ResizeShortestEdge: sample_style='range' takes (min, max), got {short_edge_length}; "
                "use sample_style='choice' for a list of lengths"
            )
        self.is_range = sample_style == "range"
        self._init(locals())
        self.short_edge_length = short_edge_length

    @torch.jit.unused
    def get_transform(self, image):
        h, w = image.shape[:2]
        if self.is_range:
            size = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            size = np.random.choice(self.short_edge_length)
        if size == 0:
            return NoOpTransform()
        new_h, new_w = ResizeShortestEdge.get_output_shape(h, w, int(size), self.max_size)
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    @staticmethod
    def get_output_shape(oldh: int, oldw: int, short_edge_length: int, max_size: int) -> tuple[int, int]:
        """(new_h, new_w): the short side `short_edge_length`, the long side scaled alike, and both shrunk
        if the long side would exceed `max_size`; rounded to the nearest integer. Scripts with TorchScript."""
        size = short_edge_length * 1.0
        scale = size / min(oldh, oldw)
        if oldh < oldw:
            newh, neww = size, scale * oldw
        else:
            newh, neww = scale * oldh, size
        if max(newh, neww) > max_size:
            shrink = max_size * 1.0 / max(newh, neww)
            newh = newh * shrink
            neww = neww * shrink
        return int(newh + 0.5), int(neww + 0.5)


class ResizeScale(Augmentation):
    """Scale jitter (the resize half of large-scale jittering): draw s in [min_scale, max_scale] and resize,
    keeping the aspect ratio, to fit inside (s * target_height, s * target_width)."""

    def __init__(
        self,
        min_scale: float,
        max_scale: float,
        target_height: int,
        target_width: int,
        interp: int = Image.BILINEAR,
    ):
        super().__init__()
        self._init(locals())

    def _get_resize(self, image: np.ndarray, scale: float) -> Transform:
        h, w = image.shape[:2]
        target = np.multiply((self.target_height, self.target_width), scale)
        factor = np.minimum(target[0] / h, target[1] / w)
        new_h, new_w = np.round(np.multiply((h, w), factor)).astype(int)
        return ResizeTransform(h, w, int(new_h), int(new_w), self.interp)

    def get_transform(self, image: np.ndarray) -> Transform:
        return self._get_resize(image, np.random.uniform(self.min_scale, self.max_scale))


class FixedSizeCrop(Augmentation):
    """Crop a random `crop_size` = (h, w) window out of a larger image; a smaller image (in either side) is
    kept whole on that side and, with `pad`, padded at the bottom/right to `crop_size` with `pad_value`
    (`seg_pad_value` for segmentation)."""

    def __init__(
        self,
        crop_size: tuple[int, int],
        pad: bool = True,
        pad_value: float = 128.0,
        seg_pad_value: int = 255,
    ):
        super().__init__()
        self._init(locals())

    def _get_crop(self, image: np.ndarray) -> Transform:
        input_size = image.shape[:2]
        max_offset = np.maximum(np.subtract(input_size, self.crop_size), 0)
        offset = np.round(np.multiply(max_offset, np.random.uniform(0.0, 1.0))).astype(int)
        return CropTransform(
            int(offset[1]),
            int(offset[0]),
            int(self.crop_size[1]),
            int(self.crop_size[0]),
            int(input_size[1]),
            int(input_size[0]),
        )

    def _get_pad(self, image: np.ndarray) -> Transform:
        input_size = image.shape[:2]
        pad_h, pad_w = np.maximum(np.subtract(self.crop_size, input_size), 0)
        kept_h, kept_w = np.minimum(input_size, self.crop_size)
        return PadTransform(
            0, 0, int(pad_w), int(pad_h), int(kept_w), int(kept_h), self.pad_value, self.seg_pad_value
        )

    def get_transform(self, image: np.ndarray) -> TransformList:
        transforms = [self._get_crop(image)]
        if self.pad:
            transforms.append(self._get_pad(image))
        return TransformList(transforms)


class RandomCrop(Augmentation):
    """Crop a random region.

    crop_type and crop_size:
      "relative"       (h_frac, w_frac) in (0, 1]: crop h*h_frac x w*w_frac;
      "relative_range" (h_min, w_min): fractions sampled uniformly in [h_min, 1] and [w_min, 1];
      "absolute"       (crop_h, crop_w) pixels, each at most the image's;
      "absolute_range" (min, max) pixels: crop_h in [min, min(h, max)], crop_w in [min, min(w, max)]
                       (the whole side when the image is smaller than `min`).
    """

    CROP_TYPES = ("relative", "relative_range", "absolute", "absolute_range")

    def __init__(self, crop_type: str, crop_size: Sequence[float]):
        super().__init__()
        if crop_type not in self.CROP_TYPES:
            raise ValueError(f"RandomCrop: crop_type must be one of {self.CROP_TYPES}, got {crop_type!r}")
        if len(crop_size) != 2:
            raise ValueError(f"RandomCrop: crop_size must have two values, got {crop_size!r}")
        if crop_type.startswith("relative") and not all(0 < c <= 1 for c in crop_size):
            raise ValueError(
                f"RandomCrop({crop_type!r}): crop_size fractions must be in (0, 1], got {crop_size}"
            )
        if crop_type == "absolute_range" and crop_size[0] > crop_size[1]:
            raise ValueError(f"RandomCrop('absolute_range'): crop_size must be (min, max), got {crop_size}")
        self._init(locals())
        self.crop_size = tuple(crop_size)

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        crop_h, crop_w = self.get_crop_size((h, w))
        y0 = np.random.randint(h - crop_h + 1)
        x0 = np.random.randint(w - crop_w + 1)
        return CropTransform(x0, y0, crop_w, crop_h)

    def get_crop_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(crop_h, crop_w) in pixels for an image of `image_size` = (h, w)."""
        h, w = image_size
        if self.crop_type == "relative":
            fh, fw = self.crop_size
        elif self.crop_type == "relative_range":
            low = np.asarray(self.crop_size, dtype=np.float32)
            fh, fw = low + np.random.rand(2) * (1 - low)
        elif self.crop_type == "absolute":
            return min(int(self.crop_size[0]), h), min(int(self.crop_size[1]), w)
        else:
            lo, hi = int(self.crop_size[0]), int(self.crop_size[1])
            crop_h = np.random.randint(min(h, lo), min(h, hi) + 1)
            crop_w = np.random.randint(min(w, lo), min(w, hi) + 1)
            return int(crop_h), int(crop_w)
        return int(h * fh + 0.5), int(w * fw + 0.5)

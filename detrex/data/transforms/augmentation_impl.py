"""The augmentations DETR-style training uses: random flip, shortest-edge resize, random crop."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .augmentation import Augmentation
from .transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    ResizeTransform,
    Transform,
    VFlipTransform,
)

__all__ = ["RandomFlip", "ResizeShortestEdge", "RandomCrop"]


class RandomFlip(Augmentation):
    """Flip the image horizontally (or vertically) with probability `prob`."""

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True, vertical: bool = False):
        super().__init__()
        if horizontal == vertical:
            raise ValueError("RandomFlip: set exactly one of horizontal=True or vertical=True")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomFlip: prob must be in [0, 1], got {prob}")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self._rand_range() >= self.prob:
            return NoOpTransform()
        return HFlipTransform(w) if self.horizontal else VFlipTransform(h)


class ResizeShortestEdge(Augmentation):
    """Resize keeping the aspect ratio: the short edge to a sampled length, the long edge at most `max_size`.

    short_edge_length: with sample_style="range", a (min, max) interval sampled uniformly (integers);
        with "choice", a list of lengths to choose from. An int means that one length.
    """

    def __init__(
        self,
        short_edge_length: int | Sequence[int],
        max_size: int = sys.maxsize,
        sample_style: str = "range",
        interp: int = Image.BILINEAR,
    ):
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
        self._init(locals())
        self.short_edge_length = short_edge_length

    def get_transform(self, image: np.ndarray) -> Transform:
        h, w = image.shape[:2]
        if self.sample_style == "range":
            size = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            size = np.random.choice(self.short_edge_length)
        if size == 0:
            return NoOpTransform()
        new_h, new_w = self.get_output_shape(h, w, int(size), self.max_size)
        return ResizeTransform(h, w, new_h, new_w, self.interp)

    @staticmethod
    def get_output_shape(old_h: int, old_w: int, short_edge_length: int, max_size: int) -> tuple[int, int]:
        """(new_h, new_w) for an old_h x old_w image, rounded to the nearest integer."""
        scale = short_edge_length / min(old_h, old_w)
        new_h, new_w = old_h * scale, old_w * scale
        if max(new_h, new_w) > max_size:
            shrink = max_size / max(new_h, new_w)
            new_h, new_w = new_h * shrink, new_w * shrink
        return int(new_h + 0.5), int(new_w + 0.5)


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

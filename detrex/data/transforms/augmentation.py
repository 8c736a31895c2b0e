"""Augmentations: random policies that, given an image, return a deterministic fvcore `Transform`.

aug_input = AugInput(image, boxes=boxes_xyxy)
transforms = AugmentationList([RandomFlip(), ResizeShortestEdge(800, 1333)])(aug_input)
image, boxes = aug_input.image, aug_input.boxes          # both transformed consistently
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np

from .transform import Transform, TransformList

__all__ = ["Augmentation", "AugmentationList", "AugInput", "apply_augmentations", "apply_transform_gens"]


class Augmentation:
    """Base class: subclasses implement `get_transform(image) -> Transform`, drawing any randomness there
    (from numpy's global RNG, which the data loader seeds per worker and per sample)."""

    def _init(self, params: dict | None = None) -> None:
        for k, v in (params or {}).items():
            if k != "self" and not k.startswith("_"):
                setattr(self, k, v)

    def get_transform(self, image: np.ndarray) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input: AugInput) -> Transform:
        tfm = self.get_transform(aug_input.image)
        if not isinstance(tfm, Transform):
            raise TypeError(f"{type(self).__name__}.get_transform must return a Transform, got {type(tfm)}")
        aug_input.transform(tfm)
        return tfm

    def _rand_range(self, low: float = 1.0, high: float | None = None, size=None):
        if high is None:
            low, high = 0, low
        return np.random.uniform(low, high, size)

    def __repr__(self) -> str:
        args = []
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = getattr(self, name, param.default)
            if param.default is not param.empty and value is param.default:
                continue
            args.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(args)})"

    __str__ = __repr__


class AugInput:
    """An image (H, W, C) plus optional (N, 4) XYXY_ABS boxes, transformed together in place."""

    def __init__(self, image: np.ndarray, *, boxes: np.ndarray | None = None):
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(f"AugInput: image must be an (H, W[, C]) numpy array, got {type(image)}")
        self.image = image
        self.boxes = boxes

    def transform(self, tfm: Transform) -> None:
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)

    def apply_augmentations(self, augmentations: Sequence[Augmentation | Transform]) -> TransformList:
        return AugmentationList(augmentations)(self)


class AugmentationList(Augmentation):
    """Apply augmentations in order; each sees the output of the previous one."""

    def __init__(self, augs: Sequence[Augmentation | Transform]):
        super().__init__()
        self.augs = [_as_augmentation(a) for a in augs]

    def __call__(self, aug_input: AugInput) -> TransformList:
        return TransformList([aug(aug_input) for aug in self.augs])

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(repr(a) for a in self.augs)}]"

    __str__ = __repr__


class _TransformToAug(Augmentation):
    def __init__(self, tfm: Transform):
        self.tfm = tfm

    def get_transform(self, image: np.ndarray) -> Transform:
        return self.tfm

    def __repr__(self) -> str:
        return repr(self.tfm)


def _as_augmentation(aug: Augmentation | Transform) -> Augmentation:
    if isinstance(aug, Augmentation):
        return aug
    if isinstance(aug, Transform):
        return _TransformToAug(aug)
    raise TypeError(f"expected an Augmentation or a Transform, got {type(aug)}: {aug!r}")


def apply_augmentations(augmentations: Sequence[Augmentation | Transform], inputs: np.ndarray | AugInput):
    """Apply to an image (returns (image, transforms)) or an AugInput (returns (aug_input, transforms))."""
    aug_input = AugInput(inputs) if isinstance(inputs, np.ndarray) else inputs
    transforms = AugmentationList(augmentations)(aug_input)
    return (aug_input.image if isinstance(inputs, np.ndarray) else aug_input), transforms


apply_transform_gens = apply_augmentations  # the older detectron2 name, used by detrex's mapper

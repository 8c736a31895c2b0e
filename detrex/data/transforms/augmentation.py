"""Augmentations: random policies that, given an image, return a deterministic fvcore `Transform`.

aug_input = AugInput(image, boxes=boxes_xyxy)
transforms = AugmentationList([RandomFlip(), ResizeShortestEdge(800, 1333)])(aug_input)
image, boxes = aug_input.image, aug_input.boxes          # both transformed consistently
"""

from __future__ import annotations

import inspect
import pprint
from collections.abc import Sequence

import numpy as np

from .transform import Transform, TransformList

__all__ = [
    "Augmentation",
    "AugmentationList",
    "AugInput",
    "StandardAugInput",
    "TransformGen",
    "apply_augmentations",
    "apply_transform_gens",
]


def _input_names(aug: Augmentation) -> tuple[str, ...]:
    """The AugInput attributes `aug.get_transform` takes, read from its signature (a lone argument is
    the image whatever its name)."""
    params = list(inspect.signature(aug.get_transform).parameters.values())
    if len(params) == 1:
        return ("image",)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise TypeError(
            f"{type(aug).__name__}.get_transform takes *args/**kwargs, so the inputs it needs are unknown; "
            "name them in its signature (e.g. get_transform(self, image, boxes)), set input_args, "
            "or override __call__"
        )
    return tuple(p.name for p in params)


class Augmentation:
    """Base class: subclasses implement `get_transform(image) -> Transform`, drawing any randomness there
    (from numpy's global RNG, which the data loader seeds per worker and per sample).

    get_transform may take other inputs by name, e.g. `get_transform(self, image, boxes)`: `__call__`
    passes the AugInput attributes of those names (`input_args`, read from the signature when None).
    """

    input_args: tuple[str, ...] | None = None

    def _init(self, params: dict | None = None) -> None:
        for k, v in (params or {}).items():
            if k != "self" and not k.startswith("_"):
                setattr(self, k, v)

    def get_transform(self, *args) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input: AugInput) -> Transform:
        if self.input_args is None:
            self.input_args = _input_names(self)
        args = []
        for name in self.input_args:
            if not hasattr(aug_input, name):
                raise AttributeError(
                    f"{type(self).__name__}.get_transform needs '{name}', which {type(aug_input).__name__} "
                    "does not have"
                )
            args.append(getattr(aug_input, name))
        tfm = self.get_transform(*args)
        if not isinstance(tfm, Transform | TransformList):
            raise TypeError(f"{type(self).__name__}.get_transform must return a Transform, got {type(tfm)}")
        aug_input.transform(tfm)
        return tfm

    def _rand_range(self, low: float = 1.0, high: float | None = None, size=None):
        """Uniform random number(s) in [low, high), or [0, low) when high is None."""
        if high is None:
            low, high = 0, low
        if size is None:
            size = []
        return np.random.uniform(low, high, size)

    def __repr__(self) -> str:
        args = []
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if not hasattr(self, name):
                return super().__repr__()  # attributes do not mirror the constructor: nothing honest to show
            value = getattr(self, name)
            if param.default is not param.empty and value is param.default:
                continue
            text = pprint.pformat(value)
            args.append(f"{name}={'...' if chr(10) in text else text}")
        return f"{type(self).__name__}({', '.join(args)})"

    __str__ = __repr__


class AugInput:
    """An image (H, W[, C]) plus optional (N, 4) XYXY_ABS `boxes` and (H, W) `sem_seg`, transformed
    together in place; augmentations read the attributes their get_transform names."""

    def __init__(
        self, image: np.ndarray, *, boxes: np.ndarray | None = None, sem_seg: np.ndarray | None = None
    ):
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(f"AugInput: image must be an (H, W[, C]) numpy array, got {type(image)}")
        self.image = image
        self.boxes = boxes
        self.sem_seg = sem_seg

    def transform(self, tfm: Transform) -> None:
        self.image = tfm.apply_image(self.image)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)
        if self.sem_seg is not None:
            self.sem_seg = tfm.apply_segmentation(self.sem_seg)

    def apply_augmentations(self, augmentations: Sequence[Augmentation | Transform]) -> TransformList:
        return AugmentationList(augmentations)(self)


class AugmentationList(Augmentation):
    """Apply augmentations in order; each sees the output of the previous one."""

    def __init__(self, augs: Sequence[Augmentation | Transform]):
        super().__init__()
        self.augs = [as_augmentation(a) for a in augs]

    def __call__(self, aug_input: AugInput) -> TransformList:
        return TransformList([aug(aug_input) for aug in self.augs])

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(repr(a) for a in self.augs)}]"

    __str__ = __repr__


class _TransformToAug(Augmentation):
    def __init__(self, tfm: Transform):
        self.tfm = tfm

    def get_transform(self, *args) -> Transform:
        return self.tfm

    def __repr__(self) -> str:
        return repr(self.tfm)


def as_augmentation(aug: Augmentation | Transform) -> Augmentation:
    """`aug` itself, or a Transform wrapped as an Augmentation that always returns it."""
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
TransformGen = Augmentation  # detectron2's older name
StandardAugInput = AugInput  # detectron2's older name

"""Augmentations and transforms, used in configs as `T` (`import detrex.data.transforms as T`)."""

from .augmentation import AugInput, Augmentation, AugmentationList, apply_augmentations, apply_transform_gens
from .augmentation_impl import RandomCrop, RandomFlip, ResizeShortestEdge
from .transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    ResizeTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "Augmentation",
    "AugmentationList",
    "AugInput",
    "apply_augmentations",
    "apply_transform_gens",
    "RandomCrop",
    "RandomFlip",
    "ResizeShortestEdge",
    "CropTransform",
    "HFlipTransform",
    "NoOpTransform",
    "ResizeTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
]

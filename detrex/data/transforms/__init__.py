"""Augmentations and transforms, used in configs as `T` (`import detrex.data.transforms as T`).

The names are detectron2's `detectron2.data.transforms` (fvcore's deterministic transforms included).
"""

from .augmentation import (
    AugInput,
    Augmentation,
    AugmentationList,
    StandardAugInput,
    TransformGen,
    apply_augmentations,
    apply_transform_gens,
)
from .augmentation_impl import (
    FixedSizeCrop,
    RandomApply,
    RandomCrop,
    RandomFlip,
    Resize,
    ResizeScale,
    ResizeShortestEdge,
)
from .transform import (
    BlendTransform,
    ColorTransform,
    CropTransform,
    ExtentTransform,
    GridSampleTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    PILColorTransform,
    ResizeTransform,
    ScaleTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

__all__ = [
    "Augmentation",
    "AugmentationList",
    "AugInput",
    "StandardAugInput",
    "TransformGen",
    "apply_augmentations",
    "apply_transform_gens",
    "FixedSizeCrop",
    "RandomApply",
    "RandomCrop",
    "RandomFlip",
    "Resize",
    "ResizeScale",
    "ResizeShortestEdge",
    "BlendTransform",
    "ColorTransform",
    "CropTransform",
    "ExtentTransform",
    "GridSampleTransform",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "PILColorTransform",
    "ResizeTransform",
    "ScaleTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
]

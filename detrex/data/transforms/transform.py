"""Transforms applied to an image and its boxes: fvcore's deterministic classes plus a PIL resize."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from fvcore.transforms.transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    Transform,
    TransformList,
    VFlipTransform,
)
from PIL import Image

__all__ = [
    "Transform",
    "TransformList",
    "NoOpTransform",
    "HFlipTransform",
    "VFlipTransform",
    "CropTransform",
    "ResizeTransform",
]

_TORCH_MODES = {Image.NEAREST: "nearest", Image.BILINEAR: "bilinear", Image.BICUBIC: "bicubic"}


class ResizeTransform(Transform):
    """Resize an (H, W[, C]) image from (h, w) to (new_h, new_w).

    uint8 images go through PIL (the resampling detectron2 and detrex checkpoints were trained with);
    float images through torch's interpolate with the matching mode.
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int = Image.BILINEAR):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(f"ResizeTransform expects a {self.h}x{self.w} image, got shape {img.shape}")
        interp = self.interp if interp is None else interp
        if img.dtype == np.uint8:
            single = img.ndim == 3 and img.shape[2] == 1
            pil = Image.fromarray(img[:, :, 0] if single else img)
            out = np.asarray(pil.resize((self.new_w, self.new_h), interp))
            return out[:, :, None] if single else out
        x = torch.from_numpy(np.ascontiguousarray(img))
        x = x[:, :, None] if x.ndim == 2 else x
        x = x.permute(2, 0, 1)[None].float()  # (1, C, H, W)
        mode = _TORCH_MODES[interp]
        y = F.interpolate(
            x, (self.new_h, self.new_w), mode=mode, align_corners=None if mode == "nearest" else False
        )
        y = y[0].permute(1, 2, 0).numpy().astype(img.dtype)
        return y[:, :, 0] if img.ndim == 2 else y

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] = coords[:, 0] * (self.new_w * 1.0 / self.w)
        coords[:, 1] = coords[:, 1] * (self.new_h * 1.0 / self.h)
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.NEAREST)

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w, self.interp)

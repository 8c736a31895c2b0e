"""Transforms applied to an image and its boxes: fvcore's deterministic classes, a PIL resize, an extent
(sub-rectangle) transform and photometric wrappers (detectron2's `detectron2.data.transforms.transform`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from fvcore.transforms.transform import (
    BlendTransform,
    CropTransform,
    GridSampleTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    ScaleTransform,
    Transform,
    TransformList,
    VFlipTransform,
)
from PIL import Image

__all__ = [
    "Transform",
    "TransformList",
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
    "VFlipTransform",
]

_TORCH_MODES = {Image.NEAREST: "nearest", Image.BILINEAR: "bilinear", Image.BICUBIC: "bicubic"}


def _to_pil(img: np.ndarray) -> Image.Image:
    """A uint8 (H, W), (H, W, 1) or (H, W, 3/4) array as a PIL image (one channel becomes mode "L")."""
    return Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)


def _from_pil(pil: Image.Image, like: np.ndarray) -> np.ndarray:
    """Back to numpy with the channel layout of `like` ((H, W, 1) stays three-dimensional)."""
    out = np.asarray(pil)
    return out[:, :, None] if like.ndim == 3 and like.shape[2] == 1 else out


class ResizeTransform(Transform):
    """Resize an (H, W[, C]) image from (h, w) to (new_h, new_w); `interp` is a PIL filter (default bilinear).

    uint8 images go through PIL (the resampling detectron2 and detrex checkpoints were trained with);
    other images through torch's interpolate with the matching mode.
    """

    def __init__(self, h: int, w: int, new_h: int, new_w: int, interp: int | None = None):
        super().__init__()
        if interp is None:
            interp = Image.BILINEAR
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        if img.shape[:2] != (self.h, self.w):
            raise ValueError(f"ResizeTransform expects a {self.h}x{self.w} image, got shape {img.shape}")
        interp = self.interp if interp is None else interp
        if img.dtype == np.uint8:
            return _from_pil(_to_pil(img).resize((self.new_w, self.new_h), interp), img)
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


class ExtentTransform(Transform):
    """Take the rectangle `src_rect` = (x0, y0, x1, y1) of the image (it may reach outside; those pixels
    get `fill`) and resize it to `output_size` = (h, w), as PIL's Image.transform(EXTENT) does."""

    def __init__(self, src_rect, output_size, interp: int = Image.BILINEAR, fill=0):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: int | None = None) -> np.ndarray:
        h, w = self.output_size
        pil = _to_pil(img).transform(
            size=(w, h),
            method=Image.Transform.EXTENT,
            data=self.src_rect,
            resample=self.interp if interp is None else interp,
            fillcolor=self.fill,  # PIL's `fill` argument is ignored for EXTENT; fillcolor paints outside
        )
        return _from_pil(pil, img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        # about the rectangle's center: scale by output/rectangle size, then move to the output's center
        h, w = self.output_size
        x0, y0, x1, y1 = self.src_rect
        out = coords.astype(np.float32)
        out[:, 0] = (out[:, 0] - 0.5 * (x0 + x1)) * (w / (x1 - x0)) + 0.5 * w
        out[:, 1] = (out[:, 1] - 0.5 * (y0 + y1)) * (h / (y1 - y0)) + 0.5 * h
        return out

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return self.apply_image(segmentation, interp=Image.NEAREST)


class ColorTransform(Transform):
    """A photometric change: `op(image ndarray) -> ndarray`; boxes, coordinates and segmentation are
    left unchanged."""

    def __init__(self, op):
        if not callable(op):
            raise ValueError(f"ColorTransform: op must be callable, got {op!r}")
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return self.op(img)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        return NoOpTransform()


class PILColorTransform(ColorTransform):
    """A ColorTransform whose `op` takes and returns a PIL image (e.g. an ImageOps or ImageEnhance call);
    the image is a uint8 array on both sides."""

    def __init__(self, op):
        if not callable(op):
            raise ValueError(f"PILColorTransform: op must be callable, got {op!r}")
        super().__init__(op)

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return np.asarray(super().apply_image(Image.fromarray(img)))

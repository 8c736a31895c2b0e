"""Boxes: `BoxMode` (how a raw box is written), `Boxes` (N absolute XYXY boxes) and pairwise IoU / IoA.

All of it follows detectron2's `detectron2.structures.boxes`; `Boxes` and the pairwise functions script
with `torch.jit.script`.
"""

import math
from enum import IntEnum, unique
from typing import Union

import numpy as np
import torch

__all__ = [
    "BoxMode",
    "Boxes",
    "matched_pairwise_iou",
    "pairwise_intersection",
    "pairwise_ioa",
    "pairwise_iou",
    "pairwise_point_box_distance",
]

RawBox = Union[list, tuple, np.ndarray, torch.Tensor]


@unique
class BoxMode(IntEnum):
    """How a box is written. The values are detectron2's, so saved dataset dicts and json files agree."""

    XYXY_ABS = 0  # (x0, y0, x1, y1) in pixels
    XYWH_ABS = 1  # (x0, y0, width, height) in pixels, as in COCO json
    XYXY_REL = 2  # (x0, y0, x1, y1) as fractions of the image size (no conversion is implemented)
    XYWH_REL = 3  # (x0, y0, width, height) as fractions of the image size (no conversion either)
    XYWHA_ABS = 4  # (x_center, y_center, width, height, angle in degrees counter-clockwise)

    @staticmethod
    def convert(box: RawBox, from_mode: "BoxMode | int", to_mode: "BoxMode | int") -> RawBox:
        """Convert `box` from `from_mode` to `to_mode`; the result has the input's type and dtype.

        box: one box as a list or tuple of 4 (or 5 for XYWHA_ABS) numbers, or an (N, 4) / (N, 5) numpy
            array or torch tensor (the input is not modified). The conversions are XYXY_ABS <-> XYWH_ABS,
            XYWH_ABS -> XYWHA_ABS and XYWHA_ABS -> XYXY_ABS (the horizontal box enclosing the rotated one).
        """
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        relative = (BoxMode.XYXY_REL, BoxMode.XYWH_REL)
        if from_mode in relative or to_mode in relative:
            raise NotImplementedError(
                f"BoxMode.convert: relative modes ({from_mode.name} -> {to_mode.name}) need the image size, "
                "which a box does not carry; scale the box to pixels first"
            )
        single = isinstance(box, list | tuple)
        if single:
            if len(box) not in (4, 5):
                raise ValueError(
                    f"BoxMode.convert: a list/tuple must be one box of 4 or 5 numbers, got {box!r}; "
                    "pass several boxes as an (N, 4) array or tensor"
                )
            arr = torch.tensor(box)[None, :]
        elif isinstance(box, np.ndarray):
            arr = torch.from_numpy(np.asarray(box)).clone()
        elif isinstance(box, torch.Tensor):
            arr = box.clone()
        else:
            raise TypeError(
                f"BoxMode.convert: box must be a list, tuple, numpy array or torch tensor, got {type(box)}"
            )
        if arr.dim() != 2 or arr.shape[-1] not in (4, 5):
            raise ValueError(
                f"BoxMode.convert: expected an (N, 4) or (N, 5) array, got shape {tuple(arr.shape)}"
            )
        arr = _convert(arr, from_mode, to_mode)
        if single:
            return type(box)(arr.flatten().tolist())
        return arr.numpy() if isinstance(box, np.ndarray) else arr


def _convert(arr: torch.Tensor, from_mode: BoxMode, to_mode: BoxMode) -> torch.Tensor:
    """The arithmetic of BoxMode.convert on an (N, k) tensor it owns (so it may write in place)."""
    if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYXY_ABS:
        arr[:, 2:4] += arr[:, 0:2]
        return arr
    if from_mode == BoxMode.XYXY_ABS and to_mode == BoxMode.XYWH_ABS:
        arr[:, 2:4] -= arr[:, 0:2]
        return arr
    if from_mode == BoxMode.XYWHA_ABS and to_mode == BoxMode.XYXY_ABS:
        if arr.shape[-1] != 5:
            raise ValueError(f"BoxMode.convert: XYWHA_ABS boxes have 5 numbers, got shape {tuple(arr.shape)}")
        xywha = arr.double()  # angles in float64: int and float32 inputs round the same way
        w, h, angle = xywha[:, 2], xywha[:, 3], xywha[:, 4] * math.pi / 180.0
        cos, sin = angle.cos().abs(), angle.sin().abs()
        enclosing_w, enclosing_h = cos * w + sin * h, cos * h + sin * w
        x0 = xywha[:, 0] - enclosing_w / 2.0
        y0 = xywha[:, 1] - enclosing_h / 2.0
        xyxy = torch.stack((x0, y0, x0 + enclosing_w, y0 + enclosing_h), dim=1)
        return xyxy.to(arr.dtype)
    if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYWHA_ABS:
        if arr.shape[-1] != 4:
            raise ValueError(f"BoxMode.convert: XYWH_ABS boxes have 4 numbers, got shape {tuple(arr.shape)}")
        xywh = arr.double()
        centers = xywh[:, 0:2] + xywh[:, 2:4] / 2.0
        angles = torch.zeros_like(xywh[:, :1])
        return torch.cat((centers, xywh[:, 2:4], angles), dim=1).to(arr.dtype)
    raise NotImplementedError(f"BoxMode.convert: {from_mode.name} -> {to_mode.name} is not supported")


class Boxes:
    """N boxes as an (N, 4) float32 tensor of absolute (x0, y0, x1, y1) (detectron2's `Boxes`).

    Indexing (int, slice, bool or index tensor) gives a new `Boxes`, possibly sharing storage.
    """

    def __init__(self, tensor: torch.Tensor):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor, dtype=torch.float32, device=torch.device("cpu"))
        else:
            tensor = tensor.to(torch.float32)
        if tensor.numel() == 0:
            # reshape, not a new tensor, so that traced graphs still depend on the input
            tensor = tensor.reshape((-1, 4)).to(dtype=torch.float32)
        if tensor.dim() != 2 or tensor.size(-1) != 4:
            raise ValueError("Boxes expects an (N, 4) tensor, got shape " + str(tensor.shape))
        self.tensor = tensor

    def clone(self) -> "Boxes":
        return Boxes(self.tensor.clone())

    def to(self, device: torch.device) -> "Boxes":
        """On another device; the dtype stays float32."""
        return Boxes(self.tensor.to(device=device))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        t = self.tensor
        return (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip in place to an image of `box_size` = (height, width)."""
        if not bool(torch.isfinite(self.tensor).all()):
            raise ValueError("Boxes.clip: the box tensor holds inf or NaN")
        h, w = box_size
        x0 = self.tensor[:, 0].clamp(min=0, max=w)
        y0 = self.tensor[:, 1].clamp(min=0, max=h)
        x1 = self.tensor[:, 2].clamp(min=0, max=w)
        y1 = self.tensor[:, 3].clamp(min=0, max=h)
        self.tensor = torch.stack((x0, y0, x1, y1), dim=-1)

    def nonempty(self, threshold: float = 0.0) -> torch.Tensor:
        """Bool mask of boxes whose width and height both exceed `threshold`."""
        t = self.tensor
        return ((t[:, 2] - t[:, 0]) > threshold) & ((t[:, 3] - t[:, 1]) > threshold)

    def scale(self, scale_x: float, scale_y: float) -> None:
        """Scale in place: x coordinates by `scale_x`, y coordinates by `scale_y`."""
        self.tensor[:, 0::2] *= scale_x
        self.tensor[:, 1::2] *= scale_y

    def get_centers(self) -> torch.Tensor:
        """(N, 2) box centers (x, y)."""
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        """Bool mask of boxes within an image of `box_size` = (height, width), give or take the threshold."""
        h, w = box_size
        t = self.tensor
        return (
            (t[..., 0] >= -boundary_threshold)
            & (t[..., 1] >= -boundary_threshold)
            & (t[..., 2] < w + boundary_threshold)
            & (t[..., 3] < h + boundary_threshold)
        )

    @classmethod
    def cat(cls, boxes_list: list["Boxes"]) -> "Boxes":
        """One `Boxes` holding the boxes of every element of `boxes_list`, in order (new storage)."""
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError("Boxes.cat expects a list of Boxes")
        if len(boxes_list) == 0:
            return cls(torch.empty(0))
        for b in boxes_list:
            if not isinstance(b, Boxes):
                raise TypeError("Boxes.cat: every element must be a Boxes")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __getitem__(self, item) -> "Boxes":
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexError("Indexing Boxes did not give a 2-D tensor")
        return Boxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __repr__(self) -> str:
        return "Boxes(" + str(self.tensor) + ")"

    @torch.jit.unused
    def __iter__(self):
        """Yield each box as a (4,) tensor (not available in TorchScript, which cannot script generators)."""
        yield from self.tensor


def pairwise_intersection(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection areas of every box of `boxes1` (N) with every box of `boxes2` (M)."""
    a, b = boxes1.tensor, boxes2.tensor
    wh = torch.min(a[:, None, 2:], b[:, 2:]) - torch.max(a[:, None, :2], b[:, :2])  # (N, M, 2)
    return wh.clamp(min=0).prod(dim=2)


def pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection over union; a pair that does not overlap (or an empty box) gives 0, not NaN."""
    inter = pairwise_intersection(boxes1, boxes2)
    union = boxes1.area()[:, None] + boxes2.area() - inter
    return torch.where(inter > 0, inter / union, torch.zeros(1, dtype=inter.dtype, device=inter.device))


def pairwise_ioa(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N, M) intersection over the area of the `boxes2` box; 0 where they do not overlap."""
    inter = pairwise_intersection(boxes1, boxes2)
    return torch.where(
        inter > 0, inter / boxes2.area(), torch.zeros(1, dtype=inter.dtype, device=inter.device)
    )


def pairwise_point_box_distance(points: torch.Tensor, boxes: Boxes) -> torch.Tensor:
    """(N, M, 4) distances of N (x, y) points to the left, top, right and bottom edges of M boxes
    (all positive when the point is inside the box)."""
    x, y = points.unsqueeze(dim=2).unbind(dim=1)  # (N, 1) each
    x0, y0, x1, y1 = boxes.tensor.unsqueeze(dim=0).unbind(dim=2)  # (1, M) each
    return torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)


def matched_pairwise_iou(boxes1: Boxes, boxes2: Boxes) -> torch.Tensor:
    """(N,) IoU of box i of `boxes1` with box i of `boxes2` (the diagonal of pairwise_iou)."""
    if len(boxes1) != len(boxes2):
        raise ValueError(
            f"matched_pairwise_iou: {len(boxes1)} boxes against {len(boxes2)}; lengths must agree"
        )
    a, b = boxes1.tensor, boxes2.tensor
    wh = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return inter / (boxes1.area() + boxes2.area() - inter)

"""Axis-aligned boxes stored as an (N, 4) tensor of absolute (x0, y0, x1, y1) coordinates."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class Boxes:
    """A list of N boxes as an (N, 4) float tensor in XYXY_ABS format (detectron2's `Boxes`)."""

    def __init__(self, tensor: torch.Tensor | list | tuple):
        if not isinstance(tensor, torch.Tensor):
            tensor = torch.as_tensor(tensor, dtype=torch.float32)
        if tensor.numel() == 0:
            # keep a well-formed (0, 4) tensor so cat/indexing work on empty images
            tensor = tensor.reshape(-1, 4).to(dtype=torch.float32 if not tensor.is_floating_point() else None)
        if tensor.dim() != 2 or tensor.size(-1) != 4:
            raise ValueError(f"Boxes expects an (N, 4) tensor, got shape {tuple(tensor.shape)}")
        self.tensor = tensor

    def clone(self) -> Boxes:
        return Boxes(self.tensor.clone())

    def to(self, *args, **kwargs) -> Boxes:
        return Boxes(self.tensor.to(*args, **kwargs))

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def area(self) -> torch.Tensor:
        t = self.tensor
        return (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])

    def clip(self, box_size: tuple[int, int]) -> None:
        """Clip in place to an image of `box_size` = (height, width)."""
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
        return (self.tensor[:, :2] + self.tensor[:, 2:]) / 2

    def inside_box(self, box_size: tuple[int, int], boundary_threshold: int = 0) -> torch.Tensor:
        h, w = box_size
        t = self.tensor
        return (
            (t[:, 0] >= -boundary_threshold)
            & (t[:, 1] >= -boundary_threshold)
            & (t[:, 2] < w + boundary_threshold)
            & (t[:, 3] < h + boundary_threshold)
        )

    @classmethod
    def cat(cls, boxes_list: list[Boxes]) -> Boxes:
        if not isinstance(boxes_list, (list, tuple)):
            raise TypeError(f"Boxes.cat expects a list of Boxes, got {type(boxes_list).__name__}")
        if len(boxes_list) == 0:
            return cls(torch.empty(0, 4))
        if not all(isinstance(b, Boxes) for b in boxes_list):
            raise TypeError("Boxes.cat: every element must be a Boxes")
        return cls(torch.cat([b.tensor for b in boxes_list], dim=0))

    def __getitem__(self, item) -> Boxes:
        if isinstance(item, int):
            return Boxes(self.tensor[item].view(1, -1))
        b = self.tensor[item]
        if b.dim() != 2:
            raise IndexError(f"Indexing Boxes with {item!r} did not return a 2-D tensor")
        return Boxes(b)

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield from self.tensor

    def __repr__(self) -> str:
        return f"Boxes({self.tensor})"

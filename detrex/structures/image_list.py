"""A batch of differently sized images padded into one tensor (detectron2's `ImageList`).

Scripts with `torch.jit.script`; under `torch.jit.trace`, `from_tensors` records the padded size as a
function of the input shapes (no constants), and `image_sizes` holds (2,) size tensors.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import device


class ImageList:
    """`tensor` is (N, C, Hmax, Wmax) (or (N, Hmax, Wmax)) with `pad_value` padding at the bottom/right;
    `image_sizes[i]` is the (h, w) of image i before padding."""

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]):
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx) -> torch.Tensor:
        """Image `idx` at its own size, without the padding."""
        size = self.image_sizes[idx]
        return self.tensor[idx, ..., : size[0], : size[1]]

    @torch.jit.unused
    def to(self, *args: Any, **kwargs: Any) -> "ImageList":
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> device:
        return self.tensor.device

    def padding_mask(self) -> torch.Tensor:
        """(N, Hmax, Wmax) bool mask, True on padded pixels (the DETR convention)."""
        n, hmax, wmax = self.tensor.shape[0], self.tensor.shape[-2], self.tensor.shape[-1]
        mask = torch.ones((n, hmax, wmax), dtype=torch.bool, device=self.tensor.device)
        for i in range(len(self.image_sizes)):
            size = self.image_sizes[i]
            mask[i, : size[0], : size[1]] = False
        return mask

    @staticmethod
    def from_tensors(
        tensors: list[torch.Tensor],
        size_divisibility: int = 0,
        pad_value: float = 0.0,
        padding_constraints: dict[str, int] | None = None,
    ) -> "ImageList":
        """Pad (C, H, W) or (H, W) tensors (equal leading dims) to one batch.

        size_divisibility: > 1 rounds the padded height and width up to a multiple of it.
        padding_constraints: optional {"size_divisibility": int, "square_size": int}; the first overrides
            the argument, a positive `square_size` pads to square_size x square_size.
        """
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors needs at least one tensor")
        if not isinstance(tensors, (list, tuple)):
            raise TypeError("ImageList.from_tensors expects a list or tuple of tensors")
        for t in tensors:
            if t.shape[:-2] != tensors[0].shape[:-2]:
                raise ValueError(
                    "ImageList.from_tensors: leading dims differ: "
                    + str(t.shape)
                    + " vs "
                    + str(tensors[0].shape)
                )
        image_sizes = [(im.shape[-2], im.shape[-1]) for im in tensors]
        size_tensors = [_size_tensor(s) for s in image_sizes]
        max_size = torch.stack(size_tensors).max(0).values  # (2,) = (Hmax, Wmax)
        if padding_constraints is not None:
            square_size = padding_constraints.get("square_size", 0)
            if square_size > 0:
                max_size[0] = square_size
                max_size[1] = square_size
            if "size_divisibility" in padding_constraints:
                size_divisibility = padding_constraints["size_divisibility"]
        if size_divisibility > 1:
            stride = size_divisibility
            max_size = (max_size + (stride - 1)).div(stride, rounding_mode="floor") * stride

        if torch.jit.is_scripting():
            padded: list[int] = max_size.to(dtype=torch.long).tolist()
            return ImageList(_pad(tensors, padded, pad_value), image_sizes)
        else:  # TorchScript compiles only the branch above
            if torch.jit.is_tracing():
                # sizes stay tensors, so the trace computes the padding from each call's shapes
                return ImageList(_pad_traced(tensors, max_size, pad_value), size_tensors)
            return ImageList(_pad(tensors, max_size.tolist(), pad_value), image_sizes)


def _size_tensor(size: tuple[int, int]) -> torch.Tensor:
    """(h, w) as a (2,) int64 tensor; while tracing, stacked from the traced sizes (not a constant)."""
    if torch.jit.is_scripting():
        return torch.as_tensor(size)
    if torch.jit.is_tracing():
        return torch.stack(list(size))
    return torch.as_tensor(size)


def _pad(tensors: list[torch.Tensor], max_size: list[int], pad_value: float) -> torch.Tensor:
    """(N, ..., max_size[0], max_size[1]) batch with each tensor in the top-left corner."""
    if len(tensors) == 1:
        h, w = tensors[0].shape[-2], tensors[0].shape[-1]
        if h == max_size[0] and w == max_size[1]:
            return tensors[0].unsqueeze(0).contiguous()
        return F.pad(tensors[0], [0, max_size[1] - w, 0, max_size[0] - h], value=pad_value).unsqueeze(0)
    shape = [len(tensors)] + list(tensors[0].shape[:-2]) + max_size
    batched = tensors[0].new_full(shape, pad_value)
    for i, img in enumerate(tensors):
        batched[i, ..., : img.shape[-2], : img.shape[-1]].copy_(img)
    return batched


@torch.jit.unused
def _pad_traced(tensors: list[torch.Tensor], max_size: torch.Tensor, pad_value: float) -> torch.Tensor:
    """_pad with the padded size as a traced tensor: F.pad amounts are recorded as arithmetic on shapes."""
    if len(tensors) == 1:
        h, w = tensors[0].shape[-2], tensors[0].shape[-1]
        return F.pad(tensors[0], [0, max_size[1] - w, 0, max_size[0] - h], value=pad_value).unsqueeze(0)
    return torch.stack(
        [
            F.pad(t, [0, max_size[1] - t.shape[-1], 0, max_size[0] - t.shape[-2]], value=pad_value)
            for t in tensors
        ]
    )

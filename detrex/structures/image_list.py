"""A batch of differently sized images padded into one tensor (detectron2's `ImageList`)."""

from __future__ import annotations

import torch


class ImageList:
    """`tensor` is (N, C, Hmax, Wmax) with zero (or `pad_value`) padding at the bottom/right;
    `image_sizes[i]` is the (h, w) of image i before padding."""

    def __init__(self, tensor: torch.Tensor, image_sizes: list[tuple[int, int]]):
        self.tensor = tensor
        self.image_sizes = image_sizes

    def __len__(self) -> int:
        return len(self.image_sizes)

    def __getitem__(self, idx: int) -> torch.Tensor:
        h, w = self.image_sizes[idx]
        return self.tensor[idx, ..., :h, :w]

    def to(self, *args, **kwargs) -> ImageList:
        return ImageList(self.tensor.to(*args, **kwargs), self.image_sizes)

    @property
    def device(self) -> torch.device:
        return self.tensor.device

    def padding_mask(self) -> torch.Tensor:
        """(N, Hmax, Wmax) bool mask, True on padded pixels (the DETR convention)."""
        n, hmax, wmax = self.tensor.shape[0], self.tensor.shape[-2], self.tensor.shape[-1]
        mask = torch.ones((n, hmax, wmax), dtype=torch.bool, device=self.tensor.device)
        for i, (h, w) in enumerate(self.image_sizes):
            mask[i, :h, :w] = False
        return mask

    @staticmethod
    def from_tensors(
        tensors: list[torch.Tensor], size_divisibility: int = 0, pad_value: float = 0.0
    ) -> ImageList:
        """Pad a list of (C, H, W) (or (H, W)) tensors to a common size divisible by `size_divisibility`."""
        if len(tensors) == 0:
            raise ValueError("ImageList.from_tensors needs at least one tensor")
        shape0 = tensors[0].shape[:-2]
        for t in tensors:
            if t.shape[:-2] != shape0:
                raise ValueError(
                    f"ImageList: leading dims differ: {tuple(t.shape)} vs {tuple(tensors[0].shape)}"
                )
        image_sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_h = max(h for h, _ in image_sizes)
        max_w = max(w for _, w in image_sizes)
        if size_divisibility > 1:
            max_h = (max_h + size_divisibility - 1) // size_divisibility * size_divisibility
            max_w = (max_w + size_divisibility - 1) // size_divisibility * size_divisibility
        if len(tensors) == 1 and image_sizes[0] == (max_h, max_w):
            return ImageList(tensors[0].unsqueeze(0), image_sizes)
        batched = tensors[0].new_full((len(tensors), *shape0, max_h, max_w), pad_value)
        for img, pad_img in zip(tensors, batched):
            pad_img[..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batched.contiguous(), image_sizes)

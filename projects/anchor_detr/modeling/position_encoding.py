"""Sine embeddings of normalised coordinates, as Anchor-DETR uses them for anchor points and pixels."""

from __future__ import annotations

import math

import torch

__all__ = ["mask_to_positions", "sine_embed_1d", "sine_embed_2d"]


def sine_embed_1d(pos: torch.Tensor, num_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """pos: (...,) in [0, 1] -> (..., num_feats): sin / cos interleaved, frequencies 2*pi / T^(2i/num_feats)."""
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)
    x = (pos * (2 * math.pi))[..., None] / dim_t  # (..., num_feats)
    return torch.stack((x[..., 0::2].sin(), x[..., 1::2].cos()), dim=-1).flatten(-2)


def sine_embed_2d(pos: torch.Tensor, num_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """pos: (..., 2) normalised (x, y) -> (..., 2 * num_feats): the y embedding, then the x embedding."""
    emb_x = sine_embed_1d(pos[..., 0], num_feats, temperature)
    emb_y = sine_embed_1d(pos[..., 1], num_feats, temperature)
    return torch.cat((emb_y, emb_x), dim=-1)


def mask_to_positions(pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pad_mask: (B, H, W) bool, True on padding -> pixel-centre positions normalised by the valid size:
    y (B, H) read down the first column and x (B, W) along the first row (padded pixels get the last value).
    """
    valid = ~pad_mask
    y = valid[:, :, 0].cumsum(1, dtype=torch.float32)
    x = valid[:, 0, :].cumsum(1, dtype=torch.float32)
    return (y - 0.5) / y[:, -1:], (x - 0.5) / x[:, -1:]

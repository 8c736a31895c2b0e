"""Sinusoidal position embeddings of feature-map pixels and of box coordinates."""

import math

import torch
from torch import nn


def _frequencies(num_pos_feats: int, temperature: float, device: torch.device) -> torch.Tensor:
    """``temperature ** (2 * (i // 2) / num_pos_feats)`` for i < num_pos_feats: one frequency per sin/cos pair."""
    i = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / num_pos_feats)


def _sin_cos(values: torch.Tensor, dim_t: torch.Tensor) -> torch.Tensor:
    """``(...) -> (..., F)``: [sin(v / t0), cos(v / t0), sin(v / t1), cos(v / t1), ...]."""
    angles = values[..., None] / dim_t
    return torch.stack([angles[..., 0::2].sin(), angles[..., 1::2].cos()], dim=-1).flatten(-2)


class PositionEmbeddingSine(nn.Module):
    """Sine position embedding of the pixels of a padded feature map (DETR).

    forward(mask): mask (B, H, W) bool, True on padded pixels -> (B, 2 * num_pos_feats, H, W), the y
    embedding in the first half of the channels and the x embedding in the second. Positions count valid
    pixels only (cumulative sum of ~mask), so an image's embedding does not depend on its padding. With
    ``normalize`` they are divided by the valid extent (+ eps) and multiplied by ``scale``.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: float = 10000,
        normalize: bool = False,
        scale: float = 2 * math.pi,
        eps: float = 1e-6,
        offset: float = 0.0,
    ):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.eps = eps
        self.offset = offset

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)  # (B, H, W): 1..h down each column
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            y_embed = (y_embed + self.offset) / (y_embed[:, -1:, :] + self.eps) * self.scale
            x_embed = (x_embed + self.offset) / (x_embed[:, :, -1:] + self.eps) * self.scale
        dim_t = _frequencies(self.num_pos_feats, self.temperature, mask.device)
        pos = torch.cat([_sin_cos(y_embed, dim_t), _sin_cos(x_embed, dim_t)], dim=-1)  # (B, H, W, 2F)
        return pos.permute(0, 3, 1, 2)


def get_sine_pos_embed(
    pos_tensor: torch.Tensor,
    num_pos_feats: int = 128,
    temperature: float = 10000,
    scale: float = 2 * math.pi,
    exchange_xy: bool = True,
) -> torch.Tensor:
    """Sine embedding of normalised coordinates, ``(..., n) -> (..., n * num_pos_feats)``.

    Each coordinate c in [0, 1] becomes ``_sin_cos(c * scale)``; the per-coordinate embeddings are
    concatenated in input order, except that ``exchange_xy`` puts y before x (as the references do for
    (x, y[, w, h]) inputs, matching PositionEmbeddingSine's (y, x) channel order).
    """
    dim_t = _frequencies(num_pos_feats, temperature, pos_tensor.device)
    embeds = [_sin_cos(c * scale, dim_t) for c in pos_tensor.unbind(-1)]
    if exchange_xy:
        embeds[0], embeds[1] = embeds[1], embeds[0]
    return torch.cat(embeds, dim=-1)

"""Small tensor helpers."""

import torch


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """log(x / (1 - x)) with x clamped to [0, 1] and both x and 1 - x clamped below at ``eps``.

    eps = 1e-5 is the official DETR-family value (detrex uses 1e-3; they agree for x in [1e-3, 1 - 1e-3]).
    """
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))

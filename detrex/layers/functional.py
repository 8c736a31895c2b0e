"""The building blocks that layer and model code call: ``dropout``, ``attention``, ``conv_norm``.

Each is the plain PyTorch maths of its docstring. On the CPU in float32 a block may hand its work to a kernel
of ``detrex.layers.cpu_kernels`` that computes the same maths faster or with less memory (the only place
where such kernels are chosen); ``DETREX_CPU_KERNELS=0`` keeps every block on the plain path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_kernels
from .batch_norm import FrozenBatchNorm2d

__all__ = ["attention", "conv_norm", "dropout"]


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """In training, each element of ``x`` is zeroed with probability ``p`` and the others are scaled by
    1 / (1 - p); ``x`` itself otherwise (``F.dropout``)."""
    _check_probability(p)
    if training and 0.0 < p < 1.0 and cpu_kernels.applies("dropout", x):
        return cpu_kernels.Dropout.apply(x, p)
    return F.dropout(x, p, training)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_heads: int,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Multi-head scaled dot-product attention of already projected queries, keys and values.

    q (B, Nq, h * dq), k (B, Nk, h * dq), v (B, Nk, h * dv) -> (B, Nq, h * dv). Per head:
    ``dropout(softmax(q k^T / sqrt(dq) + mask)) v``, where the mask is -inf on the keys that
    ``key_padding_mask`` (B, Nk) marks True (padding), so they get exactly zero weight; dq may differ from dv.
    """
    bs, n_q, _ = q.shape
    n_k = k.shape[1]
    q = q.view(bs, n_q, num_heads, -1).transpose(1, 2)  # (B, h, Nq, dq)
    k = k.view(bs, n_k, num_heads, -1).transpose(1, 2)  # (B, h, Nk, dq)
    v = v.view(bs, n_k, num_heads, -1).transpose(1, 2)  # (B, h, Nk, dv)
    if dropout_p > 0.0 and torch.is_grad_enabled() and cpu_kernels.applies("dropout_attention", q, k, v):
        bias = None
        if key_padding_mask is not None:  # (B, 1, 1, Nk): -inf on padded keys
            bias = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill_(key_padding_mask, float("-inf"))[:, None, None, :]
        out = cpu_kernels.DropoutAttention.apply(q, k, v, bias, dropout_p)
    else:
        attend = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True: attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(bs, n_q, -1)  # (B, Nq, h * dv)


def conv_norm(x: torch.Tensor, conv: nn.Conv2d, norm: nn.Module | None = None) -> torch.Tensor:
    """``norm(conv(x))``. ``conv`` and ``norm`` are used for their parameters: their forward hooks do not run.

    A FrozenBatchNorm2d (``y = x * s + t`` per channel) is folded into the convolution, ``conv(x, w * s,
    b * s + t)``: the same maths, with one pass over the output instead of three.
    """
    if not isinstance(norm, FrozenBatchNorm2d):
        x = nn.Conv2d.forward(conv, x)  # not conv(x): detrex's Conv2d calls conv_norm from its forward
        return x if norm is None else norm(x)
    scale, shift = norm.scale_and_shift()
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return conv._conv_forward(x, weight, bias.to(conv.weight.dtype))

"""Dropout on the CPU with bool masks drawn from numpy's SFC64 generator (kernel "dropout")."""

import numpy as np
import torch


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """bool tensor shaped like ``x``, each element True (kept) with probability t / 2^32, t = round((1 - p) 2^32).

    The generator is seeded by one draw from torch's default CPU generator, so ``torch.manual_seed`` makes
    the mask reproducible. "uniform 32-bit integer < t" is decided one base-256 digit at a time: a random
    byte against t's leading byte, then, only for the elements whose byte equals it (1 in 256), a fresh byte
    against the next digit, and so on: the same probability and independence with ~1/4 of the random bits.
    """
    seed = int(torch.empty((), dtype=torch.int64).random_())  # advances torch's default CPU generator
    generator = np.random.SFC64(seed)
    threshold = min(round((1.0 - p) * 2**32), 2**32 - 1)
    digits = [np.uint8((threshold >> shift) & 0xFF) for shift in (24, 16, 8, 0)]

    def random_bytes(count: int) -> np.ndarray:
        return generator.random_raw((count + 7) // 8).view(np.uint8)[:count]  # 8 uniform bytes per word

    draw = random_bytes(x.numel())
    keep = draw < digits[0]
    tied = np.flatnonzero(draw == digits[0])  # equal so far: the next digit decides
    for digit in digits[1:]:
        if tied.size == 0:
            break
        draw = random_bytes(tied.size)
        keep[tied] = draw < digit
        tied = tied[draw == digit]
    # elements still tied after the last digit equal t: not below it, dropped
    return torch.from_numpy(keep).view(x.shape)


def keep_factors(keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``keep`` as 1.0 / 0.0 in ``dtype``, cast through a uint8 view (vectorised; bool -> float is not)."""
    return keep.view(torch.uint8).to(dtype)


def apply_keep_mask(x: torch.Tensor, keep: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``x * keep * scale`` as a new tensor."""
    out = x * keep_factors(keep, x.dtype)
    return out if scale == 1.0 else out.mul_(scale)


class Dropout(torch.autograd.Function):
    """x * mask / (1 - p), saving the bool mask (1 byte per element) for the backward."""

    @staticmethod
    def forward(ctx, x, p):
        keep = keep_mask(x, p)
        ctx.save_for_backward(keep)
        ctx.keep_scale = 1.0 / (1.0 - p)
        return apply_keep_mask(x, keep, ctx.keep_scale)

    @staticmethod
    def backward(ctx, grad_out):
        (keep,) = ctx.saved_tensors
        return apply_keep_mask(grad_out, keep, ctx.keep_scale), None

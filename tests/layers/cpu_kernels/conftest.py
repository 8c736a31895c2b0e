"""Fixtures of the CPU-kernel tests: fixed dropout masks."""

import pytest
import torch

from detrex.layers.cpu_kernels import attention as attention_kernel
from detrex.layers.cpu_kernels import dropout as dropout_kernel


@pytest.fixture
def fixed_masks(monkeypatch):
    """The kernels' random keep-masks replaced by fixed ones (one per shape), so that values and gradients
    can be compared with a reference computed from the same mask. Returns {shape: mask}."""
    masks = {}

    def keep_mask(x, p):
        if x.shape not in masks:
            masks[x.shape] = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) >= p
        return masks[x.shape]

    monkeypatch.setattr(dropout_kernel, "keep_mask", keep_mask)
    monkeypatch.setattr(attention_kernel, "keep_mask", keep_mask)
    return masks

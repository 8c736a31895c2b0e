"""detrex.layers.functional.conv_norm: a convolution and its norm, with frozen norms folded into the weights."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from detrex.layers import Conv2d, FrozenBatchNorm2d
from detrex.layers.functional import conv_norm


def frozen_norm(channels: int, seed: int = 0) -> FrozenBatchNorm2d:
    """A frozen norm with non-trivial statistics."""
    g = torch.Generator().manual_seed(seed)
    norm = FrozenBatchNorm2d(channels)
    norm.weight.copy_(torch.rand(channels, generator=g) + 0.5)
    norm.bias.copy_(torch.randn(channels, generator=g) * 0.1)
    norm.running_mean.copy_(torch.randn(channels, generator=g) * 0.1)
    norm.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return norm


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, "same")])
def test_frozen_norm_folded_equals_conv_then_norm_with_gradients(bias, stride, padding):
    torch.manual_seed(0)
    conv = Conv2d(4, 6, 3, stride=stride, padding=padding, bias=bias, norm=frozen_norm(6))
    x = torch.randn(2, 4, 9, 7, requires_grad=True)
    folded = conv(x)
    reference = conv.norm(F.conv2d(x, conv.weight, conv.bias, stride, padding))
    assert_close(folded, reference, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(folded.square().sum(), [x, conv.weight])
    want = torch.autograd.grad(reference.square().sum(), [x, conv.weight])
    for got, expected in zip(grads, want):
        assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_other_norms_and_no_norm_run_after_the_convolution():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, 1)
    norm = torch.nn.GroupNorm(1, 5)
    x = torch.randn(1, 3, 4, 4)
    assert_close(conv_norm(x, conv, norm), norm(conv(x)))
    assert_close(conv_norm(x, conv), conv(x))

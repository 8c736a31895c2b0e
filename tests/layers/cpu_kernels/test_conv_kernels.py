"""Kernels "frozen_norm_conv" and "stride2_weight_grad" against the plain conv_norm and convolution_backward."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from detrex.layers import Conv2d, cpu_kernels
from detrex.layers.cpu_kernels.conv import ConvFrozenNorm, conv3x3_stride2_weight_grad, padded_phase
from tests.layers.cpu_kernels.conftest import frozen_norm


def _custom_nodes(out: torch.Tensor) -> list[str]:
    """Names of the custom autograd Functions in out's graph."""
    seen, stack, names = set(), [out.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node, torch.autograd.function.BackwardCFunction):
            names.append(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_kernel_equals_conv_then_norm_with_gradients(channels_last, stride):
    torch.manual_seed(0)
    conv = Conv2d(8, 16, 3, stride=stride, padding=1, bias=False, norm=frozen_norm(16))
    x = torch.randn(2, 8, 13, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    results = {}
    for enabled in (True, False):
        with cpu_kernels.use_cpu_kernels(enabled):
            out = conv(x)
            results[enabled] = (
                out,
                _custom_nodes(out),
                torch.autograd.grad(out.square().sum(), [x, conv.weight]),
            )
    assert results[True][1] == ["ConvFrozenNormBackward"] and results[False][1] == []
    reference = conv.norm(F.conv2d(x, conv.weight, None, stride, 1))
    for out, _, _ in results.values():
        assert_close(out, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(results[True][2], results[False][2]):
        assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "stride, padding", [((2, 1), (1, 2)), ((2, 2), (1, 1))]
)  # 2nd: weight grad by phases
def test_function_gradcheck(stride, padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    scale = torch.rand(5, dtype=torch.float64, generator=g) + 0.5
    shift = torch.randn(5, dtype=torch.float64, generator=g)

    def fn(x, weight):
        return ConvFrozenNorm.apply(x, weight, scale, shift, stride, padding, (1, 1), 1)

    assert torch.autograd.gradcheck(fn, (x, weight))
    assert torch.autograd.gradcheck(lambda w: fn(x.detach(), w), (weight,))  # no input gradient asked


def test_kernel_saves_the_weight_not_a_folded_copy():
    torch.manual_seed(0)
    conv = Conv2d(4, 6, 3, padding=1, bias=False, norm=frozen_norm(6))
    x = torch.randn(1, 4, 7, 7)
    for enabled, folded_copies in ((True, 0), (False, 1)):
        saved = []
        with cpu_kernels.use_cpu_kernels(enabled):
            with torch.autograd.graph.saved_tensors_hooks(lambda t, s=saved: s.append(t) or t, lambda t: t):
                conv(x)
        weights = [t for t in saved if t.shape == conv.weight.shape]
        assert sum(t.data_ptr() != conv.weight.data_ptr() for t in weights) == folded_copies


@pytest.mark.parametrize("size", [(9, 11), (10, 7), (2, 3), (1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stride2_weight_grad_by_phases_equals_direct(size, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, *size, dtype=torch.float64, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.float64, generator=g)
    grad_out = torch.randn_like(F.conv2d(x, weight, None, 2, 1))
    direct = torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False]
    )[1]
    assert_close(conv3x3_stride2_weight_grad(grad_out, x), direct)


@pytest.mark.parametrize("channels_last", [False, True])
def test_padded_phases_equal_slices_of_the_padded_input(channels_last):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for h, w in [(1, 1), (1, 4), (2, 2), (3, 5), (6, 7), (8, 8)]:
        x = torch.randn(2, 3, h, w).contiguous(memory_format=layout)
        out_h, out_w = (h + 1) // 2, (w + 1) // 2  # stride 2, padding 1, 3x3
        padded = F.pad(x, (1, 2 * out_w + 1 - w, 1, 2 * out_h + 1 - h))
        for row_parity in (0, 1):
            for col_parity in (0, 1):
                rows, cols = out_h + 1 - row_parity, out_w + 1 - col_parity
                phase = padded_phase(x, row_parity, col_parity, rows, cols, layout)
                expected = padded[:, :, row_parity::2, col_parity::2][:, :, :rows, :cols]
                assert torch.equal(phase, expected), (h, w, row_parity, col_parity)
                assert phase.is_contiguous(memory_format=layout)


def test_plain_path_where_the_kernel_does_not_apply():
    """String padding, a frozen weight, no autograd, float64 and autocast all take the plain folded path."""
    torch.manual_seed(0)
    conv = Conv2d(4, 6, 3, padding="same", bias=False, norm=frozen_norm(6))
    x = torch.randn(1, 4, 7, 7, requires_grad=True)
    out = conv(x)
    assert _custom_nodes(out) == []
    out.square().sum().backward()
    assert conv.weight.grad.shape == (6, 4, 3, 3)
    assert_close(out, conv.norm(F.conv2d(x, conv.weight, None, 1, "same")))
    conv.padding = (1, 1)
    assert _custom_nodes(conv(x)) == ["ConvFrozenNormBackward"]
    assert _custom_nodes(conv.double()(x.double())) == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _custom_nodes(conv.float()(x)) == []
    conv.weight.requires_grad_(False)
    assert _custom_nodes(conv(x)) == []

"""Training a convolution followed by a frozen batch norm on the CPU (kernels "frozen_norm_conv",
"stride2_weight_grad")."""

import torch
import torch.nn.functional as F

from .switch import active_kernels


class ConvFrozenNorm(torch.autograd.Function):
    """conv2d(x, weight * scale, shift), saving the weight itself instead of the folded copy (autograd
    through the product would keep one folded copy of every trainable convolution weight); the backward
    folds it again (a per-channel product)."""

    @staticmethod
    def supports(conv: torch.nn.Conv2d) -> bool:
        """A bias-free convolution with zero padding given as numbers, whose weight trains now."""
        return (
            conv.bias is None
            and conv.weight.requires_grad
            and torch.is_grad_enabled()
            and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)
        )

    @staticmethod
    def forward(ctx, x, weight, scale, shift, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight, scale)
        ctx.conv = (stride, padding, dilation, groups)
        return F.conv2d(x, weight * scale.view(-1, 1, 1, 1), shift, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, scale = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        folded = weight * scale.view(-1, 1, 1, 1)
        need_x, need_w = ctx.needs_input_grad[:2]
        by_phases = need_w and "stride2_weight_grad" in active_kernels() and is_3x3_stride2(ctx.conv, weight)
        mask = [need_x, need_w and not by_phases, False]
        grad_x = grad_folded = None
        if any(mask):
            grad_x, grad_folded, _ = torch.ops.aten.convolution_backward(
                grad_out, x, folded, None, stride, padding, dilation, False, [0, 0], groups, mask
            )
        if by_phases:
            grad_folded = conv3x3_stride2_weight_grad(grad_out, x)
        grad_w = None if grad_folded is None else grad_folded * scale.view(-1, 1, 1, 1)
        return grad_x, grad_w, None, None, None, None, None, None


def is_3x3_stride2(conv_args: tuple, weight: torch.Tensor) -> bool:
    stride, padding, dilation, groups = conv_args
    return tuple(weight.shape[-2:]) == (3, 3) and (
        tuple(stride),
        tuple(padding),
        tuple(dilation),
        groups,
    ) == (
        (2, 2),
        (1, 1),
        (1, 1),
        1,
    )


def conv3x3_stride2_weight_grad(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Weight gradient of ``conv2d(x, w, stride=2, padding=1)`` for a 3x3 ``w`` (groups 1), as four stride-1
    weight gradients, one per parity phase of the padded input: with stride 2, kernel row i only meets
    padded-input rows of parity i % 2 (likewise for columns), so the nine taps split into 2x2, 2x1, 1x2 and
    1x1 groups, each the weight gradient of a stride-1 convolution over one phase."""
    c = x.shape[1]
    out_h, out_w = grad_out.shape[-2:]
    layout = (
        torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    )
    grad = torch.empty(grad_out.shape[1], c, 3, 3, dtype=x.dtype, device=x.device, memory_format=layout)
    for row_parity in (0, 1):
        for col_parity in (0, 1):
            taps_h, rows = (2, out_h + 1) if row_parity == 0 else (1, out_h)
            taps_w, cols = (2, out_w + 1) if col_parity == 0 else (1, out_w)
            phase = padded_phase(x, row_parity, col_parity, rows, cols, layout)
            kernel = x.new_empty(grad.shape[0], c, taps_h, taps_w)  # only its shape is read
            grad[:, :, row_parity::2, col_parity::2] = torch.ops.aten.convolution_backward(
                grad_out, phase, kernel, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
            )[1]
    return grad


def padded_phase(x, row_parity: int, col_parity: int, rows: int, cols: int, layout) -> torch.Tensor:
    """``pad(x, 1 on the top / left, zeros up to the size)[:, :, row_parity::2, col_parity::2]``, ``rows`` x
    ``cols``, written in one pass: x's rows / columns of that parity plus zeroed borders."""
    phase = torch.empty(*x.shape[:2], rows, cols, dtype=x.dtype, device=x.device, memory_format=layout)
    bounds = []
    for parity, size, length in ((row_parity, x.shape[-2], rows), (col_parity, x.shape[-1], cols)):
        # phase index i is padded index parity + 2 i, that is x index parity + 2 i - 1
        first = start = 1 - parity  # the first phase index inside x, and the x index it reads
        count = max(0, min(length - first, (size - start + 1) // 2))
        bounds.append((first, first + count, start))
    (r0, r1, x_r0), (c0, c1, x_c0) = bounds
    if r1 > r0 and c1 > c0:
        phase[:, :, r0:r1, c0:c1] = x[:, :, x_r0::2, x_c0::2][:, :, : r1 - r0, : c1 - c0]
    phase[:, :, :r0].zero_()
    phase[:, :, r1:].zero_()
    phase[:, :, r0:r1, :c0].zero_()
    phase[:, :, r0:r1, c1:].zero_()
    return phase

"""Conv2d with an optional norm and activation (detectron2's layout: ``conv1.weight``, ``conv1.norm.*``), and
the folding of a frozen batch norm into the convolution before it."""

import torch
import torch.nn.functional as F
from torch import nn

from .batch_norm import FrozenBatchNorm2d


class _ConvFrozenNorm(torch.autograd.Function):
    """conv2d(x, weight * scale, shift) for a trainable bias-free conv followed by a frozen norm. Autograd
    through the product would save the folded weight (one copy of every trainable conv weight); this
    saves the parameter itself and folds it again in the backward (a cheap per-channel product)."""

    @staticmethod
    def forward(ctx, x, weight, scale, shift, stride, padding, dilation, groups):
        folded = weight * scale.view(-1, 1, 1, 1)
        ctx.save_for_backward(x, weight, scale)
        ctx.conv = (stride, padding, dilation, groups)
        return torch.nn.functional.conv2d(x, folded, shift, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, scale = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        folded = weight * scale.view(-1, 1, 1, 1)
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        by_phases = need_w and _is_3x3_stride2(weight, stride, padding, dilation, groups)
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


def _is_3x3_stride2(weight, stride, padding, dilation, groups) -> bool:
    return (
        tuple(weight.shape[-2:]) == (3, 3)
        and tuple(stride) == (2, 2)
        and tuple(padding) == (1, 1)
        and tuple(dilation) == (1, 1)
        and groups == 1
    )


def conv3x3_stride2_weight_grad(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Weight gradient of ``conv2d(x, w, stride=2, padding=1)`` for a 3x3 ``w`` (groups 1), computed as four
    stride-1 weight gradients, one per parity phase of the padded input.

    With stride 2, kernel row i only meets padded-input rows of parity i % 2 (and likewise for columns), so
    the nine taps split into a 2x2, a 2x1, a 1x2 and a 1x1 group, each the weight gradient of a stride-1
    convolution over one phase: the same products, no zero taps. On the CPU oneDNN's stride-2 weight
    gradient runs at about half the speed of its stride-1 ones; this costs one copy of ``x`` (the phases,
    written once: no padded intermediate) and made the ResNet-50 backbone's forward + backward ~50 ms faster
    (paired A/B, 2 images 512x640, 2 cores).
    """
    c = x.shape[1]
    out_h, out_w = grad_out.shape[-2:]
    channels_last = x.is_contiguous(memory_format=torch.channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    # in the layout convolution_backward gives (and conv_weights_channels_last the parameter): no copy in
    # the gradient accumulation
    grad = torch.empty(grad_out.shape[1], c, 3, 3, dtype=x.dtype, device=x.device, memory_format=layout)
    for row_parity in (0, 1):
        for col_parity in (0, 1):
            taps_h, rows = (2, out_h + 1) if row_parity == 0 else (1, out_h)
            taps_w, cols = (2, out_w + 1) if col_parity == 0 else (1, out_w)
            phase = _padded_phase(x, row_parity, col_parity, rows, cols, layout)
            kernel = x.new_empty(grad.shape[0], c, taps_h, taps_w)  # only its shape is read
            grad[:, :, row_parity::2, col_parity::2] = torch.ops.aten.convolution_backward(
                grad_out, phase, kernel, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
            )[1]
    return grad


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; on the CPU in float32, for wide layers (one side >= 1024 features, a
    transformer FFN), computed as a 1x1 convolution of the rows of ``x`` in channels-last layout.

    The maths is the same (each output is the dot product of a row of ``x`` with a row of ``weight``, plus
    the bias), only the summation order differs (float rounding, ~1e-6 relative). The reason is the kernel:
    oneDNN's 1x1 convolutions use AVX-512 where the CPU has it, while MKL's GEMM behind ``F.linear`` runs
    its generic code path on AMD CPUs (MKL_VERBOSE: "Intel(R) Architecture processors"). On the development
    VM (AMD EPYC, 2 threads) an FFN 256 -> 2048 -> 256 over 600 rows takes ~8% less time forward + backward
    this way; layers of 256 x 256 take longer (not used there). Autograd is that of ``conv2d``.
    """
    if not _linear_as_conv(x, weight):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])  # (M, K)
    m, k = rows.shape
    # (1, K, M, 1) with channels-last strides: the same memory, no copy
    y = F.conv2d(rows.view(1, m, 1, k).permute(0, 3, 1, 2), weight.view(*weight.shape, 1, 1), bias)
    return y.permute(0, 2, 3, 1).reshape(*x.shape[:-1], weight.shape[0])  # channels-last output: a view


def _linear_as_conv(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        weight.dim() == 2
        and x.dim() >= 2
        and x.shape[-1] == weight.shape[1]  # otherwise F.linear raises its own error about the shapes
        and max(weight.shape) >= 1024
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and x.numel() > 0
        and torch.backends.mkldnn.enabled
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
    )


def _padded_phase(x, row_parity: int, col_parity: int, rows: int, cols: int, layout) -> torch.Tensor:
    """``pad(x, 1 on the top / left, zeros up to the size)[:, :, row_parity::2, col_parity::2]``, ``rows`` x
    ``cols``, written in one pass: the copy of x's rows / columns of that parity plus zeroed borders."""
    phase = torch.empty(*x.shape[:2], rows, cols, dtype=x.dtype, device=x.device, memory_format=layout)
    bounds = []
    for parity, size, length in ((row_parity, x.shape[-2], rows), (col_parity, x.shape[-1], cols)):
        # phase index i is padded index parity + 2 i, that is x index parity + 2 i - 1: parity 0 starts with
        # the padding, parity 1 with x's first row / column
        first = start = 1 - parity  # the first phase index inside x, and the x index it reads
        count = max(0, min(length - first, (size - start + 1) // 2))  # len(x[start::2]), at most what fits
        bounds.append((first, first + count, start))
    (r0, r1, x_r0), (c0, c1, x_c0) = bounds
    if r1 > r0 and c1 > c0:
        phase[:, :, r0:r1, c0:c1] = x[:, :, x_r0::2, x_c0::2][:, :, : r1 - r0, : c1 - c0]
    phase[:, :, :r0].zero_()
    phase[:, :, r1:].zero_()
    phase[:, :, r0:r1, :c0].zero_()
    phase[:, :, r0:r1, c1:].zero_()
    return phase


def conv_weights_channels_last(module: nn.Module) -> nn.Module:
    """Store the weights of ``module``'s 2-d convolutions in channels-last memory format (same shapes and
    values), the layout that oneDNN and cuDNN take when the activations are channels-last.

    Otherwise every convolution of a channels-last network copies its (folded) k x k weight to that layout,
    forward and backward, and the weight gradient, which comes back channels-last, is copied to the
    parameter's layout when it is accumulated: four copies per trainable 3x3 weight and step (~10 ms for one
    512-channel 3x3 weight on 2 CPU cores). 1x1 weights lie in memory the same way in both layouts; they get
    the channels-last strides of their size-1 dimensions too, those of the weight gradients the convolutions
    return, which DistributedDataParallel compares with its buckets' (it warned "Grad strides do not match
    bucket view strides" and copied them strided). ``module.to(...)``, optimizers and ``load_state_dict`` keep
    the layout. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.weight.dim() == 4:
            weight = m.weight.data
            if weight.stride() != _channels_last_strides(weight.shape):
                m.weight.data = torch.empty_like(weight, memory_format=torch.channels_last).copy_(weight)
    return module


def _channels_last_strides(shape: torch.Size) -> tuple[int, ...]:
    _, c, h, w = shape
    return (h * w * c, 1, w * c, c)


def conv_norm_forward(
    conv: nn.Conv2d,
    norm: nn.Module | None,
    x: torch.Tensor,
    *,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``norm(conv(x))``, then ``+ residual`` and ReLU when asked (a ResNet block's tail).

    A FrozenBatchNorm2d is folded into the convolution (weight x scale, bias x scale + shift), so the
    output is written once instead of three times; the maths is the same, also for gradients, and the
    outputs differ from the unfolded order of operations by float rounding only (~1e-7 relative). In CPU
    inference, and in the frozen layers of a training backbone, the residual sum and the ReLU are fused into
    oneDNN's convolution as well.
    """
    if _mkldnn_fusable(conv, norm, x, residual):
        weight, bias = _folded_weight_and_bias(conv, norm)
        args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        if residual is None:
            return _mkldnn.convolution(x, weight, bias, *args, "relu" if relu else "none", [], "")
        return _mkldnn.convolution.binary(
            x, residual, weight, bias, *args, "add", 1.0, "relu" if relu else None, [], ""
        )
    if not isinstance(norm, FrozenBatchNorm2d):
        x = conv._conv_forward(x, conv.weight, conv.bias)
        x = x if norm is None else norm(x)
    elif _use_memory_saving_fold(conv, x, norm):
        scale, shift = norm.scale_and_shift()
        args = (conv.stride, conv.padding, conv.dilation, conv.groups)
        x = _ConvFrozenNorm.apply(x, conv.weight, scale, shift, *args)
    else:
        weight, bias = _folded_weight_and_bias(conv, norm)
        x = conv._conv_forward(x, weight, bias)
    if residual is not None:
        x = x.add_(residual)  # in place: neither a convolution nor a norm needs its output in the backward
    return torch.relu_(x) if relu else x


def _folded_weight_and_bias(conv: nn.Conv2d, norm: FrozenBatchNorm2d | None):
    if norm is None:
        return conv.weight, conv.bias
    scale, shift = norm.scale_and_shift()
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return weight, bias.to(conv.weight.dtype)


def _use_memory_saving_fold(conv: nn.Conv2d, x: torch.Tensor, norm: FrozenBatchNorm2d) -> bool:
    """Training a bias-free conv in the norm's dtype (not under autocast): use _ConvFrozenNorm. Not while
    tracing: a custom autograd Function is opaque to flop counters and exporters, plain ops are not."""
    return (
        not torch.jit.is_tracing()
        and conv.weight.requires_grad
        and torch.is_grad_enabled()
        and conv.bias is None
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)  # convolution_backward takes numbers
        and not torch.is_autocast_enabled(x.device.type)
        and x.dtype == conv.weight.dtype == norm.weight.dtype
    )


class _MkldnnOps:
    """oneDNN's fused convolution (+ bias, + residual sum, + ReLU), as torch.compile uses it on the CPU."""

    def __init__(self):
        ops = getattr(torch.ops, "mkldnn", None)
        self.available = (
            torch.backends.mkldnn.is_available()
            and ops is not None
            and hasattr(ops, "_convolution_pointwise")
        )
        self.convolution = ops._convolution_pointwise if self.available else None


_mkldnn = _MkldnnOps()


def _mkldnn_fusable(
    conv: nn.Conv2d, norm: nn.Module | None, x: torch.Tensor, residual: torch.Tensor | None = None
) -> bool:
    """CPU float32 without autograd or autocast, in eager mode (torch.compile fuses by itself; traced or
    exported graphs keep the portable operators): inference, and the frozen layers of a training backbone
    (nothing there requires a gradient, so the fused operators need no backward)."""
    return (
        not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and _mkldnn.available
        and x.device.type == "cpu"
        and not _needs_autograd(conv, norm, x, residual)
        and x.dtype == conv.weight.dtype == torch.float32
        and (norm is None or isinstance(norm, FrozenBatchNorm2d))
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
    )


def _needs_autograd(conv: nn.Conv2d, norm: nn.Module | None, *inputs: torch.Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = [*inputs, *conv.parameters(), *(norm.parameters() if norm is not None else ())]
    return any(t is not None and t.requires_grad for t in tensors)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by ``norm`` (a submodule, so its keys are ``<conv>.norm.*``) and ``activation``.
    A FrozenBatchNorm2d norm is folded into the convolution (see ``conv_norm_forward``), and so are a ReLU
    and a residual sum that the caller asks for (``conv(x, relu=True, residual=shortcut)``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        norm: nn.Module | None = None,
        activation: nn.Module | None = None,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias,
        )  # fmt: skip
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor, *, relu: bool = False, residual: torch.Tensor | None = None):
        """``activation(norm(conv(x)))``; ``relu`` and ``residual`` as in ``conv_norm_forward``."""
        x = conv_norm_forward(self, self.norm, x, relu=relu, residual=residual)
        if self.activation is not None:
            x = self.activation(x)
        return x

"""Conv2d with an optional norm and activation (detectron2's layout: ``conv1.weight``, ``conv1.norm.*``), and
the folding of a frozen batch norm into the convolution before it."""

import torch
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
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False]
        grad_x, grad_folded, _ = torch.ops.aten.convolution_backward(
            grad_out, x, folded, None, stride, padding, dilation, False, [0, 0], groups, mask
        )
        grad_w = None if grad_folded is None else grad_folded * scale.view(-1, 1, 1, 1)
        return grad_x, grad_w, None, None, None, None, None, None


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
    inference the residual sum and the ReLU are fused into oneDNN's convolution as well.
    """
    if _mkldnn_fusable(conv, norm, x):
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


def _mkldnn_fusable(conv: nn.Conv2d, norm: nn.Module | None, x: torch.Tensor) -> bool:
    """CPU float32 inference without autograd or autocast, in eager mode (torch.compile fuses by itself;
    traced or exported graphs keep the portable operators)."""
    return (
        not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and _mkldnn.available
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and x.dtype == conv.weight.dtype == torch.float32
        and (norm is None or isinstance(norm, FrozenBatchNorm2d))
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
    )


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

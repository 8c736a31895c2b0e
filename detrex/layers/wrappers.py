"""Modules over the building blocks of ``detrex.layers.functional``: Conv2d with an optional norm and activation
(detectron2's layout: ``conv1.weight``, ``conv1.norm.*``) and Dropout; channels-last convolution weights."""

import torch
from torch import nn

from .functional import conv_norm, dropout


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by ``norm`` (a submodule, so its keys are ``<conv>.norm.*``) and ``activation``:
    ``activation(norm(conv(x)))``, computed through ``detrex.layers.functional.conv_norm``."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = conv_norm(x, self, self.norm)
        return x if self.activation is None else self.activation(x)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, no state) computed by ``detrex.layers.functional.dropout``;
    ``inplace`` is ignored."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def conv_weights_channels_last(module: nn.Module) -> nn.Module:
    """Store the weights of ``module``'s 2-d convolutions in channels-last memory format (same shapes and
    values), the layout oneDNN and cuDNN use when the activations are channels-last.

    Otherwise every convolution of a channels-last network copies its weight to that layout, forward and
    backward, and the weight gradient, which comes back channels-last, is copied to the parameter's layout
    when it is accumulated. 1x1 weights get the channels-last strides of their size-1 dimensions too, those
    of the gradients the convolutions return, which DistributedDataParallel compares with its buckets'.
    ``module.to(...)``, optimizers and ``load_state_dict`` keep the layout. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.weight.dim() == 4:
            weight = m.weight.data
            _, c, h, w = weight.shape
            if weight.stride() != (h * w * c, 1, w * c, c):
                m.weight.data = torch.empty_like(weight, memory_format=torch.channels_last).copy_(weight)
    return module

"""ResNet in torchvision's layout (`body.conv1`, `body.bn1`, `body.layer1..4`), as DETR-family code uses it.

The state-dict keys match torchvision's ResNet under a `body.` prefix (no `fc`), so ImageNet files from
download.pytorch.org and official DETR / Anchor-DETR / Conditional-DETR-DC5 checkpoints load key for key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from detrex.layers import FrozenBatchNorm2d, conv_weights_channels_last
from detrex.layers.functional import conv_norm

__all__ = ["TorchvisionResNet"]


class BasicBlock(torchvision.models.resnet.BasicBlock):
    """torchvision's BasicBlock (same modules and keys) computed through ``conv_norm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(conv_norm(x, self.conv1, self.bn1))
        out = conv_norm(out, self.conv2, self.bn2)
        shortcut = x if self.downsample is None else conv_norm(x, *self.downsample)
        return F.relu_(out + shortcut)


class Bottleneck(torchvision.models.resnet.Bottleneck):
    """torchvision's Bottleneck (same modules and keys) computed through ``conv_norm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(conv_norm(x, self.conv1, self.bn1))
        out = F.relu_(conv_norm(out, self.conv2, self.bn2))
        out = conv_norm(out, self.conv3, self.bn3)
        shortcut = x if self.downsample is None else conv_norm(x, *self.downsample)
        return F.relu_(out + shortcut)


# name -> (block, blocks per stage), as torchvision.models.resnet* build them
_ARCHS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}
_STAGES = ("layer1", "layer2", "layer3", "layer4")
_TRAINABLE_STAGES = ("layer2", "layer3", "layer4")  # conv1, bn1 and layer1 stay frozen, as in DETR


@dataclass(frozen=True)
class ShapeSpec:
    """Channels and stride (input pixels per feature pixel) of one backbone output."""

    channels: int
    stride: int


class TorchvisionResNet(nn.Module):
    """torchvision ResNet returning a dict of intermediate features.

    Args:
        name: torchvision constructor name, one of resnet18/34/50/101/152. Weights are never downloaded
            here: ImageNet initialisation comes from `train.init_checkpoint` through the checkpointer.
        train_backbone: if False every parameter is frozen; if True layer2..layer4 train.
        return_layers: torchvision stage name -> output name, e.g. {"layer4": "res5"}.
        dilation: replace the stride of layer4 by dilation (DC5: output stride 16 instead of 32).
        frozen_bn: FrozenBatchNorm2d (fixed statistics and affine, no `num_batches_tracked` key)
            instead of trainable BatchNorm2d. Frozen norms are folded into the convolutions.
        channels_last: run the convolutions in channels-last memory format (NHWC strides; shapes are
            unchanged), the fast layout of oneDNN and cuDNN. Outputs are then channels-last too, and so
            are the stored convolution weights (see ``detrex.layers.conv_weights_channels_last``).
    """

    def __init__(
        self,
        name: str = "resnet50",
        train_backbone: bool = True,
        return_layers: dict[str, str] | None = None,
        dilation: bool = False,
        frozen_bn: bool = True,
        channels_last: bool = True,
    ):
        super().__init__()
        self.channels_last = channels_last
        if name not in _ARCHS:
            raise ValueError(f"TorchvisionResNet: unknown name {name!r}; choose one of {sorted(_ARCHS)}")
        return_layers = {"layer4": "res5"} if return_layers is None else dict(return_layers)
        unknown = sorted(set(return_layers) - set(_STAGES))
        if not return_layers or unknown:
            raise ValueError(
                f"TorchvisionResNet: return_layers keys must be among {list(_STAGES)}, got {sorted(return_layers)}"
            )
        norm_layer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        block, layers = _ARCHS[name]
        resnet = torchvision.models.resnet.ResNet(
            block, layers, replace_stride_with_dilation=[False, False, dilation], norm_layer=norm_layer
        )
        for param_name, param in resnet.named_parameters():
            if not train_backbone or not param_name.startswith(_TRAINABLE_STAGES):
                param.requires_grad_(False)
        # Keeps the modules up to the last requested stage (avgpool and fc are dropped).
        self.body = IntermediateLayerGetter(resnet, return_layers=return_layers)
        if channels_last:
            conv_weights_channels_last(self.body)

        expansion = block.expansion
        self._out_shapes = {}
        stride = 4
        for i, stage in enumerate(_STAGES):
            if i > 0 and not (stage == "layer4" and dilation):
                stride *= 2
            if stage in return_layers:
                self._out_shapes[return_layers[stage]] = ShapeSpec(
                    channels=64 * 2**i * expansion, stride=stride
                )

    def output_shape(self) -> dict[str, ShapeSpec]:
        return dict(self._out_shapes)

    @property
    def num_channels(self) -> int:
        """Channels of the last returned feature (DETR's `backbone.num_channels`)."""
        return list(self._out_shapes.values())[-1].channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) normalised images -> {output name: (B, C, H / stride, W / stride)}."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        body = self.body
        x = body.maxpool(F.relu_(conv_norm(x, body.conv1, body.bn1)))
        outputs = {}
        for stage in _STAGES:
            if not hasattr(body, stage):  # stages after the last returned one are not built
                break
            x = getattr(body, stage)(x)
            if stage in body.return_layers:
                outputs[body.return_layers[stage]] = x
        return outputs

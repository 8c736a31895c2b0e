"""ResNet in detectron2's layout: ``stem.conv1(.norm)``, ``res2`` .. ``res5`` of bottleneck or basic blocks.

Configs build it as detrex does::

    L(ResNet)(
        stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
        stages=L(ResNet.make_default_stages)(depth=50, stride_in_1x1=False, norm="FrozenBN"),
        out_features=["res2", "res3", "res4", "res5"],
        freeze_at=1,
    )
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from detrex.layers import Conv2d, FrozenBatchNorm2d, conv_weights_channels_last, get_norm

BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


class CNNBlockBase(nn.Module):
    """A block with known ``in_channels``, ``out_channels`` and ``stride``, which can be frozen."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> "CNNBlockBase":
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


def _conv(in_ch, out_ch, kernel_size, norm, stride=1, padding=0, dilation=1, groups=1) -> Conv2d:
    conv = Conv2d(
        in_ch, out_ch, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=groups,
        bias=False, norm=get_norm(norm, out_ch),
    )  # fmt: skip
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # detectron2's c2_msra_fill
    return conv


class BasicStem(CNNBlockBase):
    """7x7 conv (stride 2) + norm + ReLU, then 3x3 max pool (stride 2): output stride 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: str = "BN"):
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = _conv(in_channels, out_channels, 7, norm, stride=2, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BasicBlock(CNNBlockBase):
    """Two 3x3 convs with a residual (ResNet-18/34); a 1x1 projection shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm: str = "BN"):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = _conv(in_channels, out_channels, 1, norm, stride=stride)
        self.conv1 = _conv(in_channels, out_channels, 3, norm, stride=stride, padding=1)
        self.conv2 = _conv(out_channels, out_channels, 3, norm, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = self.conv2(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class BottleneckBlock(CNNBlockBase):
    """1x1 -> 3x3 -> 1x1 convs with a residual (ResNet-50/101/152).

    stride_in_1x1: put the stride on the first 1x1 conv (original MSRA models) instead of the 3x3 conv
    (torchvision / Caffe2 models). dilation: dilation (and padding) of the 3x3 conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = _conv(in_channels, out_channels, 1, norm, stride=stride)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv(in_channels, bottleneck_channels, 1, norm, stride=stride_1x1)
        self.conv2 = _conv(
            bottleneck_channels, bottleneck_channels, 3, norm, stride=stride_3x3, padding=dilation,
            dilation=dilation, groups=num_groups,
        )  # fmt: skip
        self.conv3 = _conv(bottleneck_channels, out_channels, 1, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


def make_stage(block_class: type, num_blocks: int, *, in_channels: int, out_channels: int, first_stride: int = 1,
               **block_kwargs) -> list[CNNBlockBase]:  # fmt: skip
    """``num_blocks`` blocks; the first has stride ``first_stride`` and maps in_channels -> out_channels."""
    blocks = []
    for i in range(num_blocks):
        stride = first_stride if i == 0 else 1
        blocks.append(block_class(in_channels, out_channels, stride=stride, **block_kwargs))
        in_channels = out_channels
    return blocks


class ResNet(nn.Module):
    """ResNet returning a dict of the stage outputs named in ``out_features`` ("stem", "res2" .. "res5").

    Args:
        stem: the stem module (e.g. BasicStem).
        stages: list of stages, each a list of blocks (see ``make_default_stages``).
        out_features: names of the returned outputs; stages after the last one requested are not built.
        freeze_at: freeze the stem (1) and the first ``freeze_at - 1`` stages: their parameters stop
            training and their BatchNorms become FrozenBatchNorm2d. 0 freezes nothing.
        channels_last: run the convolutions in channels-last memory format (NHWC strides; shapes are
            unchanged), the fast layout of oneDNN and cuDNN. Outputs are then channels-last too, and so
            are the stored convolution weights (see ``detrex.layers.conv_weights_channels_last``).
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: list[list[CNNBlockBase]],
        out_features: list[str] | None = None,
        freeze_at: int = 0,
        channels_last: bool = True,
    ):
        super().__init__()
        self.stem = stem
        self.channels_last = channels_last
        names = ["res2", "res3", "res4", "res5"][: len(stages)]
        if isinstance(out_features, str):
            raise TypeError(f"ResNet: out_features must be a list of names, got the string {out_features!r}")
        out_features = list(out_features) if out_features is not None else [names[-1]]
        unknown = [f for f in out_features if f not in ["stem", *names]]
        if unknown:
            raise ValueError(f"ResNet: unknown out_features {unknown}; available: {['stem', *names]}")
        num_stages = max([names.index(f) + 1 for f in out_features if f in names], default=0)
        self._out_features = out_features
        self._out_feature_channels = {"stem": stem.out_channels}
        self._out_feature_strides = {"stem": stem.stride}
        self.stage_names = tuple(names[:num_stages])
        stride = stem.stride
        for name, blocks in zip(self.stage_names, stages):
            self.add_module(name, nn.Sequential(*blocks))
            stride *= math.prod(b.stride for b in blocks)
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        self.freeze(freeze_at)
        if channels_last:
            conv_weights_channels_last(self)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) normalised images -> {name: (B, C, H / stride, W / stride)}."""
        outputs = {}
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def output_shape(self) -> dict[str, dict[str, int]]:
        return {
            f: {"channels": self._out_feature_channels[f], "stride": self._out_feature_strides[f]}
            for f in self._out_features
        }

    def freeze(self, freeze_at: int = 0) -> "ResNet":
        if freeze_at >= 1:
            self.stem.freeze()
        for i, name in enumerate(self.stage_names, start=2):
            if freeze_at >= i:
                for block in getattr(self, name):
                    block.freeze()
        return self

    @staticmethod
    def make_default_stages(
        depth: int,
        block_class: type | None = None,
        norm: str = "BN",
        stride_in_1x1: bool = False,
        res5_dilation: int = 1,
        num_groups: int = 1,
        width_per_group: int = 64,
    ) -> list[list[CNNBlockBase]]:
        """The four stages of ResNet-{18, 34, 50, 101, 152}.

        res5_dilation=2 gives detectron2's DC5 variant: res5 keeps stride 1 and dilates the 3x3 convs of all
        its blocks (bottleneck depths only; torchvision's dilated ResNet leaves the first block undilated).
        """
        if depth not in BLOCKS_PER_STAGE:
            raise ValueError(
                f"ResNet.make_default_stages: depth={depth}, expected one of {sorted(BLOCKS_PER_STAGE)}"
            )
        if res5_dilation not in (1, 2):
            raise ValueError(f"ResNet.make_default_stages: res5_dilation={res5_dilation}, expected 1 or 2")
        basic = depth < 50
        if basic and (res5_dilation != 1 or num_groups != 1):
            raise ValueError(f"ResNet-{depth} (basic blocks) supports neither res5_dilation nor num_groups")
        block_class = block_class or (BasicBlock if basic else BottleneckBlock)
        in_channels, out_channels = 64, 64 if basic else 256
        bottleneck = num_groups * width_per_group
        stages = []
        for i, num_blocks in enumerate(BLOCKS_PER_STAGE[depth]):
            dilation = res5_dilation if i == 3 else 1
            first_stride = 1 if i == 0 or dilation == 2 else 2
            kwargs = {"norm": norm}
            if not basic:
                kwargs.update(bottleneck_channels=bottleneck, stride_in_1x1=stride_in_1x1,
                              dilation=dilation, num_groups=num_groups)  # fmt: skip
            stages.append(
                make_stage(
                    block_class,
                    num_blocks,
                    in_channels=in_channels,
                    out_channels=out_channels,
                    first_stride=first_stride,
                    **kwargs,
                )  # fmt: skip
            )
            in_channels, out_channels, bottleneck = out_channels, out_channels * 2, bottleneck * 2
        return stages

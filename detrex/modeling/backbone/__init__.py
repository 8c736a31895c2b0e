"""Backbones: ResNet in detectron2's layout and, when present, TorchvisionResNet in torchvision's layout."""

from .resnet import BasicBlock, BasicStem, BottleneckBlock, CNNBlockBase, ResNet, make_stage

__all__ = ["BasicBlock", "BasicStem", "BottleneckBlock", "CNNBlockBase", "ResNet", "make_stage"]

try:  # written in parallel by another contributor; the detectron2-layout ResNet works without it
    from .torchvision_resnet import TorchvisionResNet  # noqa: F401

    __all__.append("TorchvisionResNet")
except ImportError:
    pass

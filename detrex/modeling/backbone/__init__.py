"""Backbones: ResNet in detectron2's layout and TorchvisionResNet in torchvision's layout."""

from .resnet import BasicBlock, BasicStem, BottleneckBlock, CNNBlockBase, ResNet, make_stage
from .torchvision_resnet import TorchvisionResNet

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "CNNBlockBase",
    "ResNet",
    "TorchvisionResNet",
    "make_stage",
]

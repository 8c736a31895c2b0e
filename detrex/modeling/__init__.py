"""Backbones, matcher, criterion and the meta-architecture base shared by the DETR-family projects."""

from .backbone import BasicBlock, BasicStem, BottleneckBlock, ResNet, make_stage
from .criterion import SetCriterion, sigmoid_focal_loss
from .detr_detector import DETRDetector
from .matcher import HungarianMatcher
from .postprocessing import detector_postprocess

__all__ = [
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "DETRDetector",
    "HungarianMatcher",
    "ResNet",
    "SetCriterion",
    "detector_postprocess",
    "make_stage",
    "sigmoid_focal_loss",
]

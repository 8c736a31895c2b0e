from detrex.config import LazyCall as L
from detrex.modeling.backbone import TorchvisionResNet

from .conditional_detr_r50 import model

# DC5: torchvision-layout ResNet whose last stage is dilated (output stride 16), as the official code
model.backbone = L(TorchvisionResNet)(
    name="resnet50",
    train_backbone=True,
    return_layers={"layer4": "res5"},
    dilation=True,
)

from .conditional_detr_r50_50ep import dataloader, lr_multiplier, optimizer, train  # noqa: F401
from .models.conditional_detr_r50_dc5 import model  # noqa: F401

model.backbone.name = "resnet101"
train.init_checkpoint = "https://download.pytorch.org/models/resnet101-63fe2227.pth"
train.output_dir = "./output/conditional_detr_r101_dc5_50ep"

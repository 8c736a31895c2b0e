from .conditional_detr_r50_50ep import dataloader, lr_multiplier, optimizer, train  # noqa: F401
from .models.conditional_detr_r50_dc5 import model  # noqa: F401

train.init_checkpoint = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
train.output_dir = "./output/conditional_detr_r50_dc5_50ep"

from .conditional_detr_r50_50ep import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.stages.depth = 101
# torchvision's ImageNet ResNet-101 (as the official code); the loader maps it into the detectron2 layout
train.init_checkpoint = "https://download.pytorch.org/models/resnet101-63fe2227.pth"
train.output_dir = "./output/conditional_detr_r101_50ep"

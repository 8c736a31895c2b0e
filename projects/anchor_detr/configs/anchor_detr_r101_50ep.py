from .anchor_detr_r50_50ep import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.name = "resnet101"
train.init_checkpoint = "https://download.pytorch.org/models/resnet101-63fe2227.pth"  # torchvision ImageNet
train.output_dir = "./output/anchor_detr_r101_50ep"

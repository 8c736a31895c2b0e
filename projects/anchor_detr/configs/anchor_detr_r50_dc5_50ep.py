from .anchor_detr_r50_50ep import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.dilation = True  # DC5: layer4 dilated, stride 16
train.output_dir = "./output/anchor_detr_r50_dc5_50ep"

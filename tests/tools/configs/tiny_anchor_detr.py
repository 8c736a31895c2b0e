# An Anchor-DETR small enough for CPU tool tests (ResNet-18, 32-dim transformer, 4 anchors x 2 patterns).
from detrex.config import get_config

from ....projects.anchor_detr.configs.anchor_detr_r50_50ep import (  # noqa: F401  (re-exported config parts)
    lr_multiplier,
    model,
    optimizer,
    train,
)

dataloader = get_config("common/data/synthetic.py").dataloader

model.backbone.name = "resnet18"
model.in_channels = 512
model.embed_dim = 32
model.num_classes = 5
model.transformer.num_heads = 2
model.transformer.num_encoder_layers = 1
model.transformer.num_decoder_layers = 2
model.transformer.dim_feedforward = 64
model.transformer.num_query_position = 4
model.transformer.num_query_pattern = 2
model.select_box_nums_for_evaluation = 8

dataloader.train.dataset.names = "tools_shapes_train"
dataloader.test.dataset.names = "tools_shapes_val"
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0
dataloader.test.mapper.augmentation[0].short_edge_length = 128
dataloader.test.mapper.augmentation[0].max_size = 160

train.device = "cpu"
train.init_checkpoint = ""
train.output_dir = "./output/tiny_anchor_detr"

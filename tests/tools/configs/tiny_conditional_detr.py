# A Conditional-DETR small enough for CPU tool tests (ResNet-18, 32-dim transformer, 10 queries) on the
# tiny synthetic splits that tests/tools/conftest.py registers ("tools_shapes_train/val").
from detrex.config import get_config

from ....projects.conditional_detr.configs.conditional_detr_r50_50ep import (  # noqa: F401  (re-exported config parts)
    lr_multiplier,
    model,
    optimizer,
    train,
)

dataloader = get_config("common/data/synthetic.py").dataloader

model.backbone.stages.depth = 18
model.in_channels = 512  # res5 of ResNet-18
model.embed_dim = 32
model.position_embedding.num_pos_feats = 16  # embed_dim / 2
model.transformer.encoder.num_layers = 1
model.transformer.decoder.num_layers = 2
model.transformer.encoder.num_heads = 2
model.transformer.decoder.num_heads = 2
model.transformer.encoder.feedforward_dim = 64
model.transformer.decoder.feedforward_dim = 64
model.num_queries = 10
model.num_classes = 5
model.select_box_nums_for_evaluation = 10

dataloader.train.dataset.names = "tools_shapes_train"
dataloader.test.dataset.names = "tools_shapes_val"
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0
dataloader.test.mapper.augmentation[0].short_edge_length = 128
dataloader.test.mapper.augmentation[0].max_size = 160

train.device = "cpu"
train.init_checkpoint = ""
train.output_dir = "./output/tiny_conditional_detr"

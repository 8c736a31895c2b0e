# A tiny Conditional-DETR (ResNet-18, 2+2 layers of width 32) on 16 synthetic-shapes images:
# the end-to-end test config of tools/train_net.py. Trains a few CPU iterations in seconds.
import detrex.data.transforms as T
from detrex.config import LazyCall as L
from detrex.data import DatasetCatalog
from detrex.data.datasets.synthetic import register_synthetic_shapes

from ....configs.common.data.synthetic import dataloader
from ....projects.conditional_detr.configs.conditional_detr_r50_50ep import (
    lr_multiplier,  # noqa: F401
    model,
    optimizer,
    train,
)

# generated on first load under $DETREX_DATASETS/synthetic_shapes/tiny_{train,val}
for _name, _subdir, _num_images, _seed in (
    ("tiny_shapes_train", "tiny_train", 16, 0),
    ("tiny_shapes_val", "tiny_val", 8, 1),
):
    if _name not in DatasetCatalog:
        register_synthetic_shapes(_name, _subdir, _num_images, _seed)

model.backbone.stages.depth = 18
model.backbone.out_features = ["res5"]
model.in_channels = 512
model.embed_dim = 32
model.position_embedding.num_pos_feats = 16  # embed_dim / 2
for _part in (model.transformer.encoder, model.transformer.decoder):
    _part.num_heads = 2
    _part.feedforward_dim = 64
    _part.num_layers = 2
model.num_classes = 5
model.num_queries = 10
model.select_box_nums_for_evaluation = 10

_small = [
    L(T.RandomFlip)(),
    L(T.ResizeShortestEdge)(short_edge_length=(64, 80, 96), max_size=128, sample_style="choice"),
]
dataloader.train.dataset.names = "tiny_shapes_train"
dataloader.train.mapper.augmentation = _small
dataloader.train.mapper.augmentation_with_crop = None
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "tiny_shapes_val"
dataloader.test.mapper.augmentation = [L(T.ResizeShortestEdge)(short_edge_length=96, max_size=128)]
dataloader.test.num_workers = 0

train.init_checkpoint = ""
train.output_dir = "./output/tiny_conditional_detr"
train.device = "cpu"
train.seed = 42
train.max_iter = 8
train.checkpointer.period = 4
train.eval_period = 8
train.log_period = 1
optimizer.lr = 2e-4

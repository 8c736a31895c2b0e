# An Anchor-DETR small enough to train from scratch on 2 CPU cores (the synthetic-shapes quickstart):
# a narrow ResNet-18-style backbone with trainable BatchNorm (detectron2 layout), stride-16 features,
# a 128-dim transformer with 2 encoder and 3 decoder layers, 10 anchor points x 3 patterns.
from detrex.config import LazyCall as L
from detrex.modeling.backbone import BasicBlock, BasicStem, ResNet, make_stage

from .anchor_detr_r50 import model

model.backbone = L(ResNet)(
    # No ImageNet weights offline: every layer trains, so norms are trainable BN, nothing is frozen.
    stem=L(BasicStem)(in_channels=3, out_channels=32, norm="BN"),
    stages=[
        L(make_stage)(block_class=BasicBlock, num_blocks=2, in_channels=32, out_channels=32, norm="BN"),
        L(make_stage)(
            block_class=BasicBlock, num_blocks=2, in_channels=32, out_channels=64, first_stride=2, norm="BN"
        ),
        L(make_stage)(
            block_class=BasicBlock, num_blocks=2, in_channels=64, out_channels=128, first_stride=2, norm="BN"
        ),
    ],
    out_features=["res4"],  # stride 16: 7-12 feature pixels per side on the quickstart's 112-192 px inputs
    freeze_at=0,
)
model.in_features = ["res4"]
model.in_channels = 128
model.embed_dim = 128
model.num_classes = 5
model.transformer.num_heads = 8
model.transformer.num_encoder_layers = 2
model.transformer.num_decoder_layers = 3
model.transformer.dim_feedforward = 512
model.transformer.num_query_position = 10  # images hold at most 5 shapes
model.transformer.num_query_pattern = 3  # 30 queries
model.select_box_nums_for_evaluation = 100

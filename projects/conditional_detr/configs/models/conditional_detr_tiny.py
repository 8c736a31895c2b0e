# A Conditional-DETR small enough to train from scratch on 2 CPU cores (the synthetic-shapes quickstart):
# a narrow ResNet-18-style backbone with trainable BatchNorm, stride-16 features, a 128-dim transformer
# with 2 encoder and 3 decoder layers, 30 queries. Everything else is the R50 model's.
from detrex.config import LazyCall as L
from detrex.modeling.backbone import BasicBlock, BasicStem, ResNet, make_stage

from .conditional_detr_r50 import model

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
    out_features=["res4"],  # stride 16: 10-16 feature pixels per side on 160-256 px images
    freeze_at=0,
)
model.in_features = ["res4"]
model.in_channels = 128
model.embed_dim = 128
model.position_embedding.num_pos_feats = 64  # embed_dim / 2 per axis
model.transformer.encoder.num_layers = 2
model.transformer.encoder.feedforward_dim = 512
model.transformer.encoder.attn_dropout = 0.0  # no dropout: it only slows a few-minute schedule down
model.transformer.encoder.ffn_dropout = 0.0
model.transformer.decoder.num_layers = 3
model.transformer.decoder.feedforward_dim = 512
model.transformer.decoder.attn_dropout = 0.0
model.transformer.decoder.ffn_dropout = 0.0
model.num_classes = 5
model.num_queries = 30  # images hold at most 5 shapes
model.select_box_nums_for_evaluation = 100

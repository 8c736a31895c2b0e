# An Anchor-DETR small enough to train from scratch on 2 CPU cores (the synthetic-shapes quickstart):
# the narrow ResNet-18-style backbone of configs/common/models/resnet_tiny.py (trainable BN, stride 16),
# a 128-dim transformer with 2 encoder and 3 decoder layers, 10 anchor points x 3 patterns.
from detrex.config import get_config

from .anchor_detr_r50 import model

model.backbone = get_config("common/models/resnet_tiny.py").backbone  # stride 16, 128 channels
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

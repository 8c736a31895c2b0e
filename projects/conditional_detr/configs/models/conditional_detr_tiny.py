# A Conditional-DETR small enough to train from scratch on 2 CPU cores (the synthetic-shapes quickstart):
# the narrow ResNet-18-style backbone of configs/common/models/resnet_tiny.py, a 128-dim transformer
# with 2 encoder and 3 decoder layers, 30 queries. Everything else is the R50 model's.
from detrex.config import get_config

from .conditional_detr_r50 import model

model.backbone = get_config("common/models/resnet_tiny.py").backbone  # stride 16, 128 channels
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

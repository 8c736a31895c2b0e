"""Layers shared by the DETR-family projects: box ops, position embeddings, MLP / FFN, attention blocks,
frozen batch norm and conv wrappers."""

from .attention import MultiheadAttention, multi_head_attention
from .batch_norm import FrozenBatchNorm2d, get_norm
from .box_ops import box_area, box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh, generalized_box_iou
from .dropout import Dropout, relu_dropout
from .misc import inverse_sigmoid
from .mlp import FFN, MLP, linear_activation_dropout
from .position_embedding import PositionEmbeddingSine, get_sine_pos_embed
from .transformer import TransformerEncoderLayer, get_clones
from .wrappers import Conv2d, conv_norm_forward, conv_weights_channels_last, linear

__all__ = [
    "Conv2d",
    "Dropout",
    "FFN",
    "FrozenBatchNorm2d",
    "MLP",
    "MultiheadAttention",
    "PositionEmbeddingSine",
    "TransformerEncoderLayer",
    "box_area",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "box_xyxy_to_cxcywh",
    "conv_norm_forward",
    "conv_weights_channels_last",
    "relu_dropout",
    "generalized_box_iou",
    "get_clones",
    "get_norm",
    "get_sine_pos_embed",
    "inverse_sigmoid",
    "linear",
    "linear_activation_dropout",
    "multi_head_attention",
]

"""Layers shared by the DETR-family projects: box ops, position embeddings, MLP / FFN, attention, frozen batch
norm and conv wrappers. ``detrex.layers.functional`` holds the building blocks they compute with."""

from . import functional
from .attention import MultiheadAttention
from .batch_norm import FrozenBatchNorm2d, get_norm
from .box_ops import box_area, box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh, generalized_box_iou
from .misc import inverse_sigmoid
from .mlp import FFN, MLP
from .position_embedding import PositionEmbeddingSine, get_sine_pos_embed
from .transformer import TransformerEncoderLayer, get_clones
from .wrappers import Conv2d, Dropout, conv_weights_channels_last

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
    "conv_weights_channels_last",
    "functional",
    "generalized_box_iou",
    "get_clones",
    "get_norm",
    "get_sine_pos_embed",
    "inverse_sigmoid",
]

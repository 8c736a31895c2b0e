"""Conditional-DETR: model, transformer and conditional attentions."""

from .attention import ConditionalCrossAttention, ConditionalSelfAttention
from .conditional_detr import ConditionalDETR
from .transformer import (
    ConditionalDetrTransformer,
    ConditionalDetrTransformerDecoder,
    ConditionalDetrTransformerDecoderLayer,
    ConditionalDetrTransformerEncoder,
)

__all__ = [
    "ConditionalCrossAttention",
    "ConditionalDETR",
    "ConditionalDetrTransformer",
    "ConditionalDetrTransformerDecoder",
    "ConditionalDetrTransformerDecoderLayer",
    "ConditionalDetrTransformerEncoder",
    "ConditionalSelfAttention",
]

"""Anchor-DETR: the meta-architecture, its transformer and row-column decoupled attention."""

from .anchor_detr import AnchorDETR
from .anchor_detr_transformer import AnchorDETRTransformer
from .row_column_decoupled_attention import MultiheadRCDA

__all__ = ["AnchorDETR", "AnchorDETRTransformer", "MultiheadRCDA"]

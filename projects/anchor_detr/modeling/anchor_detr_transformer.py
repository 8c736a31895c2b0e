"""Anchor-DETR's transformer: RCDA encoder, decoder queries = anchor points x patterns, shared heads.

Module and parameter names follow the official implementation (megvii-research/AnchorDETR), so its
checkpoints load with only the input projection renamed (see detrex/checkpoint/converters/anchor_detr.py).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from detrex.layers import MLP, Dropout, inverse_sigmoid, linear, linear_activation_dropout

from .position_encoding import mask_to_positions, sine_embed_1d, sine_embed_2d
from .row_column_decoupled_attention import MultiheadRCDA

__all__ = ["AnchorDETRTransformer"]

_ATTENTION_TYPES = ("RCDA", "nn.MultiheadAttention")
_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _build_attention(attention_type: str, embed_dim: int, num_heads: int, dropout: float) -> nn.Module:
    if attention_type == "RCDA":
        return MultiheadRCDA(embed_dim, num_heads, dropout=dropout)
    return nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout)


class ResidualFFN(nn.Module):
    """x -> norm2(x + linear2(act(linear1(x)))), with the official parameter names."""

    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: float, activation: str):
        super().__init__()
        self.linear1 = nn.Linear(embed_dim, feedforward_dim)
        self.activation = _ACTIVATIONS[activation]
        self.dropout2 = Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_dim, embed_dim)
        self.dropout3 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = linear_activation_dropout(x, self.linear1, self.activation, self.dropout2)
        y = linear(h, self.linear2.weight, self.linear2.bias)  # F.linear, on the CPU maybe a 1x1 convolution
        return self.norm2(x + self.dropout3(y))


class AnchorDETREncoderLayer(nn.Module):
    """Post-norm self-attention over the feature map (RCDA or full 2-D attention), then the FFN."""

    def __init__(self, embed_dim, num_heads, feedforward_dim, dropout, activation, attention_type):
        super().__init__()
        self.attention_type = attention_type
        self.self_attn = _build_attention(attention_type, embed_dim, num_heads, dropout)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.ffn = ResidualFFN(embed_dim, feedforward_dim, dropout, activation)

    def forward(self, src, pad_mask, pos_row=None, pos_col=None, pos_2d=None):
        """src: (B, H, W, E); pad_mask: (B, H, W); pos_row: (B, 1, W, E), pos_col: (B, H, 1, E) for RCDA,
        pos_2d: (B, H, W, E) for nn.MultiheadAttention."""
        b, h, w, e = src.shape
        if self.attention_type == "RCDA":
            k_row, k_col = src + pos_row, src + pos_col  # (B, H, W, E) each
            out = self.self_attn(
                k_row.reshape(b, h * w, e), k_col.reshape(b, h * w, e), k_row, k_col, src, pad_mask
            )
        else:
            qk = (src + pos_2d).reshape(b, h * w, e).transpose(0, 1)  # (HW, B, E)
            v = src.reshape(b, h * w, e).transpose(0, 1)
            mask = pad_mask.reshape(b, h * w)
            out = self.self_attn(qk, qk, v, key_padding_mask=mask, need_weights=False)[0].transpose(0, 1)
        src = self.norm1(src + self.dropout1(out.reshape(b, h, w, e)))
        return self.ffn(src)


class AnchorDETRDecoderLayer(nn.Module):
    """Self-attention among queries, cross-attention to the memory (RCDA or 2-D), then the FFN."""

    def __init__(self, embed_dim, num_heads, feedforward_dim, dropout, activation, attention_type):
        super().__init__()
        self.attention_type = attention_type
        self.cross_attn = _build_attention(attention_type, embed_dim, num_heads, dropout)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout)
        self.dropout2 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ffn = ResidualFFN(embed_dim, feedforward_dim, dropout, activation)

    def forward(self, tgt, memory, pad_mask, query_pos, query_pos_x, query_pos_y, pos_row, pos_col, pos_2d):
        """tgt: (B, Q, E); memory: (B, H, W, E); query_pos: (B, Q, E) from the 2-D anchor embedding;
        query_pos_x/_y: (B, Q, E) from its x / y coordinate (RCDA only)."""
        qk = (tgt + query_pos).transpose(0, 1)  # (Q, B, E)
        out = self.self_attn(qk, qk, tgt.transpose(0, 1), need_weights=False)[0].transpose(0, 1)
        tgt = self.norm2(tgt + self.dropout2(out))

        if self.attention_type == "RCDA":
            k_row, k_col = memory + pos_row, memory + pos_col
            out = self.cross_attn(tgt + query_pos_x, tgt + query_pos_y, k_row, k_col, memory, pad_mask)
        else:
            b, h, w, e = memory.shape
            k = (memory + pos_2d).reshape(b, h * w, e).transpose(0, 1)  # (HW, B, E)
            v = memory.reshape(b, h * w, e).transpose(0, 1)
            q = (tgt + query_pos).transpose(0, 1)
            mask = pad_mask.reshape(b, h * w)
            out = self.cross_attn(q, k, v, key_padding_mask=mask, need_weights=False)[0].transpose(0, 1)
        tgt = self.norm1(tgt + self.dropout1(out))
        return self.ffn(tgt)


class AnchorDETRTransformer(nn.Module):
    """Encoder + decoder of Anchor-DETR, with the class and box heads (shared by all decoder layers).

    Queries are `num_query_pattern` pattern embeddings x `num_query_position` anchor points; each query's
    positional embedding comes from its anchor point, and its box is predicted relative to that point.

    Args:
        embed_dim, num_heads, num_encoder_layers, num_decoder_layers, dim_feedforward: sizes.
        dropout: every dropout of the transformer (attention weights, residual branches, FFN).
        activation: "relu" or "gelu" in the FFNs.
        num_feature_levels: only 1 (a single backbone level) is implemented.
        num_query_position: anchor points; with spatial_prior="grid" they form a round(sqrt(n))^2 grid.
        num_query_pattern: pattern embeddings; queries = patterns x anchor points.
        spatial_prior: "learned" (anchor points are parameters, `position.weight`) or "grid" (fixed).
        attention_type: "RCDA" or "nn.MultiheadAttention" in the encoder and decoder cross-attention.
        num_classes: rows of the class head.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.0,
        activation: str = "relu",
        num_feature_levels: int = 1,
        num_query_position: int = 300,
        num_query_pattern: int = 3,
        spatial_prior: str = "learned",
        attention_type: str = "RCDA",
        num_classes: int = 80,
    ):
        super().__init__()
        if num_feature_levels != 1:
            raise NotImplementedError(
                f"AnchorDETRTransformer: num_feature_levels={num_feature_levels}; only single-level features "
                "(num_feature_levels=1, as in all published Anchor-DETR models) are implemented."
            )
        if attention_type not in _ATTENTION_TYPES:
            raise ValueError(
                f"AnchorDETRTransformer: attention_type={attention_type!r}, expected one of {_ATTENTION_TYPES}"
            )
        if spatial_prior not in ("learned", "grid"):
            raise ValueError(
                f"AnchorDETRTransformer: spatial_prior={spatial_prior!r}, expected 'learned' or 'grid'"
            )
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"AnchorDETRTransformer: activation={activation!r}, expected one of {list(_ACTIVATIONS)}"
            )
        self.embed_dim = e = embed_dim
        self.attention_type = attention_type
        self.spatial_prior = spatial_prior
        self.num_layers = num_decoder_layers
        self.num_classes = num_classes

        layer_args = (embed_dim, num_heads, dim_feedforward, dropout, activation, attention_type)
        encoder_layer = AnchorDETREncoderLayer(*layer_args)
        self.encoder_layers = nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_encoder_layers))
        decoder_layer = AnchorDETRDecoderLayer(*layer_args)
        self.decoder_layers = nn.ModuleList(copy.deepcopy(decoder_layer) for _ in range(num_decoder_layers))

        self.num_pattern = num_query_pattern
        self.pattern = nn.Embedding(num_query_pattern, embed_dim)
        if spatial_prior == "learned":
            self.num_position = num_query_position
            self.position = nn.Embedding(num_query_position, 2)
        else:
            self.num_position = round(math.sqrt(num_query_position)) ** 2
        # Sine embeddings of (x, y) and of one coordinate -> positional embeddings (shared by all layers).
        self.adapt_pos2d = nn.Sequential(nn.Linear(e, e), nn.ReLU(), nn.Linear(e, e))
        self.adapt_pos1d = nn.Sequential(nn.Linear(e, e), nn.ReLU(), nn.Linear(e, e))

        class_embed = nn.Linear(embed_dim, num_classes)
        bbox_embed = MLP(embed_dim, embed_dim, 4, 3)
        self._init_heads(class_embed, bbox_embed)
        # One module registered once per decoder layer: checkpoints hold L identical copies, and loading
        # them writes into the same tensors, so the heads stay shared.
        self.class_embed = nn.ModuleList([class_embed] * num_decoder_layers)
        self.bbox_embed = nn.ModuleList([bbox_embed] * num_decoder_layers)

    def _init_heads(self, class_embed: nn.Linear, bbox_embed: nn.Module):
        nn.init.constant_(class_embed.bias, -math.log((1 - 0.01) / 0.01))  # prior probability 0.01
        nn.init.zeros_(bbox_embed.layers[-1].weight)
        nn.init.zeros_(bbox_embed.layers[-1].bias)
        nn.init.constant_(bbox_embed.layers[-1].bias[2:], -2.0)  # initial w, h = sigmoid(-2) = 0.12
        if self.spatial_prior == "learned":
            nn.init.uniform_(self.position.weight, 0.0, 1.0)

    def anchor_points(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """(B, P * N, 2) normalised (x, y) of every query: the N anchor points repeated for each pattern."""
        if self.spatial_prior == "learned":
            points = self.position.weight
        else:
            n = round(math.sqrt(self.num_position))
            centers = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
            xs, ys = torch.meshgrid(centers, centers, indexing="ij")  # x varies slowest, as in the reference
            points = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)
        return points.unsqueeze(0).repeat(batch_size, self.num_pattern, 1)

    def forward(self, features: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (B, E, H, W) projected backbone map; pad_mask: (B, H, W) bool, True on padding.
        Returns class logits (L, B, Q, num_classes) and boxes (L, B, Q, 4) normalised cxcywh, per decoder
        layer, with Q = num_query_pattern x num_query_position."""
        b, e, h, w = features.shape
        pos_y, pos_x = mask_to_positions(pad_mask)  # (B, H), (B, W)
        if self.attention_type == "RCDA":
            pos_row = self.adapt_pos1d(sine_embed_1d(pos_x, e))[:, None]  # (B, 1, W, E)
            pos_col = self.adapt_pos1d(sine_embed_1d(pos_y, e))[:, :, None]  # (B, H, 1, E)
            pos_2d = None
        else:
            grid = torch.stack([pos_x[:, None, :].expand(b, h, w), pos_y[:, :, None].expand(b, h, w)], dim=-1)
            pos_2d = self.adapt_pos2d(sine_embed_2d(grid, e // 2))  # (B, H, W, E)
            pos_row = pos_col = None

        memory = features.permute(0, 2, 3, 1)  # (B, H, W, E)
        for layer in self.encoder_layers:
            memory = layer(memory, pad_mask, pos_row, pos_col, pos_2d)

        points = self.anchor_points(b, features.device)  # (B, Q, 2)
        tgt = self.pattern.weight[None, :, None, :].repeat(b, 1, self.num_position, 1).reshape(b, -1, e)
        query_pos = self.adapt_pos2d(sine_embed_2d(points, e // 2))  # (B, Q, E)
        query_pos_x = query_pos_y = None
        if self.attention_type == "RCDA":
            query_pos_x = self.adapt_pos1d(sine_embed_1d(points[..., 0], e))
            query_pos_y = self.adapt_pos1d(sine_embed_1d(points[..., 1], e))
        reference = inverse_sigmoid(points)

        classes, boxes = [], []
        for layer, class_embed, bbox_embed in zip(self.decoder_layers, self.class_embed, self.bbox_embed):
            tgt = layer(tgt, memory, pad_mask, query_pos, query_pos_x, query_pos_y, pos_row, pos_col, pos_2d)
            delta = bbox_embed(tgt)  # (B, Q, 4): centre offsets in logit space relative to the anchor, w, h
            boxes.append(torch.cat([delta[..., :2] + reference, delta[..., 2:]], dim=-1).sigmoid())
            classes.append(class_embed(tgt))
        return torch.stack(classes), torch.stack(boxes)

"""Anchor-DETR's transformer: RCDA encoder, decoder queries = anchor points x patterns, shared heads.

Module and parameter names follow the official implementation (megvii-research/AnchorDETR), so its
checkpoints load with only the input projection renamed (see detrex/checkpoint/converters/anchor_detr.py).
All tensors are batch-first.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from detrex.layers import MLP, Dropout, get_clones, get_sine_pos_embed, inverse_sigmoid

from .row_column_decoupled_attention import MultiheadRCDA

__all__ = ["AnchorDETRTransformer"]

ATTENTION_TYPES = ("RCDA", "nn.MultiheadAttention")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def build_attention(attention_type: str, embed_dim: int, num_heads: int, dropout: float) -> nn.Module:
    if attention_type == "RCDA":
        return MultiheadRCDA(embed_dim, num_heads, dropout=dropout)
    return nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)


class ResidualFFN(nn.Module):
    """x -> norm2(x + linear2(activation(linear1(x)))), with dropout after the activation and the output."""

    def __init__(self, embed_dim: int, feedforward_dim: int, dropout: float, activation: str):
        super().__init__()
        self.linear1 = nn.Linear(embed_dim, feedforward_dim)
        self.activation = ACTIVATIONS[activation]()
        self.dropout2 = Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_dim, embed_dim)
        self.dropout3 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear2(self.dropout2(self.activation(self.linear1(x))))
        return self.norm2(x + self.dropout3(y))


class AnchorDETREncoderLayer(nn.Module):
    """Post-norm self-attention over the feature map (RCDA or full 2-D attention), then the FFN."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        feedforward_dim: int,
        dropout: float,
        activation: str,
        attention_type: str,
    ):
        super().__init__()
        self.attention_type = attention_type
        self.self_attn = build_attention(attention_type, embed_dim, num_heads, dropout)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.ffn = ResidualFFN(embed_dim, feedforward_dim, dropout, activation)

    def forward(self, src: torch.Tensor, pad_mask: torch.Tensor, pos: dict) -> torch.Tensor:
        """src: (B, H, W, E); pad_mask: (B, H, W); pos: the positional embeddings of
        ``AnchorDETRTransformer.pixel_positions``."""
        if self.attention_type == "RCDA":
            k_row, k_col = src + pos["row"], src + pos["col"]  # (B, H, W, E) each
            out = self.self_attn(k_row.flatten(1, 2), k_col.flatten(1, 2), k_row, k_col, src, pad_mask)
        else:
            qk = (src + pos["2d"]).flatten(1, 2)  # (B, HW, E)
            mask = pad_mask.flatten(1)
            out = self.self_attn(qk, qk, src.flatten(1, 2), key_padding_mask=mask, need_weights=False)[0]
        src = self.norm1(src + self.dropout1(out.reshape(src.shape)))
        return self.ffn(src)


class AnchorDETRDecoderLayer(nn.Module):
    """Self-attention among queries, cross-attention to the memory (RCDA or 2-D), then the FFN."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        feedforward_dim: int,
        dropout: float,
        activation: str,
        attention_type: str,
    ):
        super().__init__()
        self.attention_type = attention_type
        self.cross_attn = build_attention(attention_type, embed_dim, num_heads, dropout)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.self_attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=dropout, batch_first=True)
        self.dropout2 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ffn = ResidualFFN(embed_dim, feedforward_dim, dropout, activation)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pad_mask: torch.Tensor, query_pos: dict, pos: dict
    ) -> torch.Tensor:
        """tgt: (B, Q, E); memory: (B, H, W, E); query_pos: the anchor points' embeddings (``"2d"``, and
        ``"x"`` / ``"y"`` for RCDA), each (B, Q, E); pos: the pixels' embeddings, as in the encoder."""
        q = tgt + query_pos["2d"]
        tgt = self.norm2(tgt + self.dropout2(self.self_attn(q, q, tgt, need_weights=False)[0]))

        if self.attention_type == "RCDA":
            k_row, k_col = memory + pos["row"], memory + pos["col"]
            out = self.cross_attn(tgt + query_pos["x"], tgt + query_pos["y"], k_row, k_col, memory, pad_mask)
        else:
            k = (memory + pos["2d"]).flatten(1, 2)  # (B, HW, E)
            mask = pad_mask.flatten(1)
            q = tgt + query_pos["2d"]
            out = self.cross_attn(q, k, memory.flatten(1, 2), key_padding_mask=mask, need_weights=False)[0]
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
        for key, value, choices in [
            ("attention_type", attention_type, ATTENTION_TYPES),
            ("spatial_prior", spatial_prior, ("learned", "grid")),
            ("activation", activation, tuple(ACTIVATIONS)),
        ]:
            if value not in choices:
                raise ValueError(f"AnchorDETRTransformer: {key}={value!r}, expected one of {choices}")
        self.embed_dim = e = embed_dim
        self.attention_type = attention_type
        self.spatial_prior = spatial_prior
        self.num_layers = num_decoder_layers
        self.num_classes = num_classes

        layer_args = dict(
            embed_dim=embed_dim,
            num_heads=num_heads,
            feedforward_dim=dim_feedforward,
            dropout=dropout,
            activation=activation,
            attention_type=attention_type,
        )
        self.encoder_layers = get_clones(AnchorDETREncoderLayer(**layer_args), num_encoder_layers)
        self.decoder_layers = get_clones(AnchorDETRDecoderLayer(**layer_args), num_decoder_layers)

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
        nn.init.constant_(class_embed.bias, -math.log((1 - 0.01) / 0.01))  # prior probability 0.01
        nn.init.zeros_(bbox_embed.layers[-1].weight)
        nn.init.zeros_(bbox_embed.layers[-1].bias)
        nn.init.constant_(bbox_embed.layers[-1].bias[2:], -2.0)  # initial w, h = sigmoid(-2) = 0.12
        if spatial_prior == "learned":
            nn.init.uniform_(self.position.weight, 0.0, 1.0)
        # One module registered once per decoder layer: checkpoints hold L identical copies, and loading
        # them writes into the same tensors, so the heads stay shared.
        self.class_embed = nn.ModuleList([class_embed] * num_decoder_layers)
        self.bbox_embed = nn.ModuleList([bbox_embed] * num_decoder_layers)

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

    def sine_1d(self, coordinate: torch.Tensor) -> torch.Tensor:
        """(...) normalised coordinates -> (..., E) through the shared 1-D adapter."""
        return self.adapt_pos1d(get_sine_pos_embed(coordinate[..., None], self.embed_dim, exchange_xy=False))

    def sine_2d(self, points: torch.Tensor) -> torch.Tensor:
        """(..., 2) normalised (x, y) -> (..., E): the y then x sine embedding through the 2-D adapter."""
        return self.adapt_pos2d(get_sine_pos_embed(points, self.embed_dim // 2))

    def pixel_positions(self, pad_mask: torch.Tensor) -> dict:
        """Positional embeddings of the feature pixels. Pixel centres are normalised by the unpadded extent,
        read down the first column and along the first row, as in the reference (padded pixels repeat the
        last value). RCDA: "row" (B, 1, W, E) from x, "col" (B, H, 1, E) from y; 2-D attention: "2d"
        (B, H, W, E)."""
        valid = ~pad_mask
        y = valid[:, :, 0].cumsum(1, dtype=torch.float32)  # (B, H)
        x = valid[:, 0, :].cumsum(1, dtype=torch.float32)  # (B, W)
        y, x = (y - 0.5) / y[:, -1:], (x - 0.5) / x[:, -1:]
        if self.attention_type == "RCDA":
            return {"row": self.sine_1d(x)[:, None], "col": self.sine_1d(y)[:, :, None]}
        b, h, w = pad_mask.shape
        grid = torch.stack([x[:, None, :].expand(b, h, w), y[:, :, None].expand(b, h, w)], dim=-1)
        return {"2d": self.sine_2d(grid)}

    def forward(self, features: torch.Tensor, pad_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features: (B, E, H, W) projected backbone map; pad_mask: (B, H, W) bool, True on padding.
        Returns class logits (L, B, Q, num_classes) and boxes (L, B, Q, 4) normalised cxcywh, per decoder
        layer, with Q = num_query_pattern x num_query_position."""
        b, e = features.shape[:2]
        pos = self.pixel_positions(pad_mask)
        memory = features.permute(0, 2, 3, 1)  # (B, H, W, E)
        for layer in self.encoder_layers:
            memory = layer(memory, pad_mask, pos)

        points = self.anchor_points(b, features.device)  # (B, Q, 2)
        tgt = self.pattern.weight[None, :, None, :].repeat(b, 1, self.num_position, 1).reshape(b, -1, e)
        query_pos = {"2d": self.sine_2d(points)}  # (B, Q, E)
        if self.attention_type == "RCDA":
            query_pos.update(x=self.sine_1d(points[..., 0]), y=self.sine_1d(points[..., 1]))
        reference = inverse_sigmoid(points)

        classes, boxes = [], []
        for layer, class_embed, bbox_embed in zip(self.decoder_layers, self.class_embed, self.bbox_embed):
            tgt = layer(tgt, memory, pad_mask, query_pos, pos)
            delta = bbox_embed(tgt)  # (B, Q, 4): centre offsets in logit space relative to the anchor, w, h
            boxes.append(torch.cat([delta[..., :2] + reference, delta[..., 2:]], dim=-1).sigmoid())
            classes.append(class_embed(tgt))
        return torch.stack(classes), torch.stack(boxes)

"""Conditional-DETR's encoder (DETR's post-norm encoder) and decoder (conditional spatial queries)."""

import torch
from torch import nn

from detrex.layers import FFN, MLP, TransformerEncoderLayer, get_sine_pos_embed

from .attention import ConditionalCrossAttention, ConditionalSelfAttention


class ConditionalDetrTransformerEncoder(nn.Module):
    """``num_layers`` post-norm DETR encoder layers; padded pixels are masked as keys in every layer."""

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        attn_dropout: float = 0.1,
        feedforward_dim: int = 2048,
        ffn_dropout: float = 0.1,
        activation: nn.Module | None = None,
        num_layers: int = 6,
        post_norm: bool = False,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                embed_dim, num_heads, feedforward_dim, attn_dropout, ffn_dropout, activation
            )
            for _ in range(num_layers)
        )
        self.post_norm_layer = nn.LayerNorm(embed_dim) if post_norm else None

    def forward(self, x: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
        """x, pos: (B, HW, C); key_padding_mask: (B, HW) -> memory (B, HW, C)."""
        for layer in self.layers:
            x = layer(x, pos, key_padding_mask)
        return x if self.post_norm_layer is None else self.post_norm_layer(x)


class ConditionalDetrTransformerDecoderLayer(nn.Module):
    """Self-attention, conditional cross-attention and FFN, each followed by residual + LayerNorm.

    Parameters keep detrex's names: ``attentions.0`` (self), ``attentions.1`` (cross), ``ffns.0``,
    ``norms.0-2``. ``attn_dropout`` drops attention weights and attention outputs; ``ffn_dropout`` the FFN's.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        feedforward_dim: int,
        attn_dropout: float,
        ffn_dropout: float,
        activation: nn.Module | None,
        is_first: bool,
    ):
        super().__init__()
        self.attentions = nn.ModuleList(
            [
                ConditionalSelfAttention(embed_dim, num_heads, attn_dropout, attn_dropout),
                ConditionalCrossAttention(
                    embed_dim, num_heads, attn_dropout, attn_dropout, use_query_pos_proj=is_first
                ),
            ]
        )
        self.ffns = nn.ModuleList(
            [FFN(embed_dim, feedforward_dim, activation=activation, ffn_drop=ffn_dropout)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(embed_dim) for _ in range(3)])

    def forward(self, query, memory, query_pos, key_pos, query_sine_embed, key_padding_mask):
        query = self.norms[0](query + self.attentions[0](query, query_pos))
        cross = self.attentions[1](query, memory, query_pos, key_pos, query_sine_embed, key_padding_mask)
        query = self.norms[1](query + cross)
        return self.norms[2](query + self.ffns[0](query))


class ConditionalDetrTransformerDecoder(nn.Module):
    """Decoder whose cross-attention uses conditional spatial queries.

    Reference points s = sigmoid(ref_point_head(query_pos)) (B, Q, 2) are fixed for all layers. Layer i's
    spatial query is sine(s) (y then x, C channels), multiplied element-wise by query_scale(decoder
    embedding) for i > 0 (the paper's lambda_q). Returns the embeddings of every layer (after
    ``post_norm_layer``) and the reference points.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        attn_dropout: float = 0.1,
        feedforward_dim: int = 2048,
        ffn_dropout: float = 0.1,
        activation: nn.Module | None = None,
        num_layers: int = 6,
        post_norm: bool = True,
        return_intermediate: bool = True,
    ):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.return_intermediate = return_intermediate
        self.layers = nn.ModuleList(
            ConditionalDetrTransformerDecoderLayer(
                embed_dim,
                num_heads,
                feedforward_dim,
                attn_dropout,
                ffn_dropout,
                activation,
                is_first=(i == 0),
            )
            for i in range(num_layers)
        )
        self.query_scale = MLP(embed_dim, embed_dim, embed_dim, 2)
        self.ref_point_head = MLP(embed_dim, embed_dim, 2, 2)
        self.post_norm_layer = nn.LayerNorm(embed_dim) if post_norm else None

    def forward(self, query, memory, query_pos, key_pos, key_padding_mask):
        """query, query_pos: (B, Q, C); memory, key_pos: (B, HW, C); key_padding_mask: (B, HW).
        Returns hidden states (L, B, Q, C) (L = 1 without return_intermediate) and references (B, Q, 2)."""
        reference_points = self.ref_point_head(query_pos).sigmoid()  # (B, Q, 2): normalised (x, y)
        sine_embed = get_sine_pos_embed(reference_points, num_pos_feats=self.embed_dim // 2)  # (B, Q, C)
        hidden_states = []
        for i, layer in enumerate(self.layers):
            query_sine_embed = sine_embed if i == 0 else sine_embed * self.query_scale(query)
            query = layer(query, memory, query_pos, key_pos, query_sine_embed, key_padding_mask)
            hidden_states.append(query if self.post_norm_layer is None else self.post_norm_layer(query))
        if not self.return_intermediate:
            hidden_states = hidden_states[-1:]
        return torch.stack(hidden_states), reference_points


class ConditionalDetrTransformer(nn.Module):
    """Encoder + decoder. The decoder starts from zero embeddings with the learned queries as positions."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.embed_dim = encoder.embed_dim
        for p in self.parameters():  # as the references initialise it
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, features, mask, query_embed, pos_embed):
        """features, pos_embed: (B, C, H, W); mask: (B, H, W), True on padding; query_embed: (Q, C).
        Returns hidden states (L, B, Q, C) and reference points (B, Q, 2)."""
        bs = features.shape[0]
        x = features.flatten(2).transpose(1, 2)  # (B, HW, C)
        pos = pos_embed.flatten(2).transpose(1, 2)  # (B, HW, C)
        mask = mask.flatten(1)  # (B, HW)
        memory = self.encoder(x, pos, mask)
        query_pos = query_embed.unsqueeze(0).expand(bs, -1, -1)  # (B, Q, C)
        query = torch.zeros_like(query_pos)
        return self.decoder(query, memory, query_pos, pos, mask)

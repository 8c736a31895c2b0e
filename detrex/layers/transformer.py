"""Transformer building blocks shared by the DETR-family projects."""

import copy

import torch
from torch import nn

from .attention import MultiheadAttention
from .mlp import FFN


def get_clones(module: nn.Module, n: int) -> nn.ModuleList:
    """``n`` independent deep copies of ``module``."""
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


class TransformerEncoderLayer(nn.Module):
    """Post-norm DETR encoder layer: self-attention (position embedding added to queries and keys), then FFN.

    Parameters keep detrex's checkpoint names: ``attentions.0`` (MultiheadAttention), ``ffns.0`` (FFN),
    ``norms.0`` / ``norms.1`` (LayerNorm after the attention / FFN residual). ``attn_dropout`` drops
    attention weights and the attention output before the residual; ``ffn_dropout`` is the FFN's dropout.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        feedforward_dim: int = 2048,
        attn_dropout: float = 0.1,
        ffn_dropout: float = 0.1,
        activation: nn.Module | None = None,
    ):
        super().__init__()
        self.attentions = nn.ModuleList(
            [MultiheadAttention(embed_dim, num_heads, attn_drop=attn_dropout, proj_drop=attn_dropout)]
        )
        self.ffns = nn.ModuleList(
            [FFN(embed_dim, feedforward_dim, activation=activation, ffn_drop=ffn_dropout)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(embed_dim) for _ in range(2)])

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x, pos: (B, HW, C); key_padding_mask: (B, HW), True on padded pixels."""
        attn = self.attentions[0](x, x, x, query_pos=pos, key_pos=pos, key_padding_mask=key_padding_mask)
        x = self.norms[0](x + attn)
        return self.norms[1](x + self.ffns[0](x))

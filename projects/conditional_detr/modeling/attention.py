"""Conditional-DETR's decoder attentions (Meng et al., ICCV 2021).

The cross-attention concatenates, per head, a content part and a spatial part of queries and keys:
query = [content_q ; spatial_q] with spatial_q the conditional spatial query (a sine embedding of the
reference point, scaled by the decoder embedding), key = [content_k ; positional embedding of the pixel].
Batch-first tensors: (B, N, C).
"""

import torch
from torch import nn

from detrex.layers import Dropout
from detrex.layers.functional import attention


class ConditionalSelfAttention(nn.Module):
    """Decoder self-attention with separate content and position projections for queries and keys:
    q = Wqc x + Wqp p, k = Wkc x + Wkp p, v = Wv x (x: decoder embeddings, p: query position)."""

    def __init__(self, embed_dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.query_content_proj = nn.Linear(embed_dim, embed_dim)
        self.query_pos_proj = nn.Linear(embed_dim, embed_dim)
        self.key_content_proj = nn.Linear(embed_dim, embed_dim)
        self.key_pos_proj = nn.Linear(embed_dim, embed_dim)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.num_heads = num_heads
        self.attn_drop = nn.Dropout(attn_drop)  # its p is passed to the attention block
        self.proj_drop = Dropout(proj_drop)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        """query, query_pos: (B, Q, C) -> (B, Q, C), the attention branch (no residual)."""
        q = self.query_content_proj(query) + self.query_pos_proj(query_pos)
        k = self.key_content_proj(query) + self.key_pos_proj(query_pos)
        v = self.value_proj(query)
        dropout_p = self.attn_drop.p if self.training else 0.0
        out = attention(q, k, v, self.num_heads, dropout_p=dropout_p)
        return self.proj_drop(self.out_proj(out))


class ConditionalCrossAttention(nn.Module):
    """Decoder cross-attention to the encoder memory with content and spatial parts concatenated per head.

    Each head compares [content ; spatial] queries with [content ; position] keys (width 2C / h per head,
    logits scaled by (2C / h) ** -0.5) and averages C / h-wide values. Only the first decoder layer adds the
    query position (``query_pos_proj``) to the content query, and the key position to the content key.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        use_query_pos_proj: bool = True,
    ):
        super().__init__()
        self.query_content_proj = nn.Linear(embed_dim, embed_dim)
        self.query_pos_proj = nn.Linear(embed_dim, embed_dim) if use_query_pos_proj else None
        self.query_pos_sine_proj = nn.Linear(embed_dim, embed_dim)
        self.key_content_proj = nn.Linear(embed_dim, embed_dim)
        self.key_pos_proj = nn.Linear(embed_dim, embed_dim)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.num_heads = num_heads
        self.attn_drop = nn.Dropout(attn_drop)  # its p is passed to the attention block
        self.proj_drop = Dropout(proj_drop)

    def project(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
        query_sine_embed: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-head queries (B, Q, h, 2d) and keys (B, HW, h, 2d), content in the first d channels of each
        head and spatial in the last d, and the values (B, HW, C)."""
        bs, n_q, _ = query.shape
        n_k, heads = memory.shape[1], self.num_heads
        q = self.query_content_proj(query)
        k = self.key_content_proj(memory)
        v = self.value_proj(memory)
        k_pos = self.key_pos_proj(key_pos)
        if self.query_pos_proj is not None:  # first decoder layer
            q = q + self.query_pos_proj(query_pos)
            k = k + k_pos
        q_sine = self.query_pos_sine_proj(query_sine_embed)
        q = torch.cat([q.view(bs, n_q, heads, -1), q_sine.view(bs, n_q, heads, -1)], dim=-1)  # (B, Q, h, 2d)
        k = torch.cat([k.view(bs, n_k, heads, -1), k_pos.view(bs, n_k, heads, -1)], dim=-1)  # (B, HW, h, 2d)
        return q, k, v

    def forward(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
        query_sine_embed: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query, query_pos, query_sine_embed: (B, Q, C); memory, key_pos: (B, HW, C);
        key_padding_mask: (B, HW), True on padded pixels -> (B, Q, C), the attention branch (no residual)."""
        bs, n_q, c = query.shape
        n_k = memory.shape[1]
        q, k, v = self.project(query, memory, query_pos, key_pos, query_sine_embed)
        dropout_p = self.attn_drop.p if self.training else 0.0
        q, k = q.view(bs, n_q, 2 * c), k.view(bs, n_k, 2 * c)  # (B, N, h * 2d): heads side by side
        out = attention(q, k, v, self.num_heads, key_padding_mask, dropout_p=dropout_p)
        return self.proj_drop(self.out_proj(out))

    def attention_maps(
        self,
        query: torch.Tensor,
        memory: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
        query_sine_embed: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The attention weights of ``forward`` (same arguments) and their two parts, per head, each
        (B, h, Q, HW) and exactly zero on padded keys:

            content = softmax(q_content . k_content / sqrt(2d))
            spatial = softmax(q_spatial . k_pos / sqrt(2d))       (the conditional spatial query's part)
            full    = softmax((q_content . k_content + q_spatial . k_pos) / sqrt(2d))   (what forward uses)

        so that, per head and query, full is content * spatial renormalised over the keys. No dropout.
        """
        q, k, _ = self.project(query, memory, query_pos, key_pos, query_sine_embed)
        d = q.shape[-1] // 2
        scale = (2 * d) ** -0.5
        content = torch.einsum("bqhd,bkhd->bhqk", q[..., :d], k[..., :d]) * scale  # (B, h, Q, HW)
        spatial = torch.einsum("bqhd,bkhd->bhqk", q[..., d:], k[..., d:]) * scale
        logits = {"spatial": spatial, "content": content, "full": content + spatial}
        if key_padding_mask is not None:
            pad = key_padding_mask[:, None, None, :]  # (B, 1, 1, HW)
            logits = {name: x.masked_fill(pad, float("-inf")) for name, x in logits.items()}  # no weight
        return {name: x.softmax(-1) for name, x in logits.items()}

"""Row-column decoupled attention (RCDA), Anchor-DETR's memory-saving replacement for 2-D attention.

A query attends to the W columns of a feature map with one softmax (keys averaged over rows) and to the
H rows with another (keys averaged over columns); the weight of pixel (h, w) is the product of the two,
so the (Q x H x W) attention map is never materialised: per head the cost is Q x (H + W) weights plus a
Q x min(H, W) x d intermediate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detrex.layers.functional import dropout

__all__ = ["MultiheadRCDA"]


class MultiheadRCDA(nn.Module):
    """Multi-head RCDA. Parameters keep the official names: `in_proj_weight` (5E x E) stacks the
    row-query, column-query, row-key, column-key and value projections; `out_proj` is a Linear.

    Args:
        embed_dim: E, split into `num_heads` heads of E / num_heads channels.
        num_heads: number of attention heads.
        dropout: dropout on both attention-weight maps (training only).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"MultiheadRCDA: embed_dim={embed_dim} is not divisible by num_heads={num_heads}"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(5 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(5 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self._reset_parameters()

    def _reset_parameters(self):
        nn.init.xavier_uniform_(self.in_proj_weight)  # fan over all 5E rows, like nn.MultiheadAttention
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _project(self, x: torch.Tensor, index: int) -> torch.Tensor:
        e = self.embed_dim
        w = self.in_proj_weight[index * e : (index + 1) * e]
        b = self.in_proj_bias[index * e : (index + 1) * e]
        return F.linear(x, w, b)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, E) -> (B * h, N, d)"""
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2).reshape(b * self.num_heads, n, -1)

    def logits(
        self,
        query_row: torch.Tensor,
        query_col: torch.Tensor,
        key_row: torch.Tensor,
        key_col: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scaled logits of the x-softmax (B*h, Q, W) and of the y-softmax (B*h, Q, H), -inf on the
        padded columns / rows (see ``forward`` for the arguments)."""
        heads = self.num_heads
        scaling = float(self.head_dim) ** -0.5
        q_row = self._split_heads(self._project(query_row, 0) * scaling)  # (B*h, Q, d)
        q_col = self._split_heads(self._project(query_col, 1) * scaling)
        # Averaging commutes with the affine projection; averaging first saves two (HW x E x E) matmuls.
        k_row = self._split_heads(self._project(key_row.mean(1), 2))  # (B*h, W, d): one key per column
        k_col = self._split_heads(self._project(key_col.mean(2), 3))  # (B*h, H, d): one key per row
        attn_x = torch.bmm(q_row, k_row.transpose(1, 2))  # (B*h, Q, W)
        attn_y = torch.bmm(q_col, k_col.transpose(1, 2))  # (B*h, Q, H)
        if key_padding_mask is not None:
            pad_x = key_padding_mask[:, 0, :].repeat_interleave(heads, dim=0)  # (B*h, W), from the first row
            pad_y = key_padding_mask[:, :, 0].repeat_interleave(heads, dim=0)  # (B*h, H), from the first col
            attn_x = attn_x.masked_fill(pad_x[:, None, :], float("-inf"))  # padded columns get no weight
            attn_y = attn_y.masked_fill(pad_y[:, None, :], float("-inf"))
        return attn_x, attn_y

    def forward(
        self,
        query_row: torch.Tensor,
        query_col: torch.Tensor,
        key_row: torch.Tensor,
        key_col: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        query_row, query_col: (B, Q, E) queries for the column (x) and row (y) softmax.
        key_row, key_col, value: (B, H, W, E) feature maps.
        key_padding_mask: (B, H, W) bool, True on padding. As in the reference, the x-softmax masks the
            columns padded in the first row and the y-softmax the rows padded in the first column; keys
            are averaged over all rows / columns, padded ones included.
        Returns (B, Q, E).
        """
        bsz, num_q, e = query_row.shape
        _, h, w, _ = value.shape
        heads, d = self.num_heads, self.head_dim

        attn_x, attn_y = self.logits(query_row, query_col, key_row, key_col, key_padding_mask)
        v = self._project(value, 4).view(bsz, h, w, heads, d)
        v = v.permute(0, 3, 1, 2, 4).reshape(bsz * heads, h, w, d)  # (B*h, H, W, d)
        attn_x = dropout(attn_x.softmax(-1), self.dropout, self.training)
        attn_y = dropout(attn_y.softmax(-1), self.dropout, self.training)

        # out[q] = sum_h attn_y[q, h] * sum_w attn_x[q, w] * v[h, w]; contract the longer side first so the
        # intermediate is (B*h, Q, min(H, W), d).
        if h < w:
            v_cols = v.transpose(1, 2).reshape(bsz * heads, w, h * d)
            per_row = torch.bmm(attn_x, v_cols).view(bsz * heads, num_q, h, d)  # (B*h, Q, H, d)
            out = torch.einsum("nqh,nqhd->nqd", attn_y, per_row)  # (B*h, Q, d)
        else:
            per_col = torch.bmm(attn_y, v.reshape(bsz * heads, h, w * d)).view(bsz * heads, num_q, w, d)
            out = torch.einsum("nqw,nqwd->nqd", attn_x, per_col)  # (B*h, Q, d)
        out = out.view(bsz, heads, num_q, d).transpose(1, 2).reshape(bsz, num_q, e)
        return self.out_proj(out)

    def attention_maps(
        self,
        query_row: torch.Tensor,
        query_col: torch.Tensor,
        key_row: torch.Tensor,
        key_col: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The attention weights of ``forward`` (same arguments), per head, without dropout: "row", the
        x-softmax over the W columns (B, h, Q, 1, W); "column", the y-softmax over the H rows (B, h, Q, H, 1);
        "product", their product (B, h, Q, H, W), the weight that pixel (y, x) gets. Each sums to 1 over the
        unpadded positions and is exactly zero on padded columns / rows."""
        bsz, num_q, _ = query_row.shape
        _, h, w, _ = key_row.shape
        attn_x, attn_y = self.logits(query_row, query_col, key_row, key_col, key_padding_mask)
        row = attn_x.softmax(-1).view(bsz, self.num_heads, num_q, 1, w)
        column = attn_y.softmax(-1).view(bsz, self.num_heads, num_q, h, 1)
        return {"row": row, "column": column, "product": column * row}

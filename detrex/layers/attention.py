"""Multi-head attention with position embeddings and key padding masks.

All tensors are batch-first: (B, N, C). A key padding mask is (B, N_keys) bool, True on padded keys;
padded keys get exactly zero attention weight.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .functional import attention
from .wrappers import Dropout


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention``'s parameters (as ``attn``, checkpoint keys ``attn.in_proj_weight`` ...) used
    with position embeddings added to query and key (not to the value), and dropout on the output.

    ``forward`` returns the attention branch only; the caller adds the residual::

        q = (query + query_pos) Wq,  k = (key + key_pos) Wk,  v = value Wv
        out = proj_drop(attention(q, k, v) Wo)      # detrex.layers.functional.attention
    """

    def __init__(self, embed_dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=attn_drop, batch_first=True)
        self.proj_drop = Dropout(proj_drop)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        query_pos: torch.Tensor | None = None,
        key_pos: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        attn, e = self.attn, self.attn.embed_dim
        w_q, w_k, w_v = attn.in_proj_weight.split(e)
        b_q, b_k, b_v = attn.in_proj_bias.split(e)
        q = F.linear(query if query_pos is None else query + query_pos, w_q, b_q)
        k = F.linear(key if key_pos is None else key + key_pos, w_k, b_k)
        v = F.linear(value, w_v, b_v)
        dropout_p = attn.dropout if self.training else 0.0
        out = attention(q, k, v, attn.num_heads, key_padding_mask, dropout_p=dropout_p)
        return self.proj_drop(attn.out_proj(out))

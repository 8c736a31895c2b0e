"""Multi-head attention with position embeddings and key padding masks.

All tensors are batch-first: (B, N, C). A key padding mask is (B, N_keys) bool, True on padded keys;
padded keys get exactly zero attention weight.
"""

import torch
import torch.nn.functional as F
from torch import nn


def multi_head_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_heads: int,
    key_padding_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Scaled dot-product attention over ``num_heads`` heads of already-projected q, k, v.

    q (B, Nq, h * dq), k (B, Nk, h * dq), v (B, Nk, h * dv) -> (B, Nq, h * dv); logits are scaled by
    dq ** -0.5 (the per-head width of q and k, which may differ from that of v).
    """
    bs, n_q, _ = q.shape
    n_k = k.shape[1]
    q = q.view(bs, n_q, num_heads, -1).transpose(1, 2)  # (B, h, Nq, dq)
    k = k.view(bs, n_k, num_heads, -1).transpose(1, 2)  # (B, h, Nk, dq)
    v = v.view(bs, n_k, num_heads, -1).transpose(1, 2)  # (B, h, Nk, dv)
    attend = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True: may attend
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(bs, n_q, -1)  # (B, Nq, h * dv)


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (as ``attn``, checkpoint keys ``attn.in_proj_weight`` ...) that adds
    position embeddings to query and key (not to the value) and applies dropout to its output.

    forward returns the attention branch only; the caller adds the residual.
    """

    def __init__(self, embed_dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads, dropout=attn_drop, batch_first=True)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        query_pos: torch.Tensor | None = None,
        key_pos: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = query if query_pos is None else query + query_pos
        k = key if key_pos is None else key + key_pos
        out = self.attn(
            q, k, value, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False
        )
        return self.proj_drop(out[0])

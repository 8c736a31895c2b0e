"""Multi-head attention with position embeddings and key padding masks.

All tensors are batch-first: (B, N, C). A key padding mask is (B, N_keys) bool, True on padded keys;
padded keys get exactly zero attention weight.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout, apply_keep_mask, dropout_keep_mask, keep_factors


class _DropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + bias) with dropout, times v: the CPU training path with dropout > 0.

    scaled_dot_product_attention falls back to its math path there, whose autograd keeps three float
    copies of the (B, h, Nq, Nk) weights (probabilities, dropout noise, dropped weights). This keeps the
    probabilities and the bool dropout mask only (the softmax backward needs the probabilities of dropped
    entries too). Both scale factors are applied to the narrow tensors (q, the output, the output's
    gradient), not to the (B, h, Nq, Nk) ones: fewer passes over memory, the same maths up to rounding.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, p):
        q = q * q.shape[-1] ** -0.5
        logits = torch.matmul(q, k.transpose(-2, -1))  # (B, h, Nq, Nk)
        if bias is not None:
            logits.add_(bias)  # -inf on padded keys
        probs = torch.softmax(logits, dim=-1)
        del logits
        keep = dropout_keep_mask(probs, p)
        out = torch.matmul(apply_keep_mask(probs, keep), v).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, v, probs, keep)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, probs, keep = ctx.saved_tensors  # q already scaled
        scale = q.shape[-1] ** -0.5
        grad_out = grad_out * (1.0 / (1.0 - ctx.p))
        kept = keep_factors(keep, probs.dtype)  # converted once for both uses below
        grad_v = torch.matmul((probs * kept).transpose(-2, -1), grad_out)
        grad_probs = torch.matmul(grad_out, v.transpose(-2, -1)).mul_(kept)
        del kept
        grad_logits = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        del grad_probs
        grad_q = torch.matmul(grad_logits, k).mul_(scale)
        grad_k = torch.matmul(grad_logits.transpose(-2, -1), q)
        return grad_q, grad_k, grad_v, None, None


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
    if dropout_p > 0 and q.device.type == "cpu" and torch.is_grad_enabled() and not _autocast(q):
        bias = None
        if key_padding_mask is not None:  # (B, 1, 1, Nk): -inf on padded keys
            bias = torch.zeros(key_padding_mask.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill_(key_padding_mask, float("-inf"))[:, None, None, :]
        out = _DropoutAttention.apply(q, k, v, bias, dropout_p)
    else:
        attend = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True: attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(bs, n_q, -1)  # (B, Nq, h * dv)


def _autocast(x: torch.Tensor) -> bool:
    return torch.is_autocast_enabled(x.device.type)


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (as ``attn``, checkpoint keys ``attn.in_proj_weight`` ...) that adds
    position embeddings to query and key (not to the value) and applies dropout to its output.

    The projections are computed here from ``attn``'s parameters, followed by ``multi_head_attention``:
    the same maths as calling ``attn``, with one matrix product for query and key when both are the same
    tensor plus the same position (self-attention). forward returns the attention branch only; the caller
    adds the residual.
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
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        q = query if query_pos is None else query + query_pos
        if attn_mask is not None:  # not used by the DETR-family layers: nn.MultiheadAttention handles it
            k = key if key_pos is None else key + key_pos
            out = self.attn(
                q, k, value, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False
            )
            return self.proj_drop(out[0])
        attn, e = self.attn, self.attn.embed_dim
        w_qk, w_v = attn.in_proj_weight.split([2 * e, e])
        b_qk, b_v = attn.in_proj_bias.split([2 * e, e])
        if key is query and key_pos is query_pos:  # self-attention: q and k from one (N, C) x (C, 2C) product
            q, k = F.linear(q, w_qk, b_qk).chunk(2, dim=-1)
        else:
            k = key if key_pos is None else key + key_pos
            q, k = F.linear(q, w_qk[:e], b_qk[:e]), F.linear(k, w_qk[e:], b_qk[e:])
        v = F.linear(value, w_v, b_v)
        dropout_p = attn.dropout if self.training else 0.0
        out = multi_head_attention(q, k, v, attn.num_heads, key_padding_mask, dropout_p=dropout_p)
        return self.proj_drop(attn.out_proj(out))

"""Attention with dropout on the CPU, keeping the probabilities and a bool mask only (kernel
"dropout_attention")."""

import torch

from .dropout import apply_keep_mask, keep_factors, keep_mask


class DropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(d) + bias) with dropout, times v, per head: q, k (B, h, N, d), v (B, h, Nk, dv),
    bias (B, 1, 1, Nk) or None. The scales are applied to the narrow tensors (q, the output and its
    gradient) rather than to the (B, h, Nq, Nk) weights."""

    @staticmethod
    def forward(ctx, q, k, v, bias, p):
        q = q * q.shape[-1] ** -0.5
        logits = torch.matmul(q, k.transpose(-2, -1))  # (B, h, Nq, Nk)
        if bias is not None:
            logits.add_(bias)  # -inf on padded keys
        probs = torch.softmax(logits, dim=-1)
        del logits
        keep = keep_mask(probs, p)
        out = torch.matmul(apply_keep_mask(probs, keep), v).mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, v, probs, keep)
        ctx.p = p
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, probs, keep = ctx.saved_tensors  # q already scaled
        grad_out = grad_out * (1.0 / (1.0 - ctx.p))
        kept = keep_factors(keep, probs.dtype)
        grad_v = torch.matmul((probs * kept).transpose(-2, -1), grad_out)
        grad_probs = torch.matmul(grad_out, v.transpose(-2, -1)).mul_(kept)
        del kept
        grad_logits = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        del grad_probs
        grad_q = torch.matmul(grad_logits, k).mul_(q.shape[-1] ** -0.5)
        grad_k = torch.matmul(grad_logits.transpose(-2, -1), q)
        return grad_q, grad_k, grad_v, None, None

"""Kernel "dropout_attention": the same maths as attention with the same mask; what it saves."""

import torch
from torch.testing import assert_close

from detrex.layers import MultiheadAttention, cpu_kernels
from detrex.layers.cpu_kernels.attention import DropoutAttention
from detrex.layers.functional import attention


def test_equals_the_reference_and_gradcheck(fixed_masks):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, d, dtype=torch.float64, generator=g) for n, d in ((5, 4), (7, 4), (7, 6)))
    bias = torch.zeros(2, 1, 1, 7, dtype=torch.float64)
    bias[1, ..., 5:] = float("-inf")  # the last two keys of image 1 are padding
    out = DropoutAttention.apply(q, k, v, bias, 0.3)
    probs = (q @ k.transpose(-1, -2) / 2.0 + bias).softmax(-1)
    assert_close(out, (probs * fixed_masks[probs.shape] / 0.7) @ v)
    inputs = tuple(t.requires_grad_(True) for t in (q, k, v))
    assert torch.autograd.gradcheck(lambda q, k, v: DropoutAttention.apply(q, k, v, bias, 0.3), inputs)


def test_the_block_takes_the_kernel_with_padding_masks(fixed_masks):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, n, 8, generator=g, requires_grad=True) for n in (5, 7, 7))
    mask = torch.tensor([[False] * 7, [False] * 5 + [True] * 2])
    with cpu_kernels.use_cpu_kernels(["dropout_attention"]):
        out = attention(q, k, v, num_heads=2, key_padding_mask=mask, dropout_p=0.3)
    assert type(out.grad_fn).__name__ != "DropoutAttentionBackward"  # a reshape follows the kernel
    qh, kh, vh = (t.view(2, -1, 2, 4).transpose(1, 2) for t in (q, k, v))
    logits = qh @ kh.transpose(-1, -2) / 2.0
    logits = logits.masked_fill(mask[:, None, None], float("-inf"))
    probs = logits.softmax(-1)
    expected = (probs * fixed_masks[probs.shape] / 0.7) @ vh
    assert_close(out, expected.transpose(1, 2).reshape(2, 5, 8))


def test_training_saves_probabilities_and_a_bool_mask_only():
    """With dropout, the kernel keeps 5 bytes per attention weight for the backward (float probabilities,
    bool mask); scaled_dot_product_attention's CPU path keeps three float copies."""
    torch.manual_seed(0)
    attn = MultiheadAttention(embed_dim=16, num_heads=2, attn_drop=0.1, proj_drop=0.1).train()
    x, pos = torch.randn(2, 50, 16), torch.randn(2, 50, 16)
    for enabled in (True, False):
        saved = []
        with cpu_kernels.use_cpu_kernels(enabled):
            with torch.autograd.graph.saved_tensors_hooks(lambda t, s=saved: s.append(t) or t, lambda t: t):
                attn(x, x, x, query_pos=pos, key_pos=pos)
        kept = sorted(str(t.dtype) for t in saved if tuple(t.shape) == (2, 2, 50, 50))
        if enabled:
            assert kept == ["torch.bool", "torch.float32"]
        else:
            assert kept.count("torch.float32") >= 2

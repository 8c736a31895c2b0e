"""detrex.layers.functional.attention on the GPU, where it calls scaled_dot_product_attention with a padding
mask: a fused kernel runs (not the math fallback; which one is recorded), and padded keys get no weight:
changing them changes neither the output nor the gradients of the other keys, and their own gradients
are exactly zero."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from detrex.layers.functional import attention

pytestmark = pytest.mark.cuda

SDPA_KERNELS = {
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
}


class SdpaKernels(TorchDispatchMode):
    """Records which fused attention kernels run (none: the math path, plain matmuls and softmax)."""

    def __init__(self):
        super().__init__()
        self.kernels: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SDPA_KERNELS:
            self.kernels.add(SDPA_KERNELS[name])
        return func(*args, **(kwargs or {}))


# (queries, keys, heads, q/k width per head, v width per head): Conditional-DETR's encoder self-attention
# on a 25x38 feature map and its decoder cross-attention (content and spatial query concatenated)
SHAPES = {"encoder": (950, 950, 8, 32, 32), "cross_attention": (300, 950, 8, 64, 32)}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"]
)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_padded_keys_get_no_weight_in_the_fused_kernel(shape, dtype, dropout, record_property):
    n_q, n_k, heads, d_qk, d_v = SHAPES[shape]
    generator = torch.Generator(device="cuda").manual_seed(0)

    def randn(*size):
        return torch.randn(*size, device="cuda", generator=generator).to(dtype)

    q, k, v = randn(2, n_q, heads * d_qk), randn(2, n_k, heads * d_qk), randn(2, n_k, heads * d_v)
    pad = torch.zeros(2, n_k, dtype=torch.bool, device="cuda")
    pad[1, 600:] = True  # image 1: the last 350 keys are padding
    changed_k, changed_v = k.clone(), v.clone()
    changed_k[pad] = 30 * randn(int(pad.sum()), heads * d_qk)
    changed_v[pad] = 30 * randn(int(pad.sum()), heads * d_v)

    outputs, grads, kernels = [], [], SdpaKernels()
    for keys, values in ((k, v), (changed_k, changed_v)):
        keys, values = keys.clone().requires_grad_(), values.clone().requires_grad_()
        torch.manual_seed(0)  # the same dropout mask both times
        with kernels:
            out = attention(q, keys, values, heads, key_padding_mask=pad, dropout_p=dropout)
            out.float().square().sum().backward()
        outputs.append(out)
        grads.append((keys.grad, values.grad))
    record_property(
        "sdpa_backend", f"{shape} {dtype} dropout={dropout}: {sorted(kernels.kernels) or ['math']}"
    )

    assert kernels.kernels, "scaled_dot_product_attention fell back to its math path"
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=0)
    for (gk, gv), (gk_changed, gv_changed) in zip(grads[:1], grads[1:]):
        assert gk[pad].abs().max() == 0 and gv[pad].abs().max() == 0
        assert gk_changed[pad].abs().max() == 0 and gv_changed[pad].abs().max() == 0
        torch.testing.assert_close(gk_changed[~pad], gk[~pad], rtol=0, atol=0)
        torch.testing.assert_close(gv_changed[~pad], gv[~pad], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_masked_attention_equals_attention_over_the_unpadded_keys(dtype):
    n_q, n_k, heads, d_qk, d_v = SHAPES["cross_attention"]
    generator = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(2, n_q, heads * d_qk, device="cuda", generator=generator)
    k = torch.randn(2, n_k, heads * d_qk, device="cuda", generator=generator)
    v = torch.randn(2, n_k, heads * d_v, device="cuda", generator=generator)
    pad = torch.zeros(2, n_k, dtype=torch.bool, device="cuda")
    pad[1, 600:] = True
    out = attention(q.to(dtype), k.to(dtype), v.to(dtype), heads, key_padding_mask=pad)
    for i, valid in enumerate((n_k, 600)):  # reference: float64 attention over image i's real keys only
        qi = q[i].double().view(n_q, heads, d_qk).transpose(0, 1)
        ki = k[i, :valid].double().view(valid, heads, d_qk).transpose(0, 1)
        vi = v[i, :valid].double().view(valid, heads, d_v).transpose(0, 1)
        weights = torch.softmax(qi @ ki.transpose(1, 2) / d_qk**0.5, dim=-1)
        expected = (weights @ vi).transpose(0, 1).reshape(n_q, heads * d_v)
        atol = 2e-3 if dtype == torch.float32 else 2e-2  # fp32: the fused kernel may multiply in TF32
        torch.testing.assert_close(out[i].double(), expected, rtol=0, atol=atol)

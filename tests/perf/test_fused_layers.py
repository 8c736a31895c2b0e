"""The fast paths of detrex.layers compute the same maths as the plain PyTorch modules they replace:
frozen-norm folding (training and oneDNN-fused inference), bool-mask dropout, the dropout attention and
the fused ReLU + dropout of the FFN."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import detrex.layers.attention as attention_module
import detrex.layers.dropout as dropout_module
import detrex.layers.wrappers as wrappers
from detrex.layers import (
    FFN,
    Conv2d,
    FrozenBatchNorm2d,
    MultiheadAttention,
    conv_norm_forward,
    linear_activation_dropout,
)


def _frozen_norm(channels: int, seed: int = 0) -> FrozenBatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    norm = FrozenBatchNorm2d(channels)
    norm.weight.copy_(torch.rand(channels, generator=g) + 0.5)
    norm.bias.copy_(torch.randn(channels, generator=g) * 0.1)
    norm.running_mean.copy_(torch.randn(channels, generator=g) * 0.1)
    norm.running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return norm


def _fixed_masks(monkeypatch, module):
    """Replace the random keep-mask by a fixed one (per shape), so that autograd can be checked."""
    masks = {}

    def keep_mask(x, p):
        if x.shape not in masks:
            masks[x.shape] = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) >= p
        return masks[x.shape]

    monkeypatch.setattr(module, "dropout_keep_mask", keep_mask)
    return masks


@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_conv_equals_conv_then_norm(channels_last):
    torch.manual_seed(0)
    conv = Conv2d(8, 16, 3, stride=2, padding=1, bias=False, norm=_frozen_norm(16))
    x = torch.randn(2, 8, 13, 11)
    residual = torch.randn(2, 16, 7, 6)
    if channels_last:
        x, residual = (t.contiguous(memory_format=torch.channels_last) for t in (x, residual))

    def reference(x, weight):
        return torch.relu(conv.norm(F.conv2d(x, weight, None, 2, 1)) + residual)

    with torch.no_grad():  # CPU inference: oneDNN convolution with the sum and ReLU fused
        assert_close(conv(x, relu=True, residual=residual.clone()), reference(x, conv.weight))
    x.requires_grad_(True)  # training: _ConvFrozenNorm
    out = conv(x, relu=True, residual=residual.clone())
    grads = torch.autograd.grad(out.square().sum(), [x, conv.weight])
    x_ref, w_ref = x.detach().requires_grad_(True), conv.weight.detach().requires_grad_(True)
    expected = torch.autograd.grad(reference(x_ref, w_ref).square().sum(), [x_ref, w_ref])
    assert_close(out.detach(), reference(x, conv.weight).detach())
    for got, want in zip(grads, expected):
        assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "stride, padding", [((2, 1), (1, 2)), ((2, 2), (1, 1))]
)  # 2nd: weight grad by phases
def test_conv_frozen_norm_function_gradcheck(stride, padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, generator=g, requires_grad=True)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    scale = torch.rand(5, dtype=torch.float64, generator=g) + 0.5
    shift = torch.randn(5, dtype=torch.float64, generator=g)

    def fn(x, weight):
        return wrappers._ConvFrozenNorm.apply(x, weight, scale, shift, stride, padding, (1, 1), 1)

    assert torch.autograd.gradcheck(fn, (x, weight))
    assert torch.autograd.gradcheck(lambda w: fn(x.detach(), w), (weight,))  # no input gradient asked


@pytest.mark.parametrize("size", [(9, 11), (10, 7), (2, 3), (1, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stride2_weight_grad_by_phases_equals_direct(size, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, *size, dtype=torch.float64, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, 5, 3, 3, dtype=torch.float64, generator=g)
    grad_out = torch.randn_like(F.conv2d(x, weight, None, 2, 1))
    direct = torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False]
    )[1]
    assert_close(wrappers.conv3x3_stride2_weight_grad(grad_out, x), direct)


@pytest.mark.parametrize("channels_last", [False, True])
def test_padded_phases_equal_slices_of_the_padded_input(channels_last):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for h, w in [(1, 1), (1, 4), (2, 2), (3, 5), (6, 7), (8, 8)]:
        x = torch.randn(2, 3, h, w).contiguous(memory_format=layout)
        out_h, out_w = (h + 1) // 2, (w + 1) // 2  # stride 2, padding 1, 3x3
        padded = F.pad(x, (1, 2 * out_w + 1 - w, 1, 2 * out_h + 1 - h))
        for row_parity in (0, 1):
            for col_parity in (0, 1):
                rows, cols = out_h + 1 - row_parity, out_w + 1 - col_parity
                phase = wrappers._padded_phase(x, row_parity, col_parity, rows, cols, layout)
                expected = padded[:, :, row_parity::2, col_parity::2][:, :, :rows, :cols]
                assert torch.equal(phase, expected), (h, w, row_parity, col_parity)
                assert phase.is_contiguous(memory_format=layout)


def test_mkldnn_fusion_is_used_where_no_gradient_is_needed(monkeypatch):
    if not wrappers._mkldnn.available:
        pytest.skip("this PyTorch build has no oneDNN fused convolution")
    conv, norm = torch.nn.Conv2d(4, 6, 1, bias=False), _frozen_norm(6)
    calls = []
    fused = wrappers._mkldnn.convolution
    monkeypatch.setattr(wrappers._mkldnn, "convolution", lambda *a: calls.append(1) or fused(*a))
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        out = conv_norm_forward(conv, norm, x, relu=True)
    assert calls == [1]
    assert_close(out, torch.relu(norm(conv(x))))
    conv_norm_forward(conv, norm, x)  # autograd on: the differentiable path
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        conv_norm_forward(conv, norm, x)
    assert calls == [1]
    conv.requires_grad_(False)  # a frozen layer of a training backbone: nothing needs a gradient
    out = conv_norm_forward(conv, norm, x, relu=True)
    assert calls == [1, 1] and not out.requires_grad
    assert_close(out, torch.relu(norm(conv(x))))
    assert conv_norm_forward(
        conv, norm, x.clone().requires_grad_()
    ).requires_grad  # ... unless its input does
    residual = torch.randn(1, 6, 5, 5, requires_grad=True)  # or the residual added to its output
    assert conv_norm_forward(conv, norm, x, residual=residual).requires_grad
    assert calls == [1, 1]


def test_dropout_keep_mask_rate_and_independence():
    torch.manual_seed(0)
    masks = torch.stack([dropout_module.dropout_keep_mask(torch.empty(1000), 0.3) for _ in range(400)])
    masks = masks.float()
    assert abs(masks.mean().item() - 0.7) < 0.005  # 400k draws: std 0.0007
    even_odd = torch.corrcoef(torch.stack([masks[:, 0::2].flatten(), masks[:, 1::2].flatten()]))
    assert abs(even_odd[0, 1].item()) < 0.01  # the two 32-bit halves of one random word are independent
    torch.manual_seed(3)  # the CPU masks follow torch's default generator
    first = dropout_module.dropout_keep_mask(torch.empty(5000), 0.1)
    second = dropout_module.dropout_keep_mask(torch.empty(5000), 0.1)
    torch.manual_seed(3)
    assert torch.equal(dropout_module.dropout_keep_mask(torch.empty(5000), 0.1), first)
    assert not torch.equal(first, second)
    x = torch.ones(10_000, requires_grad=True)
    y = dropout_module.dropout(x, 0.25)
    assert set(y.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}
    y.sum().backward()
    assert_close(x.grad, y.detach())  # gradient = mask / (1 - p)
    assert dropout_module.dropout(x, 0.25, training=False) is x
    for p in (-0.1, 1.5):  # the same error as F.dropout, also where no mask is drawn
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout_module.dropout(x, p, training=False)
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout_module.dropout_keep_mask(x, p)


def test_keep_mask_decides_byte_by_byte_as_one_32_bit_comparison():
    """Each element's random bytes, read as one big-endian integer, are compared with t = 0x80402010: ties
    on a byte draw the next byte only for the tied elements, and a full tie (equal to t) is dropped."""
    import numpy as np

    class Bytes:  # stands in for np.random.SFC64: each random_raw call hands out the next list of bytes
        def __init__(self, *draws):
            self.draws = list(draws)

        def random_raw(self, words):
            data = self.draws.pop(0)
            return np.frombuffer(bytes(data + [0] * (8 * words - len(data))), dtype=np.uint64)

    draws = Bytes([0x7F, 0x81, 0x80, 0x80, 0x80, 0x80], [0x3F, 0x41, 0x40, 0x40], [0x20, 0x1F], [0x10])
    keep = dropout_module._keep_bytewise(6, 0x80402010 / 2**32, draws)
    # 0x7F.. < t, 0x81.. > t, 0x803F.. < t, 0x8041.. > t, 0x80402010 == t, 0x80401F.. < t
    assert keep.tolist() == [True, False, True, False, False, True]
    assert draws.draws == []  # one draw per digit, each only as long as the ties
    # a keep probability just above 1/256: its second digit matters for the rate (2M draws: std 0.00004)
    rate = dropout_module._keep_bytewise(2_000_000, 0.0045, np.random.SFC64(0)).mean()
    assert abs(rate - 0.0045) < 0.0002


def test_relu_dropout_and_dropout_match_reference_and_gradcheck(monkeypatch):
    masks = _fixed_masks(monkeypatch, dropout_module)
    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    out = dropout_module.relu_dropout(x, 0.3)
    assert_close(out, torch.relu(x) * masks[x.shape] / 0.7)
    assert torch.autograd.gradcheck(lambda x: dropout_module._ReluDropout.apply(x, 0.3), (x,))
    out = dropout_module.dropout(x, 0.3)
    assert_close(out, x * masks[x.shape] / 0.7)
    assert torch.autograd.gradcheck(lambda x: dropout_module.dropout(x, 0.3), (x,))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        dropout_module.dropout(x, 0.3)
    assert [t.dtype for t in saved] == [torch.bool]  # the mask only, 1 byte per element


def test_apply_keep_mask_matches_where():
    x = torch.randn(3, 1000).to(torch.bfloat16)
    keep = torch.rand(3, 1000) > 0.4
    assert torch.equal(dropout_module.apply_keep_mask(x, keep), torch.where(keep, x, 0.0))
    assert torch.equal(dropout_module.apply_keep_mask(x, keep, 2.5), torch.where(keep, x, 0.0) * 2.5)
    assert dropout_module.apply_keep_mask(x, keep).dtype == torch.bfloat16


def test_dropout_attention_matches_reference_and_gradcheck(monkeypatch):
    masks = _fixed_masks(monkeypatch, attention_module)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, d, dtype=torch.float64, generator=g) for n, d in ((5, 4), (7, 4), (7, 6)))
    bias = torch.zeros(2, 1, 1, 7, dtype=torch.float64)
    bias[1, ..., 5:] = float("-inf")  # the last two keys of image 1 are padding
    out = attention_module._DropoutAttention.apply(q, k, v, bias, 0.3)
    probs = (q @ k.transpose(-1, -2) / 2.0 + bias).softmax(-1)
    assert_close(out, (probs * masks[probs.shape] / 0.7) @ v)
    inputs = tuple(t.requires_grad_(True) for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda q, k, v: attention_module._DropoutAttention.apply(q, k, v, bias, 0.3), inputs
    )


def test_training_saves_probabilities_and_a_bool_mask_only():
    """The CPU dropout path of the encoder attention keeps 5 bytes per attention weight for the backward
    (float probabilities, bool mask); the math fallback of scaled_dot_product_attention keeps 12 (three
    float copies)."""
    torch.manual_seed(0)
    attn = MultiheadAttention(embed_dim=16, num_heads=2, attn_drop=0.1, proj_drop=0.1).train()
    x, pos = torch.randn(2, 50, 16), torch.randn(2, 50, 16)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        attn(x, x, x, query_pos=pos, key_pos=pos)
    weights_shape = (2, 2, 50, 50)
    kept = [t for t in saved if tuple(t.shape) == weights_shape]
    assert sorted(str(t.dtype) for t in kept) == ["torch.bool", "torch.float32"]


def test_ffn_with_relu_matches_the_module_sequence():
    torch.manual_seed(0)
    ffn = FFN(embed_dim=8, feedforward_dim=16, ffn_drop=0.0)
    x = torch.randn(3, 8)
    assert_close(ffn(x), ffn.layers(x))
    ffn.train()
    for drop in (ffn.layers[0][2], ffn.layers[2]):
        drop.p = 0.5
    torch.manual_seed(1)
    out = ffn(x)
    assert out.shape == (3, 8) and (out == 0).float().mean() > 0.2  # the output dropout is applied


@pytest.mark.parametrize("activation", [torch.nn.ReLU(), F.relu, F.gelu])
def test_linear_activation_dropout_fuses_relu_in_both_spellings(monkeypatch, activation):
    """FFN (activation modules) and Anchor-DETR's ResidualFFN (activation functions) share this layer: ReLU
    given either way takes the fused ReLU-dropout op, which saves its output only; other activations take
    activation then dropout. Both equal drop(activation(linear(x))) with the same mask."""
    masks = _fixed_masks(monkeypatch, dropout_module)
    torch.manual_seed(0)
    fc, drop = torch.nn.Linear(8, 16).double(), dropout_module.Dropout(0.3)
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = linear_activation_dropout(x, fc, activation, drop)
    assert_close(out, activation(fc(x)) * masks[(5, 16)] / 0.7)
    fused = activation is not F.gelu
    assert any(t.dtype == torch.bool for t in saved) != fused  # the fused op keeps no mask
    assert torch.autograd.gradcheck(lambda x: linear_activation_dropout(x, fc, activation, drop), (x,))


@pytest.mark.slow
def test_dropout_compiles_into_one_graph():
    """Under torch.compile the mask comes from bernoulli_ (traceable), not from numpy (a graph break)."""
    torch.manual_seed(0)
    compiled = torch.compile(lambda x: dropout_module.dropout(x, 0.5), fullgraph=True)
    y = compiled(torch.ones(4000))
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert 0.45 < (y == 0).float().mean().item() < 0.55


def _strides(t: torch.Tensor) -> list[int]:
    return [s for s, n in zip(t.stride(), t.shape) if n > 1]  # a size-1 dimension's stride is arbitrary


def test_channels_last_backbone_stores_channels_last_weights_and_gradients():
    """The conv weights of a channels-last ResNet are stored channels-last, and their gradients (including
    the stride-2 3x3 ones computed by phases) come back in that layout; the outputs, gradients and
    state_dict round trip equal those of the same network in the default layout."""
    from detrex.modeling.backbone import BasicStem, BottleneckBlock, ResNet, make_stage

    def build(channels_last):
        torch.manual_seed(0)
        stages = [
            make_stage(
                BottleneckBlock, 1, in_channels=16, out_channels=32, bottleneck_channels=8, norm="FrozenBN"
            ),
            make_stage(
                BottleneckBlock,
                2,
                in_channels=32,
                out_channels=64,
                bottleneck_channels=16,
                first_stride=2,
                norm="FrozenBN",
            ),
        ]
        stem = BasicStem(in_channels=3, out_channels=16, norm="FrozenBN")
        return ResNet(stem, stages, out_features=["res3"], freeze_at=1, channels_last=channels_last)

    fast, plain = build(True), build(False)
    plain.load_state_dict(fast.state_dict())
    cl = torch.channels_last
    convs = [(n, m) for n, m in fast.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=cl) for _, m in convs)
    assert any(
        m.weight.shape[-1] == 3 and not m.weight.is_contiguous() for _, m in convs
    )  # 3x3: a real change
    x = torch.randn(2, 3, 37, 45)
    outs = [net(x)["res3"] for net in (fast, plain)]
    assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for out in outs:
        out.square().sum().backward()
    plain_params = dict(plain.named_parameters())
    for name, param in fast.named_parameters():
        if param.requires_grad:
            assert _strides(param.grad) == _strides(param), name  # accumulated without a layout copy
            assert_close(param.grad, plain_params[name].grad, rtol=1e-4, atol=1e-5)
    reloaded = build(True)
    reloaded.load_state_dict(plain.state_dict())  # contiguous tensors into channels-last parameters
    assert all(
        m.weight.is_contiguous(memory_format=cl) for m in reloaded.modules() if isinstance(m, torch.nn.Conv2d)
    )


@pytest.mark.parametrize("shape", [(2, 7, 64), (5, 64)])
@pytest.mark.parametrize("out_features", [1024, 48])  # wide: the 1x1-convolution path; narrow: F.linear
def test_linear_matches_f_linear_with_gradients(monkeypatch, shape, out_features):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    weight = torch.randn(out_features, shape[-1], requires_grad=True)
    bias = torch.randn(out_features, requires_grad=True)
    convs = []
    conv2d = F.conv2d
    monkeypatch.setattr(wrappers.F, "conv2d", lambda *a: convs.append(1) or conv2d(*a))
    out = wrappers.linear(x, weight, bias)
    assert convs == ([1] if out_features >= 1024 and torch.backends.mkldnn.is_available() else [])
    expected = F.linear(x, weight, bias)
    assert out.shape == expected.shape
    assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, weight, bias), grad)
    for got, want in zip(grads, torch.autograd.grad(expected, (x, weight, bias), grad)):
        assert_close(got, want, rtol=1e-5, atol=1e-4)
    transposed = x.detach().transpose(0, -2)  # a non-contiguous input
    assert_close(
        wrappers.linear(transposed, weight, None), F.linear(transposed, weight), rtol=1e-5, atol=1e-5
    )
    assert wrappers.linear(x[:0], weight, bias).shape == (0, *expected.shape[1:])


def test_frozen_norm_conv_with_string_padding_trains():
    """padding="same" cannot go to convolution_backward (it takes numbers): the plain folded path."""
    torch.manual_seed(0)
    conv = Conv2d(4, 6, 3, padding="same", bias=False, norm=_frozen_norm(6))
    x = torch.randn(1, 4, 7, 7, requires_grad=True)
    out = conv(x)
    out.square().sum().backward()
    assert out.shape == (1, 6, 7, 7) and conv.weight.grad.shape == (6, 4, 3, 3)
    assert_close(out, conv.norm(F.conv2d(x, conv.weight, None, 1, "same")))


def test_linear_with_mismatched_shapes_raises_f_linears_error():
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        wrappers.linear(torch.randn(5, 64), torch.randn(1024, 32))  # wide: would have gone to conv2d

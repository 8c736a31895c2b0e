import pytest
import torch
import torch.nn.functional as F

from projects.anchor_detr.modeling import MultiheadRCDA


def materialised_rcda(attn: MultiheadRCDA, q_row, q_col, k_row, k_col, value, pad_mask=None):
    """The definition, written out: per head, weight(q, y, x) = softmax_x(...)[q, x] * softmax_y(...)[q, y]
    over the full (Q, H, W) map; keys are projected per pixel, then averaged over rows / columns."""
    e, heads = attn.embed_dim, attn.num_heads
    d = e // heads
    w, b = attn.in_proj_weight.split(e), attn.in_proj_bias.split(e)
    bsz, num_q, _ = q_row.shape
    _, h, wd, _ = value.shape

    def heads_of(x):  # (..., E) -> (..., heads, d)
        return x.reshape(*x.shape[:-1], heads, d)

    qr = heads_of(F.linear(q_row, w[0], b[0])) * d**-0.5  # (B, Q, h, d)
    qc = heads_of(F.linear(q_col, w[1], b[1])) * d**-0.5
    kr = heads_of(F.linear(k_row, w[2], b[2]).mean(1))  # (B, W, h, d)
    kc = heads_of(F.linear(k_col, w[3], b[3]).mean(2))  # (B, H, h, d)
    v = heads_of(F.linear(value, w[4], b[4]))  # (B, H, W, h, d)
    logit_x = torch.einsum("bqnd,bwnd->bnqw", qr, kr)
    logit_y = torch.einsum("bqnd,bhnd->bnqh", qc, kc)
    if pad_mask is not None:
        logit_x = logit_x.masked_fill(pad_mask[:, None, None, 0, :], float("-inf"))
        logit_y = logit_y.masked_fill(pad_mask[:, None, None, :, 0], float("-inf"))
    full = logit_y.softmax(-1)[..., :, None] * logit_x.softmax(-1)[..., None, :]  # (B, h, Q, H, W)
    assert full.shape == (bsz, heads, num_q, h, wd)
    out = torch.einsum("bnqyx,byxnd->bqnd", full, v).reshape(bsz, num_q, e)
    return attn.out_proj(out), full


def _inputs(bsz, num_q, h, w, e, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(bsz, num_q, e, generator=g) for _ in range(2)] + [
        torch.randn(bsz, h, w, e, generator=g) for _ in range(3)
    ]


@pytest.mark.parametrize("h, w", [(3, 5), (5, 3), (4, 4)])  # both contraction orders
def test_rcda_equals_materialised_attention(h, w):
    torch.manual_seed(0)
    attn = MultiheadRCDA(embed_dim=16, num_heads=4)
    torch.nn.init.normal_(attn.in_proj_bias, std=0.1)
    args = _inputs(2, 7, h, w, 16)
    ours = attn(*args)
    expected, _ = materialised_rcda(attn, *args)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_rcda_padding_follows_first_row_and_column():
    torch.manual_seed(0)
    attn = MultiheadRCDA(embed_dim=8, num_heads=2)
    args = _inputs(2, 3, 4, 6, 8, seed=1)
    pad = torch.zeros(2, 4, 6, dtype=torch.bool)
    pad[0, :, 4:] = True  # image 0: 4 x 4 valid
    pad[1, 3:, :] = True  # image 1: 3 x 6 valid
    ours = attn(*args, key_padding_mask=pad)
    expected, full = materialised_rcda(attn, *args, pad_mask=pad)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    # padded pixels get exactly zero weight; the weights of each query sum to one over valid pixels
    assert torch.all(full[0, :, :, :, 4:] == 0) and torch.all(full[1, :, :, 3:, :] == 0)
    torch.testing.assert_close(full.sum((-2, -1)), torch.ones(2, 2, 3))


def test_rcda_keys_are_averaged_over_padded_rows_too():
    """The reference averages keys over every row / column: changing padded features changes the output."""
    torch.manual_seed(0)
    attn = MultiheadRCDA(embed_dim=8, num_heads=2)
    q_row, q_col, k_row, k_col, value = _inputs(1, 3, 4, 5, 8, seed=2)
    pad = torch.zeros(1, 4, 5, dtype=torch.bool)
    pad[:, 3:, :] = True
    before = attn(q_row, q_col, k_row, k_col, value, pad)
    k_row2 = k_row.clone()
    k_row2[:, 3:] += torch.randn(1, 1, 5, 8)  # padded row of the row keys, different per column
    after = attn(q_row, q_col, k_row2, k_col, value, pad)
    assert (after - before).abs().max() > 1e-3
    value2 = value.clone()
    value2[:, 3:] += 1.0  # padded values never contribute
    torch.testing.assert_close(attn(q_row, q_col, k_row, k_col, value2, pad), before)


def test_rcda_backward_matches_materialised():
    torch.manual_seed(0)
    attn = MultiheadRCDA(embed_dim=8, num_heads=2)
    args = [a.requires_grad_() for a in _inputs(1, 4, 3, 5, 8, seed=3)]
    attn(*args).square().sum().backward()
    ours = [a.grad.clone() for a in args] + [attn.in_proj_weight.grad.clone()]
    for a in args:
        a.grad = None
    attn.zero_grad()
    materialised_rcda(attn, *args)[0].square().sum().backward()
    expected = [a.grad for a in args] + [attn.in_proj_weight.grad]
    for o, e in zip(ours, expected):
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-6)


def test_rcda_state_dict_layout_and_bad_heads():
    attn = MultiheadRCDA(embed_dim=16, num_heads=4)
    assert {k: tuple(v.shape) for k, v in attn.state_dict().items()} == {
        "in_proj_weight": (80, 16),
        "in_proj_bias": (80,),
        "out_proj.weight": (16, 16),
        "out_proj.bias": (16,),
    }
    with pytest.raises(ValueError, match="divisible"):
        MultiheadRCDA(embed_dim=10, num_heads=4)

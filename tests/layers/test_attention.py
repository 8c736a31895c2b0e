import torch
from torch import nn
from torch.testing import assert_close

from detrex.layers import FFN, MLP, MultiheadAttention, inverse_sigmoid
from detrex.layers.functional import attention


def _attention_weights(q, k, num_heads, key_padding_mask):
    """Read the weights through the output: with one-hot values, output channel j of a head = weight of key j."""
    bs, n_k = k.shape[:2]
    v = torch.eye(n_k).repeat(1, num_heads)[None].expand(bs, -1, -1)  # (B, Nk, h * Nk)
    out = attention(q, k, v, num_heads, key_padding_mask)
    return out.view(bs, q.shape[1], num_heads, n_k)


def test_padded_keys_get_zero_weight_and_weights_match_softmax():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[False] * 5, [False, False, False, True, True]])
    weights = _attention_weights(q, k, 2, mask)
    assert torch.all(weights[1, :, :, 3:] == 0)
    assert_close(weights.sum(-1), torch.ones(2, 3, 2))
    logits = torch.einsum("bqhd,bkhd->bqhk", q.view(2, 3, 2, 4), k.view(2, 5, 2, 4)) / 2.0  # sqrt(d=4)
    logits[1, :, :, 3:] = float("-inf")
    assert_close(weights, logits.softmax(-1), rtol=1e-5, atol=1e-6)


def test_multihead_attention_wrapper_ignores_padded_keys_and_adds_positions():
    torch.manual_seed(0)
    attn = MultiheadAttention(embed_dim=8, num_heads=2).eval()
    x, pos = torch.randn(1, 6, 8), torch.randn(1, 6, 8)
    mask = torch.tensor([[False] * 4 + [True] * 2])
    out = attn(x, x, x, query_pos=pos, key_pos=pos, key_padding_mask=mask)
    x2 = x.clone()
    x2[:, 4:] = 100.0  # change the padded keys / values only
    pos2 = pos.clone()
    pos2[:, 4:] = -7.0
    out2 = attn(x2, x2, x2, query_pos=pos2, key_pos=pos2, key_padding_mask=mask)
    assert_close(out2[:, :4], out[:, :4])
    expected = attn.attn(x + pos, x + pos, x, key_padding_mask=mask)[0]
    assert_close(out, expected)
    assert sorted(k for k, _ in attn.named_parameters()) == [
        "attn.in_proj_bias", "attn.in_proj_weight", "attn.out_proj.bias", "attn.out_proj.weight",
    ]  # fmt: skip


def test_ffn_and_mlp_names_and_values():
    torch.manual_seed(0)
    ffn = FFN(embed_dim=4, feedforward_dim=6)
    assert [k for k, _ in ffn.named_parameters()] == [
        "layers.0.0.weight", "layers.0.0.bias", "layers.1.weight", "layers.1.bias",
    ]  # fmt: skip
    x = torch.randn(3, 4)
    lin1, lin2 = ffn.layers[0][0], ffn.layers[1]
    assert_close(ffn(x), lin2(torch.relu(lin1(x))))
    gelu_ffn = FFN(embed_dim=4, feedforward_dim=6, activation=nn.GELU())
    assert isinstance(gelu_ffn.layers[0][1], nn.GELU)
    mlp = MLP(4, 5, 2, 3)
    assert [k for k, _ in mlp.named_parameters()][::2] == [
        "layers.0.weight",
        "layers.1.weight",
        "layers.2.weight",
    ]
    l0, l1, l2 = mlp.layers
    assert_close(mlp(x), l2(torch.relu(l1(torch.relu(l0(x))))))


def test_inverse_sigmoid_official_eps():
    x = torch.tensor([0.0, 1e-6, 0.3, 0.5, 1.0])
    expected = torch.log(torch.tensor([1e-5 / 1.0, 1e-5 / (1 - 1e-6), 0.3 / 0.7, 1.0, 1.0 / 1e-5]))
    assert_close(inverse_sigmoid(x), expected)
    y = torch.tensor([0.02, 0.5, 0.98])
    assert_close(inverse_sigmoid(y).sigmoid(), y)

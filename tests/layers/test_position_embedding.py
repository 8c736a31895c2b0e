import math

import torch
from torch.testing import assert_close

from detrex.layers import PositionEmbeddingSine, get_sine_pos_embed


def _loop_embedding(mask, num_feats, temperature, normalize, scale, eps):
    """Direct per-pixel formula: channel 2i / 2i + 1 of the y (then x) half = sin / cos(pos / T^(2i/F))."""
    bs, h, w = mask.shape
    out = torch.zeros(bs, 2 * num_feats, h, w, dtype=torch.float64)
    for b in range(bs):
        valid_h = int((~mask[b, :, 0]).sum())
        valid_w = int((~mask[b, 0, :]).sum())
        for y in range(h):
            for x in range(w):
                py = float((~mask[b, : y + 1, x]).sum())
                px = float((~mask[b, y, : x + 1]).sum())
                if normalize:
                    py = py / (float((~mask[b, :, x]).sum()) + eps) * scale
                    px = px / (float((~mask[b, y, :]).sum()) + eps) * scale
                for c in range(num_feats):
                    freq = temperature ** (2 * (c // 2) / num_feats)
                    fn = math.sin if c % 2 == 0 else math.cos
                    out[b, c, y, x] = fn(py / freq)
                    out[b, num_feats + c, y, x] = fn(px / freq)
        assert valid_h > 0 and valid_w > 0
    return out


def test_sine_embedding_matches_loop_formula_with_padding():
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[1, 3:, :] = True  # image 1 is 3 x 3 inside a 4 x 5 batch
    mask[1, :, 3:] = True
    for normalize in (False, True):
        layer = PositionEmbeddingSine(num_pos_feats=8, temperature=10000, normalize=normalize)
        expected = _loop_embedding(mask, 8, 10000, normalize, 2 * math.pi, 1e-6)
        assert_close(layer(mask).double(), expected, rtol=1e-5, atol=1e-5)


def test_sine_embedding_ignores_padding_of_valid_pixels():
    layer = PositionEmbeddingSine(num_pos_feats=16, normalize=True)
    alone = layer(torch.zeros(1, 3, 3, dtype=torch.bool))
    padded_mask = torch.ones(1, 5, 6, dtype=torch.bool)
    padded_mask[0, :3, :3] = False
    assert_close(layer(padded_mask)[..., :3, :3], alone)


def test_box_sine_embedding_order_and_values():
    pos = torch.tensor([[[0.25, 0.75]]])  # (x, y)
    emb = get_sine_pos_embed(pos, num_pos_feats=4, temperature=100)
    freqs = [1.0, 1.0, 100**0.5, 100**0.5]
    y = [f(0.75 * 2 * math.pi / t) for f, t in zip([math.sin, math.cos] * 2, freqs)]
    x = [f(0.25 * 2 * math.pi / t) for f, t in zip([math.sin, math.cos] * 2, freqs)]
    assert_close(emb[0, 0], torch.tensor(y + x))  # y first (exchange_xy)
    assert_close(get_sine_pos_embed(pos, 4, 100, exchange_xy=False)[0, 0], torch.tensor(x + y))

"""record_attention on the tiny models of both families (a padded two-image batch): map shapes, zero
weight on padding, sums of 1, outputs unchanged, no hooks left; and each attention module's maps against its
own forward."""

import pytest
import torch
from torch import nn

from detrex.config import instantiate
from detrex.utils.attention_maps import (
    multihead_attention_maps,
    record_attention,
    resize_to_image,
    top_queries,
)
from projects.anchor_detr.modeling import MultiheadRCDA
from projects.conditional_detr.modeling import ConditionalCrossAttention
from tests.tiny import tiny_model_config

FAMILIES = {"conditional": "conditional_detr", "anchor": "anchor_detr", "anchor_2d": "anchor_detr"}
OVERRIDES = {"anchor_2d": ["model.transformer.attention_type=nn.MultiheadAttention"]}
MAP_NAMES = {
    "conditional": ["spatial", "content", "full"],
    "anchor": ["row", "column", "product"],
    "anchor_2d": ["full"],
}


def padded_batch():
    """Two images of different sizes: the second is padded at the bottom and right in the batch."""
    g = torch.Generator().manual_seed(1)
    return [
        {"image": torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8, generator=g)},
        {"image": torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8, generator=g)},
    ]


def num_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture(scope="module", params=list(FAMILIES))
def recorded(request):
    """The model, its plain outputs, and the outputs and maps of the same batch recorded with heads averaged
    and per head."""
    family = request.param
    cfg = tiny_model_config(FAMILIES[family], *OVERRIDES.get(family, []))
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    hooks_before = num_hooks(model)
    with torch.no_grad():
        images = model.preprocess_image(padded_batch())
        plain = model.forward_images(images)
        with record_attention(model) as maps:
            outputs = model.forward_images(images)
        with record_attention(model, average_heads=False) as per_head:
            model.forward_images(images)
        model.forward_images(images)  # outside the block: records nothing
    size = maps[-1][MAP_NAMES[family][-1]].shape[-2:]
    pad = model.feature_padding_mask(images, size)  # (B, h, w), True on padding
    return dict(
        family=family,
        model=model,
        plain=plain,
        outputs=outputs,
        maps=maps,
        per_head=per_head,
        pad=pad,
        hooks=(hooks_before, num_hooks(model)),
    )


def test_maps_have_their_shapes_sum_to_one_and_are_zero_on_padding(recorded):
    model, maps, pad = recorded["model"], recorded["maps"], recorded["pad"]
    names = MAP_NAMES[recorded["family"]]
    assert [m["layer"] for m in maps] == list(range(len(model.decoder_cross_attentions())))
    b, h, w = pad.shape
    assert pad[0].sum() == 0 and pad[1].any() and not pad[1].all()  # only the second image is padded
    q = recorded["outputs"]["pred_logits"].shape[1]
    shapes = {"row": (b, q, 1, w), "column": (b, q, h, 1)}
    for entry in maps:
        assert list(entry) == ["layer", *names]
        for name in names:
            weights = entry[name]
            assert weights.shape == shapes.get(name, (b, q, h, w)) and not weights.requires_grad
            # a row map (1 x w) is padded where the first row is (padded columns), a column map likewise
            padded = pad[:, None, : weights.shape[-2], : weights.shape[-1]].expand_as(weights)
            assert torch.all(weights[padded] == 0), f"{name}: attention on padding"
            assert torch.all(weights[~padded] > 0)
            sums = weights.sum((-1, -2))
            torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-5)


def test_per_head_maps_average_to_the_recorded_maps(recorded):
    heads = recorded["model"].decoder_cross_attentions()[0].num_heads
    for averaged, per_head in zip(recorded["maps"], recorded["per_head"], strict=True):
        for name in MAP_NAMES[recorded["family"]]:
            assert per_head[name].shape[1] == heads
            torch.testing.assert_close(per_head[name].mean(1), averaged[name], rtol=0, atol=0)
    if recorded["family"] == "anchor":  # the 2-D map is the product per head, before averaging
        for entry in recorded["per_head"]:
            torch.testing.assert_close(entry["product"], entry["column"] * entry["row"], rtol=0, atol=0)


def test_recording_changes_no_output_and_leaves_no_hook(recorded):
    for key in ("pred_logits", "pred_boxes"):
        assert torch.equal(recorded["outputs"][key], recorded["plain"][key])
    before, after = recorded["hooks"]
    assert before == after == 0
    num_layers = len(recorded["model"].decoder_cross_attentions())
    assert len(recorded["maps"]) == len(recorded["per_head"]) == num_layers  # the later pass added none


def test_layers_selects_and_an_exception_removes_the_hooks(recorded):
    model = recorded["model"]
    num_layers = len(model.decoder_cross_attentions())
    with pytest.raises(RuntimeError, match="inside"), record_attention(model, layers=[-1]) as maps:
        assert num_hooks(model) == 2  # the chosen layer and the feature-size probe on input_proj
        raise RuntimeError("inside")
    assert num_hooks(model) == 0 and maps == []
    with pytest.raises(IndexError, match=f"the decoder has {num_layers} layers"):
        with record_attention(model, layers=[num_layers]):
            pass
    assert num_hooks(model) == 0


def _padding(batch: int, keys: int, padded: int) -> torch.Tensor:
    mask = torch.zeros(batch, keys, dtype=torch.bool)
    mask[-1, keys - padded :] = True
    return mask


@pytest.mark.parametrize("first_layer", [True, False])
def test_conditional_full_map_is_forwards_attention_and_recombines_its_parts(first_layer):
    torch.manual_seed(0)
    b, q, n_k, c, heads = 2, 3, 12, 16, 2
    module = ConditionalCrossAttention(c, heads, use_query_pos_proj=first_layer).eval()
    query, query_pos, sine = (torch.randn(b, q, c) for _ in range(3))
    memory, key_pos = torch.randn(b, n_k, c), torch.randn(b, n_k, c)
    mask = _padding(b, n_k, 5)
    with torch.no_grad():
        out = module(query, memory, query_pos, key_pos, sine, mask)
        maps = module.attention_maps(query, memory, query_pos, key_pos, sine, mask)
        v = module.value_proj(memory).view(b, n_k, heads, -1).transpose(1, 2)  # (B, h, HW, d)
        expected = module.out_proj((maps["full"] @ v).transpose(1, 2).reshape(b, q, c))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    # softmax((a + b) / s) = softmax(a / s) * softmax(b / s), renormalised over the keys
    product = maps["spatial"] * maps["content"]
    torch.testing.assert_close(maps["full"], product / product.sum(-1, keepdim=True), rtol=1e-5, atol=1e-7)
    assert torch.all(maps["full"][1, :, :, -5:] == 0) and torch.all(maps["spatial"][1, :, :, -5:] == 0)
    # the spatial part sees only the conditional spatial query and the key positions; content never sees them
    with torch.no_grad():
        other = module.attention_maps(
            torch.randn(b, q, c), torch.randn(b, n_k, c), query_pos, key_pos, sine, mask
        )
        other_sine = module.attention_maps(query, memory, query_pos, key_pos, torch.randn(b, q, c), mask)
    torch.testing.assert_close(other["spatial"], maps["spatial"], rtol=0, atol=0)
    torch.testing.assert_close(other_sine["content"], maps["content"], rtol=0, atol=0)


def test_rcda_product_map_is_forwards_attention():
    torch.manual_seed(0)
    b, q, h, w, e, heads = 2, 3, 4, 5, 16, 2
    module = MultiheadRCDA(e, heads).eval()
    query_row, query_col = torch.randn(b, q, e), torch.randn(b, q, e)
    key_row, key_col, value = (torch.randn(b, h, w, e) for _ in range(3))
    mask = torch.zeros(b, h, w, dtype=torch.bool)
    mask[1, 3:, :] = mask[1, :, 3:] = True  # bottom row and right two columns padded
    with torch.no_grad():
        out = module(query_row, query_col, key_row, key_col, value, mask)
        maps = module.attention_maps(query_row, query_col, key_row, key_col, value, mask)
        v = module._project(value, 4).view(b, h, w, heads, -1)  # (B, H, W, h, d)
        attended = torch.einsum("bnqyx,byxnd->bqnd", maps["product"], v)  # (B, Q, h, d)
        expected = module.out_proj(attended.reshape(b, q, e))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert torch.all(maps["product"][1, :, :, 3:, :] == 0) and torch.all(maps["product"][1, :, :, :, 3:] == 0)


@pytest.mark.parametrize("batch_first", [True, False])
def test_multihead_attention_maps_are_torchs_weights(batch_first):
    torch.manual_seed(0)
    module = nn.MultiheadAttention(16, 2, batch_first=batch_first).eval()
    query, key = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    mask = _padding(2, 7, 3)
    if not batch_first:
        query, key = query.transpose(0, 1), key.transpose(0, 1)
    with torch.no_grad():
        _, expected = module(query, key, key, key_padding_mask=mask, average_attn_weights=False)
        maps = multihead_attention_maps(module, query, key, key, key_padding_mask=mask, need_weights=False)
    torch.testing.assert_close(maps["full"], expected, rtol=1e-5, atol=1e-7)
    assert torch.all(maps["full"][1, ..., -3:] == 0)


def test_top_queries_keeps_the_best_class_of_the_best_queries_above_the_threshold():
    logits = torch.tensor([[0.0, 1.0], [3.0, -1.0], [-2.0, -3.0], [0.5, 2.0]])
    queries, scores, classes = top_queries(logits, k=3, threshold=0.6)
    assert queries.tolist() == [1, 3, 0] and classes.tolist() == [0, 1, 1]
    torch.testing.assert_close(scores, torch.tensor([3.0, 2.0, 1.0]).sigmoid())
    queries, _, _ = top_queries(logits, k=3, threshold=0.8)
    assert queries.tolist() == [1, 3]


def test_resize_to_image_drops_the_padded_cells():
    attention = torch.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0], [9.0, 9.0, 9.0]])  # 9: padding
    torch.testing.assert_close(resize_to_image(attention, (2, 2), (2, 2)), attention[:2, :2])
    stretched = resize_to_image(attention[None], (2, 2), (4, 6))  # leading dims are kept
    assert stretched.shape == (1, 4, 6) and stretched.max() == 4.0 and stretched.min() == 1.0
    row = torch.tensor([[[0.25, 0.75, 0.0]]])  # (1, 1, w): one weight per column
    stretched = resize_to_image(row, (2, 2), (3, 4))
    assert stretched.shape == (1, 3, 4)
    torch.testing.assert_close(stretched, stretched[:, :1].expand(1, 3, 4))  # equal down each column

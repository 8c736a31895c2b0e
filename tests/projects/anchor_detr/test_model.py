import pytest
import torch
from torch import nn

from projects.anchor_detr.modeling import AnchorDETRTransformer
from tests.tiny import NUM_CLASSES, build_tiny_model, random_inputs


def _raw_outputs(model, batch):
    images = model.preprocess_image(batch)
    features = model.input_proj(model.backbone(images.tensor)[model.in_features[-1]])
    mask = torch.zeros(len(batch), *features.shape[-2:], dtype=torch.bool)
    return model.transformer(features, mask)


@pytest.mark.parametrize("spatial_prior", ["learned", "grid"])
def test_untrained_boxes_sit_on_the_anchor_points(spatial_prior):
    model = build_tiny_model(
        "anchor_detr",
        f"model.transformer.spatial_prior={spatial_prior}",
        "model.transformer.num_query_position=16",  # a 4 x 4 grid
        random_box_head=False,
    ).eval()
    points = model.transformer.anchor_points(2, torch.device("cpu"))  # (2, 48, 2): 16 points x 3 patterns
    if spatial_prior == "grid":
        c = [0.125, 0.375, 0.625, 0.875]
        expected = torch.tensor([[x, y] for x in c for y in c])  # x varies slowest, as in the reference
        assert "transformer.position.weight" not in model.state_dict()
    else:
        expected = model.transformer.position.weight.detach()
        assert model.state_dict()["transformer.position.weight"].shape == (16, 2)
    torch.testing.assert_close(points[0, :16], expected)
    # every pattern reuses the same anchor points
    torch.testing.assert_close(points[1, 16:], expected.repeat(2, 1))
    with torch.no_grad():
        classes, boxes = _raw_outputs(model, random_inputs([(64, 96), (64, 96)]))
    assert classes.shape == (3, 2, 48, NUM_CLASSES) and boxes.shape == (3, 2, 48, 4)
    # the box head's last layer starts at zero: centres = anchor points, sizes = sigmoid(-2)
    torch.testing.assert_close(boxes[:, :, :, :2], points.expand(3, -1, -1, -1), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        boxes[..., 2:], torch.full_like(boxes[..., 2:], torch.sigmoid(torch.tensor(-2.0)))
    )


def test_grid_rounds_to_a_square_and_follows_the_input_device():
    transformer = AnchorDETRTransformer(
        embed_dim=32, num_heads=2, num_query_position=300, spatial_prior="grid"
    )
    assert transformer.num_position == 289  # 17 x 17, as the reference's round(sqrt(300))
    points = transformer.anchor_points(1, torch.device("meta"))
    assert points.device.type == "meta" and points.shape == (1, 3 * 289, 2)


def test_multihead_attention_variant_builds_runs_and_trains():
    model = build_tiny_model("anchor_detr", "model.transformer.attention_type=nn.MultiheadAttention")
    sd = model.state_dict()
    assert sd["transformer.encoder_layers.0.self_attn.in_proj_weight"].shape == (3 * 128, 128)
    assert sd["transformer.decoder_layers.0.cross_attn.in_proj_weight"].shape == (3 * 128, 128)
    assert isinstance(model.transformer.encoder_layers[0].self_attn, nn.MultiheadAttention)
    losses = model(random_inputs([(64, 96), (48, 80)], with_instances=True))
    assert sorted(losses) == sorted(
        f"loss_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")
    )
    sum(losses.values()).backward()
    assert model.transformer.encoder_layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(random_inputs([(64, 96)]))[0]["instances"]
    assert len(out) == 100 and out.image_size == (64, 96)


def test_same_size_batched_inference_equals_one_at_a_time():
    model = build_tiny_model("anchor_detr").eval()
    batch = random_inputs([(64, 96)] * 3)
    for item, size in zip(batch, [(120, 180), (64, 96), (50, 70)]):
        item["height"], item["width"] = size
    with torch.no_grad():
        together = model(batch)
        alone = [model([item])[0] for item in batch]
    for a, b in zip(together, alone):
        a, b = a["instances"], b["instances"]
        assert a.image_size == b.image_size
        torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=1e-5)
        torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor, rtol=0, atol=1e-3)
        assert torch.equal(a.pred_classes, b.pred_classes)


def test_padding_mask_reaches_the_transformer_in_eval_and_training():
    model = build_tiny_model("anchor_detr")
    seen = []
    model.transformer.register_forward_hook(lambda m, args, out: seen.append(args[1].clone()))
    batch = random_inputs([(64, 96), (32, 64)], with_instances=True)  # padded to 64 x 96 -> 4 x 6 at /16
    model(batch)
    model.eval()
    with torch.no_grad():
        model(batch)
    expected = torch.tensor(
        [[[0] * 6] * 4, [[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1], [1] * 6, [1] * 6]], dtype=torch.bool
    )
    assert len(seen) == 2 and all(torch.equal(mask, expected) for mask in seen)


def test_eval_boxes_are_scaled_clipped_and_topk():
    model = build_tiny_model("anchor_detr", "model.select_box_nums_for_evaluation=7", seed=1).eval()
    item = random_inputs([(64, 96)])[0]
    item["height"], item["width"] = 100, 150
    with torch.no_grad():
        inst = model([item])[0]["instances"]
        classes, boxes = _raw_outputs(model, [item])
    prob = classes[-1, 0].sigmoid()
    scores, index = prob.flatten().topk(7)
    query, label = index // NUM_CLASSES, index % NUM_CLASSES
    cx, cy, w, h = boxes[-1, 0, query].unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * torch.tensor(
        [150, 100, 150, 100]
    )
    xyxy = torch.stack([xyxy[:, 0].clamp(0, 150), xyxy[:, 1].clamp(0, 100), xyxy[:, 2].clamp(0, 150),
                        xyxy[:, 3].clamp(0, 100)], -1)  # fmt: skip
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    assert inst.image_size == (100, 150) and len(inst) == int(keep.sum())
    torch.testing.assert_close(inst.scores, scores[keep])
    torch.testing.assert_close(inst.pred_boxes.tensor, xyxy[keep])
    assert torch.equal(inst.pred_classes, label[keep])


def test_training_returns_exactly_the_weighted_losses():
    model = build_tiny_model("anchor_detr", backbone="torchvision_resnet18")  # 3 decoder layers
    losses = model(random_inputs([(64, 96), (48, 80)], with_instances=True))
    expected = {f"loss_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")}
    assert set(losses) == expected
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.body.layer4[0].conv1.weight.grad is not None
    assert model.backbone.body.conv1.weight.grad is None  # conv1 / layer1 are frozen


def test_dropout_reaches_every_dropout_module():
    model = build_tiny_model("anchor_detr", "model.transformer.dropout=0.1")
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    attn = [m.dropout for n, m in model.named_modules() if n.endswith("attn")]
    assert rates == {0.1} and attn and set(attn) == {0.1}
    assert isinstance(model.transformer.encoder_layers[0].ffn.activation, nn.ReLU)


def test_constructor_checks():
    with pytest.raises(NotImplementedError, match="num_feature_levels"):
        AnchorDETRTransformer(num_feature_levels=4)
    with pytest.raises(ValueError, match="attention_type"):
        AnchorDETRTransformer(attention_type="RCDA2")
    with pytest.raises(ValueError, match="spatial_prior"):
        AnchorDETRTransformer(spatial_prior="random")
    model = build_tiny_model("anchor_detr")
    with pytest.raises(ValueError, match="num_classes"):
        type(model)(model.backbone, ["res4"], 128, model.transformer, 128, NUM_CLASSES + 1, model.criterion)


def test_pixel_normalisation_buffers_follow_to_but_are_not_saved():
    model = build_tiny_model("anchor_detr")
    assert "pixel_mean" not in model.state_dict() and "pixel_std" not in model.state_dict()
    model.to(torch.float64)
    assert model.pixel_mean.dtype == torch.float64
    torch.testing.assert_close(
        model.pixel_std.flatten(), torch.tensor([58.395, 57.120, 57.375], dtype=torch.float64)
    )

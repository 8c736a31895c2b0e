import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from detrex.layers import box_cxcywh_to_xyxy
from tests.tiny import NUM_CLASSES, build_tiny_model, random_inputs


@pytest.fixture(scope="module")
def model():
    return build_tiny_model("conditional_detr")


def _fields(instances):
    return instances.pred_boxes.tensor, instances.scores, instances.pred_classes


def test_batched_inference_equals_one_image_at_a_time(model):
    model.eval()
    inputs = random_inputs([(64, 80), (64, 80), (64, 80)], seed=1)
    with torch.no_grad():
        batched = model(inputs)
        for item, result in zip(inputs, batched):
            alone = model([item])[0]["instances"]
            for ours, expected in zip(_fields(result["instances"]), _fields(alone)):
                assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_padded_pixels_are_masked_in_encoder_and_decoder(model):
    torch.manual_seed(0)
    transformer = model.transformer.eval()
    features = torch.randn(2, 128, 4, 5)
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[1, 3:, :] = True
    mask[1, :, 2:] = True  # image 1 fills 3 x 2 of the 4 x 5 map
    pos = model.position_embedding(mask)
    query = model.query_embed.weight
    with torch.no_grad():
        hidden, refs = transformer(features, mask, query, pos)
        features2, pos2 = features.clone(), pos.clone()
        features2[1][:, mask[1]] = 50.0  # anything at padded pixels, features and positions alike
        pos2[1][:, mask[1]] = -3.0
        hidden2, refs2 = transformer(features2, mask, query, pos2)
        unmasked, _ = transformer(features, torch.zeros_like(mask), query, pos)
    assert_close(hidden2, hidden, rtol=0, atol=1e-6)
    assert_close(refs2, refs)
    assert (unmasked[:, 1] - hidden[:, 1]).abs().max() > 1e-3  # the mask does change image 1's result
    assert_close(unmasked[:, 0], hidden[:, 0], rtol=1e-5, atol=1e-5)


def test_padding_mask_reaches_the_transformer_downsampled(model, monkeypatch):
    seen = {}
    original = model.transformer.forward

    def spy(features, mask, query_embed, pos_embed):
        seen["mask"], seen["shape"] = mask, features.shape
        return original(features, mask, query_embed, pos_embed)

    monkeypatch.setattr(model.transformer, "forward", spy)
    model.eval()
    with torch.no_grad():
        model(random_inputs([(64, 96), (40, 50)], seed=2))
    pixels = torch.ones(2, 64, 96)
    pixels[0, :, :] = 0
    pixels[1, :40, :50] = 0
    expected = F.interpolate(pixels[None], size=seen["shape"][-2:]).bool()[0]
    assert torch.equal(seen["mask"], expected) and expected[1].any() and not expected[0].any()


def test_eval_output_is_rescaled_clipped_top_k(model):
    model.eval()
    inputs = random_inputs([(64, 80)], seed=3)
    inputs[0].update(height=128, width=120)  # the "original" size differs from the network input
    with torch.no_grad():
        result = model(inputs)[0]["instances"]
        raw = model.forward_images(model.preprocess_image(inputs))
    assert result.image_size == (128, 120)
    scores, index = raw["pred_logits"][0].sigmoid().flatten().topk(100)
    boxes = box_cxcywh_to_xyxy(raw["pred_boxes"][0][index // NUM_CLASSES]) * torch.tensor([80, 64, 80, 64])
    boxes = boxes * torch.tensor([120 / 80, 128 / 64, 120 / 80, 128 / 64])
    boxes = torch.stack([boxes[:, 0].clamp(0, 120), boxes[:, 1].clamp(0, 128), boxes[:, 2].clamp(0, 120),
                         boxes[:, 3].clamp(0, 128)], dim=1)  # fmt: skip
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    assert_close(result.scores, scores[keep])
    assert torch.equal(result.pred_classes, (index % NUM_CLASSES)[keep])
    assert_close(result.pred_boxes.tensor, boxes[keep], rtol=1e-5, atol=1e-4)


def test_train_returns_exactly_the_weighted_losses_and_trains():
    model = build_tiny_model("conditional_detr", "model.backbone.freeze_at=1")
    model.train()
    losses = model(random_inputs([(64, 80), (48, 96)], seed=4, with_instances=True))
    assert sorted(losses) == sorted(
        f"loss_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")
    )
    sum(losses.values()).backward()
    assert model.transformer.decoder.layers[1].attentions[1].query_pos_sine_proj.weight.grad is not None
    assert model.backbone.stem.conv1.weight.grad is None  # frozen by freeze_at=1


def test_decoder_layer_override_keeps_aux_losses_consistent():
    model = build_tiny_model("conditional_detr", "model.transformer.decoder.num_layers=4")
    assert model.transformer.decoder.layers[0].attentions[1].query_pos_proj is not None
    assert model.transformer.decoder.layers[3].attentions[1].query_pos_proj is None  # only the first layer
    model.train()
    losses = model(random_inputs([(64, 64)], seed=5, with_instances=True))
    assert sorted(losses) == sorted(
        f"loss_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1", "_2")
    )


def test_pixel_normalisation_is_a_non_persistent_buffer(model):
    assert "pixel_mean" not in model.state_dict() and "pixel_mean" in dict(model.named_buffers())
    item = random_inputs([(8, 8)])[0]
    expected = (item["image"].float() - torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)) / torch.tensor(
        [58.395, 57.12, 57.375]
    ).view(3, 1, 1)
    assert_close(model.preprocess_image([item]).tensor[0], expected)

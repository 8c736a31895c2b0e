"""Channels-last backbones (the default): the same model in another memory layout, float rounding only;
convolution weights stored channels-last with gradients in that layout."""

import torch
from torch.testing import assert_close

from detrex.modeling.backbone import BasicStem, BottleneckBlock, ResNet, make_stage
from tests.tiny import build_tiny_model, random_inputs


def _raw_conditional(model, inputs) -> torch.Tensor:
    out = model.forward_images(model.preprocess_image(inputs))
    return torch.cat([out["pred_logits"], out["pred_boxes"]], dim=-1).float()


def _train_losses(model, batch, seed=0) -> dict:
    torch.manual_seed(seed)
    model.train()
    return model(batch)


def test_channels_last_backbone_matches_contiguous():
    """channels_last=True (default) vs False: same model, other memory layout, float rounding only."""
    models = {
        cl: build_tiny_model("conditional_detr", f"+model.backbone.channels_last={cl}")
        for cl in (True, False)
    }
    inputs = random_inputs([(64, 96), (80, 64)], with_instances=True)
    with torch.no_grad():
        raw = {cl: _raw_conditional(m.eval(), inputs) for cl, m in models.items()}
    assert_close(raw[True], raw[False], rtol=1e-4, atol=1e-5)
    losses = {cl: _train_losses(m, inputs) for cl, m in models.items()}
    for key in losses[True]:
        assert_close(losses[True][key], losses[False][key], rtol=1e-4, atol=1e-6)
    sum(losses[True].values()).backward()
    sum(losses[False].values()).backward()
    conv = "backbone.res4.1.conv2.weight"
    grads = {cl: dict(m.named_parameters())[conv].grad for cl, m in models.items()}
    assert_close(grads[True], grads[False], rtol=1e-3, atol=1e-5 * grads[False].abs().max().item())


def _strides(t: torch.Tensor) -> list[int]:
    return [s for s, n in zip(t.stride(), t.shape) if n > 1]  # a size-1 dimension's stride is arbitrary


def test_channels_last_backbone_stores_channels_last_weights_and_gradients():
    """The conv weights of a channels-last ResNet are stored channels-last, and their gradients (including
    the stride-2 3x3 ones computed by phases) come back in that layout; the outputs, gradients and
    state_dict round trip equal those of the same network in the default layout."""

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

"""Channels-last backbones (the default of both ResNet layouts) on the GPU: the same losses and gradients
as contiguous (NCHW) convolutions on a padded batch, with TF32 off; features come out channels-last and
the convolution weights' gradients keep the weights' strides (no layout copy per step)."""

import pytest
import torch

from detrex.config import LazyConfig, instantiate
from tests.cuda_utils import fp32_precision, parity_weights
from tests.projects.parity_utils import (
    case_overrides,
    train_inputs,
)

pytestmark = pytest.mark.cuda

CASES = ["anchor_detr_r50_50ep", "conditional_detr_r50_50ep"]


def build(case, weights, channels_last: bool):
    cfg = LazyConfig.load(case["config"])
    overrides = case_overrides(case) + [f"+model.backbone.channels_last={channels_last}"]
    model = instantiate(LazyConfig.apply_overrides(cfg, overrides).model)
    model.load_state_dict(weights)
    return model.to("cuda").train()


@pytest.mark.parametrize("name", CASES)
def test_channels_last_equals_contiguous_on_a_padded_batch(name):
    case, weights = parity_weights(name)  # a matching with a cost margin, unlike random weights
    batch = train_inputs(case)  # two images of different sizes: one padded batch
    results = {}
    with fp32_precision("ieee"):
        for channels_last in (True, False):
            model = build(case, weights, channels_last)
            features = []
            hook = model.backbone.register_forward_hook(
                lambda m, args, out, seen=features: seen.extend(out.values())
            )
            losses = model(batch)
            sum(losses.values()).backward()
            hook.remove()
            grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
            results[channels_last] = (losses, grads, features, model)

    losses, grads, features, model = results[True]
    ref_losses, ref_grads, _, _ = results[False]
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in features)
    convs = [(n, p) for n, p in model.backbone.named_parameters() if p.dim() == 4 and p.grad is not None]
    assert convs and all(p.grad.stride() == p.stride() for _, p in convs)
    assert sorted(losses) == sorted(ref_losses)
    for key, value in ref_losses.items():  # the parity tolerances of the losses
        torch.testing.assert_close(losses[key], value, rtol=1e-4, atol=1e-6, msg=key)
    # gradients: sums over many more products than the losses, in another order (the same comparison on
    # the CPU, oneDNN, torch 2.14.1: the whole gradient within 1.3e-3 of its norm, layer2 convolutions
    # within 0.55%; a bias the softmax cancels has a gradient of rounding noise only)
    assert grads.keys() == ref_grads.keys()
    whole = torch.cat([g.flatten().double() for g in grads.values()])
    ref_whole = torch.cat([g.flatten().double() for g in ref_grads.values()])
    assert float((whole - ref_whole).norm() / ref_whole.norm()) <= 5e-3
    for key, value in ref_grads.items():
        diff = float((grads[key].double() - value.double()).norm())
        assert diff <= 2e-2 * float(value.double().norm()) + 1e-6 * float(ref_whole.norm()), key

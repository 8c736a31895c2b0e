"""Both detectors with the CPU kernels on and off (the tests' tiny models with frozen norms in the backbone, so that
every kernel has work): with dropout 0 the same outputs, losses and gradients within float rounding; with
dropout > 0 the same keep rate in every dropout module."""

import pytest
import torch
from torch.testing import assert_close

from detrex.layers import Dropout, cpu_kernels
from tests.tiny import FAMILIES, FROZEN_NORMS, build_tiny_model, random_inputs

DROPOUT = {
    "anchor_detr": ["model.transformer.dropout={p}"],
    "conditional_detr": [
        f"model.transformer.{part}.{key}={{p}}"
        for part in ("encoder", "decoder")
        for key in ("attn_dropout", "ffn_dropout")
    ],
}


def build(family: str, dropout: float = 0.0):
    return build_tiny_model(family, *FROZEN_NORMS, *(o.format(p=dropout) for o in DROPOUT[family]))


def batch():
    return random_inputs([(112, 144), (128, 96)], with_instances=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_switch_on_and_off_agree_without_dropout(family):
    model = build(family)
    inputs = batch()
    results = {}
    for enabled in (True, False):
        with cpu_kernels.use_cpu_kernels(enabled):
            model.eval()
            with torch.no_grad():
                raw = model.forward_images(model.preprocess_image(inputs))
            model.train()
            model.zero_grad(set_to_none=True)
            losses = model(inputs)
            sum(losses.values()).backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            results[enabled] = (raw, {k: v.detach() for k, v in losses.items()}, grads)
    (raw_on, losses_on, grads_on), (raw_off, losses_off, grads_off) = results[True], results[False]
    assert_close(raw_on["pred_logits"], raw_off["pred_logits"], rtol=1e-4, atol=1e-5)
    assert_close(raw_on["pred_boxes"], raw_off["pred_boxes"], rtol=1e-4, atol=1e-6)
    assert losses_on.keys() == losses_off.keys()
    for key in losses_on:
        assert_close(losses_on[key], losses_off[key], rtol=1e-5, atol=1e-6)
    assert grads_on.keys() == grads_off.keys() and any("backbone" in n for n in grads_on)
    for name, grad in grads_on.items():
        scale = grads_off[name].abs().max().item()
        assert_close(grad, grads_off[name], rtol=1e-3, atol=1e-4 * scale + 1e-8, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
def test_dropout_keep_rate_is_the_same_with_the_switch_on_and_off(family):
    p = 0.3
    model = build(family, dropout=p).train()
    zeros, total = {}, {}

    def count(module, args, out):
        key = cpu_kernels.active_kernels() != frozenset()
        zeros[key] = zeros.get(key, 0) + (out == 0).sum().item() - (args[0] == 0).sum().item()
        total[key] = total.get(key, 0) + (args[0] != 0).sum().item()

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, Dropout)]
    for enabled in (True, False):
        with cpu_kernels.use_cpu_kernels(enabled):
            for seed in range(3):
                torch.manual_seed(seed)
                model(batch())
    for h in hooks:
        h.remove()
    for enabled in (True, False):
        assert total[enabled] > 50_000
        assert abs(zeros[enabled] / total[enabled] - p) < 0.01, (enabled, zeros[enabled] / total[enabled])

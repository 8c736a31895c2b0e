"""Speed options of both detectors against their float32 eager results: bfloat16 autocast
(train.amp.enabled=True) and torch.compile (train.compile.enabled=True)."""

import pytest
import torch
from torch.testing import assert_close

from detrex.layers import cpu_kernels
from tests.tiny import build_tiny_model, random_inputs

DROPOUT = [
    f"model.transformer.{p}.{k}=0.1" for p in ("encoder", "decoder") for k in ("attn_dropout", "ffn_dropout")
]


def _raw_conditional(model, inputs) -> torch.Tensor:
    """Last-layer (logits, boxes) of Conditional-DETR, concatenated: (B, Q, K + 4)."""
    out = model.forward_images(model.preprocess_image(inputs))
    return torch.cat([out["pred_logits"], out["pred_boxes"]], dim=-1).float()


def _train_losses(model, batch, seed=0) -> dict:
    torch.manual_seed(seed)
    model.train()
    return model(batch)


@pytest.mark.parametrize("family", ["anchor_detr", "conditional_detr"])
def test_bf16_autocast_stays_close_to_fp32(family):
    """bfloat16 autocast (train.amp.enabled=True): float32 losses and detections within a few percent."""
    model = build_tiny_model(family, *(DROPOUT if family == "conditional_detr" else ()))
    batch = random_inputs([(64, 96), (96, 64)], with_instances=True)
    # the float32 reference on stock operators: the CPU kernels' dropout draws other masks from the same
    # seed than the stock dropout, which is what runs under autocast
    with cpu_kernels.use_cpu_kernels(False):
        fp32 = _train_losses(model, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = _train_losses(model, batch)
    sum(bf16.values()).backward()  # the backward runs too
    assert fp32.keys() == bf16.keys()
    for key in fp32:
        assert bf16[key].dtype == torch.float32, key
        assert_close(bf16[key], fp32[key], rtol=0.05, atol=0.02)  # bf16 keeps 8 bits of mantissa
    model.eval()
    images = [{k: v for k, v in x.items() if k != "instances"} for x in batch[:1]]
    with torch.no_grad():
        ref = model(images)[0]["instances"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(images)[0]["instances"]
    assert out.scores.dtype == torch.float32 and out.pred_boxes.tensor.dtype == torch.float32
    top = min(len(ref), len(out), 5)
    assert_close(out.scores[:top], ref.scores[:top], rtol=0.0, atol=0.02)  # sorted scores, probability units


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """torch.compile (train.compile.enabled / benchmark --compile): same outputs as eager, rounding aside."""
    model = build_tiny_model("conditional_detr").eval()
    inputs = random_inputs([(64, 96)])
    with torch.no_grad():
        eager = _raw_conditional(model, inputs)
        compiled_forward = torch.compile(model.forward_images)
        compiled = compiled_forward(model.preprocess_image(inputs))
    compiled = torch.cat([compiled["pred_logits"], compiled["pred_boxes"]], dim=-1)
    assert_close(compiled, eager, rtol=1e-4, atol=1e-4)

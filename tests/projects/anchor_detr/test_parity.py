"""Parity with the official Anchor-DETR (tests/fixtures/parity/README.md), through the public API only:
LazyConfig -> instantiate -> DetectionCheckpointer.load -> model(batched_inputs)."""

import pytest
import torch

from detrex.layers import cpu_kernels
from tests.projects.parity_utils import (
    build_model,
    compare_eval,
    compare_losses,
    detrex_state_dict,
    load_and_check_every_tensor,
    load_case,
    official_state_dict,
    run_eval,
    run_train,
)

CASE = "anchor_detr_r50_50ep"


@pytest.fixture(autouse=True, params=[True, False], ids=["cpu_kernels_on", "cpu_kernels_off"])
def cpu_kernels_switch(request):
    """Every parity check runs with the CPU kernels on and off (stock PyTorch operators only)."""
    with cpu_kernels.use_cpu_kernels(request.param):
        yield


@pytest.fixture(scope="module")
def case():
    return load_case(CASE)


@pytest.fixture(scope="module")
def weights(case):
    official = official_state_dict(case)
    return official, detrex_state_dict(case, official)


@pytest.mark.parametrize("fmt", ["official", "detrex"])
def test_checkpoint_loads_and_matches_the_reference(case, weights, fmt, tmp_path):
    official, detrex = weights
    path = tmp_path / f"{fmt}.pth"
    torch.save({"model": official if fmt == "official" else detrex}, path)
    model = build_model(case)
    load_and_check_every_tensor(model, path, detrex)
    heads = model.transformer.class_embed
    assert all(h is heads[0] for h in heads)  # still one shared module after loading

    raw = []  # last-layer logits / boxes before post-processing: the first place to look if parity breaks
    hook = model.transformer.register_forward_hook(
        lambda m, args, out: raw.append((out[0][-1, 0], out[1][-1, 0]))
    )
    results = run_eval(model, case)
    hook.remove()
    for (e, instances), (logits, boxes) in zip(results, raw):
        torch.testing.assert_close(logits, e["raw"]["pred_logits"], rtol=0, atol=5e-5)
        torch.testing.assert_close(boxes, e["raw"]["pred_boxes"], rtol=0, atol=5e-6)
        compare_eval(instances, e, case["tolerances"])
    compare_losses(run_train(model, case), case["train"]["losses"], case["tolerances"])

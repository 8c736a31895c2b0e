"""Parity with the official Conditional-DETR (tests/fixtures/parity/README.md), through the public API only:
LazyConfig -> instantiate -> DetectionCheckpointer.load -> model(batched_inputs)."""

import pytest
import torch

from detrex.layers import cpu_kernels
from tests.projects.parity_utils import (
    build_model,
    compare_eval,
    compare_losses,
    detrex_state_dict,
    eval_inputs,
    load_and_check_every_tensor,
    load_case,
    official_state_dict,
    run_eval,
    run_train,
)

CASE = "conditional_detr_r50_50ep"


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


def check_raw_outputs(model, case):
    """Last-layer logits / boxes before post-processing, against the recorded raw outputs: where to look
    when the eval comparison fails (tolerances ~10x the two references' own disagreement)."""
    model.eval()
    for e in case["eval"]:
        with torch.no_grad():
            raw = model.forward_images(model.preprocess_image(eval_inputs(case, e)))
        torch.testing.assert_close(raw["pred_logits"][0], e["raw"]["pred_logits"], rtol=0, atol=5e-5)
        torch.testing.assert_close(raw["pred_boxes"][0], e["raw"]["pred_boxes"], rtol=0, atol=5e-6)


def test_official_weights_eval_and_train(case, weights, tmp_path):
    official, detrex = weights
    torch.save({"model": official}, tmp_path / "official.pth")  # OFFICIAL names, 91 class rows
    model = build_model(case)
    load_and_check_every_tensor(model, tmp_path / "official.pth", detrex)
    try:
        for e, instances in run_eval(model, case):
            compare_eval(instances, e, case["tolerances"])
    except AssertionError:
        check_raw_outputs(model, case)  # a more specific failure, if the raw outputs already differ
        raise
    compare_losses(run_train(model, case), case["train"]["losses"], case["tolerances"])


def test_detrex_weights_eval(case, weights, tmp_path):
    _, detrex = weights
    torch.save({"model": detrex}, tmp_path / "detrex.pth")
    model = build_model(case)  # a second, fresh model
    load_and_check_every_tensor(model, tmp_path / "detrex.pth", detrex)
    for e, instances in run_eval(model, case):
        compare_eval(instances, e, case["tolerances"])

"""The parity cases (tests/fixtures/parity/README.md) on the GPU, through the same public API as the CPU
tests: LazyConfig -> instantiate -> DetectionCheckpointer.load -> .to("cuda") -> model(batched_inputs).

With TF32 off ("ieee" float32 matmuls and convolutions) the CPU tolerances hold. With TF32 on ("tf32"
matmuls and convolutions, as cuDNN's convolutions run by default: 10-bit mantissas in the products,
float32 sums) the looser TF32_TOLERANCES hold. Each run records the differences it measured (``record_property("parity", ...)``), which
tools/gpu_check.py copies into its JSON.
"""

import json
import math

import pytest
import torch

from tests.cuda_utils import fp32_precision, parity_weights
from tests.projects.parity_utils import (
    build_model,
    compare_eval,
    compare_losses,
    load_and_check_every_tensor,
    official_state_dict,
    run_eval,
    run_train,
)

pytestmark = pytest.mark.cuda

CASES = ["anchor_detr_r50_50ep", "conditional_detr_r50_50ep"]
# about 5x what TF32 moved them when emulated on the CPU (float32 inputs of every matmul and convolution
# rounded to 10 mantissa bits; torch 2.14.1): scores 3.4e-4, boxes 6.5e-4 of the image side, losses 7.1e-4
TF32_TOLERANCES = {"score_atol": 2e-3, "box_atol_frac": 3e-3, "loss_rtol": 3e-3, "loss_atol": 1e-5}
UNBOUNDED = {"score_atol": math.inf, "box_atol_frac": math.inf, "loss_rtol": math.inf, "loss_atol": math.inf}


@pytest.mark.parametrize("precision", ["ieee", "tf32"])
@pytest.mark.parametrize("name", CASES)
def test_parity_on_cuda(name, precision, tmp_path, record_property):
    case, detrex = parity_weights(name)
    torch.save({"model": official_state_dict(case)}, tmp_path / "official.pth")  # official names, 91 rows
    model = build_model(case)
    load_and_check_every_tensor(model, tmp_path / "official.pth", detrex)
    model.to("cuda")
    with fp32_precision(precision):
        results = [(e, instances.to("cpu")) for e, instances in run_eval(model, case)]
        losses = run_train(model, case)

    expected_losses = case["train"]["losses"]
    measured = {
        "precision": precision,
        "eval": [compare_eval(instances, e, UNBOUNDED) for e, instances in results],
        "loss_max_rel_diff": max(
            abs(losses[k] - v) / max(abs(v), 1e-12) for k, v in expected_losses.items() if k in losses
        ),
    }
    record_property("parity", json.dumps(measured))

    tolerances = case["tolerances"] if precision == "ieee" else TF32_TOLERANCES
    for e, instances in results:
        compare_eval(instances, e, tolerances)
    compare_losses(losses, expected_losses, tolerances)

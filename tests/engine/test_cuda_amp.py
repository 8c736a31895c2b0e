"""Mixed precision on the GPU: a bf16-autocast step and an fp16 step with a GradScaler give finite losses
and gradients close to the float32 step's (TF32 off), and the GradScaler's state is saved in checkpoints
and restored on resume.

The comparison uses the parity cases' weights and images (tests/fixtures/parity): there the matching
has a cost margin, so the reduced precision moves the losses, not the assignment. The tolerances (largest
relative change of one loss; cosine and norm ratio of the whole gradient) are about 4x what the same step
changed under CPU autocast (torch 2.14.1, Anchor-DETR / Conditional-DETR): bf16 6.4e-3 / 5.0e-3, cosine
0.9964 / 0.9972, norm -1.0% / -0.5%; fp16 1.3e-3 / 9.8e-4, cosine 0.99945 / 0.99979, norm -0.15% / -0.05%.
"""

import contextlib
import itertools

import pytest
import torch

from detrex.checkpoint import DetectionCheckpointer
from detrex.engine import HookBase, Trainer
from tests.cuda_utils import (
    TINY_SIZES,
    build_cuda_model,
    build_optimizer,
    fp32_precision,
    parity_weights,
)
from tests.projects.parity_utils import (
    build_model,
    train_inputs,
)
from tests.tiny import CONFIGS, FAMILIES, random_inputs

pytestmark = pytest.mark.cuda

CASES = ["anchor_detr_r50_50ep", "conditional_detr_r50_50ep"]
TOLERANCES = {
    "bf16": {"loss_rtol": 2.5e-2, "grad_cosine": 0.985, "grad_norm_rtol": 5e-2},
    "fp16": {"loss_rtol": 5e-3, "grad_cosine": 0.997, "grad_norm_rtol": 1e-2},
}


def losses_and_gradient(model, batch, dtype: str):
    """The step's losses and its whole gradient (float64, one vector) under autocast to ``dtype``
    ("fp32": none). fp16 scales the loss with a GradScaler and unscales the gradient, as the Trainer does;
    a step whose scaled gradient overflowed is redone at the halved scale, as training does."""
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.0)  # unscale_ and step need one; lr 0 keeps the weights
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == "fp16")
    for _ in range(8):
        optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        with torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext():
            losses = model(batch)
        scaler.scale(sum(losses.values())).backward()
        scaler.unscale_(optimizer)
        gradient = torch.cat([p.grad.flatten().double() for p in params if p.grad is not None])
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        if not scaler.is_enabled() or scaler.get_scale() >= scale:  # the scale halves after an overflow
            break
    return {k: float(v) for k, v in losses.items()}, gradient


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("name", CASES)
def test_mixed_precision_step_is_close_to_float32(name, dtype, record_property):
    case, weights = parity_weights(name)
    model = build_model(case)
    model.load_state_dict(weights)
    model.to("cuda").train()
    batch = train_inputs(case)
    with fp32_precision("ieee"):
        ref_losses, ref_gradient = losses_and_gradient(model, batch, "fp32")
        losses, gradient = losses_and_gradient(model, batch, dtype)

    assert sorted(losses) == sorted(ref_losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    assert torch.isfinite(gradient).all()
    rel = {k: abs(losses[k] - v) / abs(v) for k, v in ref_losses.items()}
    cosine = float(gradient @ ref_gradient / (gradient.norm() * ref_gradient.norm()))
    norm_ratio = float(gradient.norm() / ref_gradient.norm())
    record_property(
        "amp",
        f"{dtype}: max loss rel {max(rel.values()):.2e}, grad cosine {cosine:.6f}, norm {norm_ratio:.4f}",
    )
    tol = TOLERANCES[dtype]
    worst = max(rel, key=rel.get)
    assert rel[worst] <= tol["loss_rtol"], f"{worst}: {losses[worst]:.6f} vs float32 {ref_losses[worst]:.6f}"
    assert cosine >= tol["grad_cosine"]
    assert abs(norm_ratio - 1) <= tol["grad_norm_rtol"]


class SaveAt(HookBase):
    def __init__(self, checkpointer, iteration):
        self.checkpointer, self.iteration = checkpointer, iteration

    def after_step(self):
        if self.trainer.iter == self.iteration:
            self.checkpointer.save(f"model_{self.iteration:07d}")


class RecordLosses(HookBase):
    def __init__(self):
        self.losses = {}

    def after_step(self):
        self.losses[self.trainer.iter] = self.trainer.storage.history("total_loss").latest()


def fp16_trainer(family, output_dir, hooks_before_save=()):
    cfg, model = build_cuda_model(CONFIGS[family], seed=0)
    batch = random_inputs(TINY_SIZES, with_instances=True)
    trainer = Trainer(
        model,
        itertools.repeat(batch),
        build_optimizer(cfg, model),
        amp_enabled=True,
        amp_dtype="float16",
        clip_grad_params={"max_norm": 0.1, "norm_type": 2.0},
    )
    record = RecordLosses()
    checkpointer = DetectionCheckpointer(model, str(output_dir), trainer=trainer)
    trainer.register_hooks([record, SaveAt(checkpointer, 2)])
    return trainer, checkpointer, record


@pytest.mark.parametrize("family", FAMILIES)
def test_grad_scaler_state_is_checkpointed_and_resumed(family, tmp_path):
    trainer, _, uninterrupted = fp16_trainer(family, tmp_path)
    trainer.train(0, 5)
    saved = torch.load(tmp_path / "model_0000002.pth", weights_only=False)["trainer"]["grad_scaler"]
    assert saved["_growth_tracker"] > 0 or saved["scale"] < 2.0**16  # not a fresh scaler's state

    resumed, checkpointer, after_resume = fp16_trainer(family, tmp_path)
    start = resumed.resume_or_load(checkpointer, "", resume=True)
    assert start == 3
    assert resumed.scaler.state_dict() == saved
    resumed.train(start, 5)
    assert all(torch.isfinite(torch.tensor(v)) for v in after_resume.losses.values())
    for it in (3, 4):  # the same steps as without the interruption, up to GPU summation order
        assert after_resume.losses[it] == pytest.approx(uninterrupted.losses[it], rel=1e-3)

"""The Trainer on a toy model and H2's real train loader: exact resume, NaN stop, AMP/clipping options."""

import json
import os

import numpy as np
import pytest
import torch
from fvcore.common.param_scheduler import MultiStepParamScheduler
from omegaconf import OmegaConf
from torch import nn

from detrex.checkpoint import DetectionCheckpointer
from detrex.data import build_detection_train_loader
from detrex.engine import (
    LRMultiplier,
    ModelEMA,
    Trainer,
    WarmupParamScheduler,
    default_hooks,
    get_default_optimizer_params,
)
from detrex.engine.train_loop import HookBase, NonFiniteForwardError, NonFiniteStepError
from detrex.utils.env import seed_all_rng

TIMING_KEYS = {"time", "data_time", "eta_seconds"}


class ToyDetector(nn.Module):
    """Two weighted losses from a small MLP with dropout (so that resuming must restore the RNG)."""

    def __init__(self, nan_at_call: int | None = None, inf_grad_at_call: int | None = None):
        super().__init__()
        self.inf_grad_at_call = inf_grad_at_call
        self.backbone = nn.Linear(4, 16)
        self.norm = nn.LayerNorm(16)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(16, 3)
        self.nan_at_call = nan_at_call
        self.calls = 0

    def forward(self, batch):
        x = torch.stack([d["x"] for d in batch])
        y = torch.stack([d["y"] for d in batch])
        out = self.head(self.drop(self.norm(self.backbone(x)).relu()))
        if self.calls == self.inf_grad_at_call:
            out = InfiniteGradient.apply(out)  # finite losses, an infinite gradient
        loss_class = (out[:, :2] - y[:, :2]).pow(2).mean()
        loss_bbox = 0.5 * (out[:, 2] - y[:, 2]).abs().mean()
        if self.calls == self.nan_at_call:
            loss_bbox = loss_bbox * float("nan")
        self.calls += 1
        return {"loss_class": loss_class, "loss_bbox": loss_bbox}


class InfiniteGradient(torch.autograd.Function):
    """The identity whose backward passes on an infinite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, float("inf"))


def toy_mapper(record):
    x = torch.tensor(record["x"]) + torch.from_numpy(np.random.normal(0, 0.1, 4)).float()  # "augmentation"
    return {"x": x, "y": torch.tensor(record["y"])}


DATASET = [
    {"x": [float(i), float(i % 3), 1.0, -float(i)], "y": [float(i % 2), 1.0 - i % 2, 0.1 * i]}
    for i in range(10)
]


class Interrupt(Exception):
    pass


class InterruptAfter(HookBase):
    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self):
        if self.trainer.iter == self.iteration:
            raise Interrupt(f"simulated interruption after iteration {self.iteration}")


def run_toy(
    output_dir,
    max_iter=12,
    resume=False,
    interrupt_after=None,
    nan_at_call=None,
    inf_grad_at_call=None,
    first_hooks=(),
    **trainer_kwargs,
):
    seed_all_rng(0)
    model = ToyDetector(nan_at_call, inf_grad_at_call)
    loader = build_detection_train_loader(
        DATASET, toy_mapper, total_batch_size=4, aspect_ratio_grouping=False
    )
    optimizer = torch.optim.AdamW(
        get_default_optimizer_params(model, base_lr=1e-2, weight_decay_norm=0.0), lr=1e-2
    )
    ema = ModelEMA(model, decay=0.8)
    trainer = Trainer(model, loader, optimizer, ema=ema, **trainer_kwargs)
    schedule = WarmupParamScheduler(MultiStepParamScheduler([1.0, 0.1], milestones=[8, 12]), 0.1, 0.25)
    scheduler = LRMultiplier(optimizer, schedule, max_iter=max_iter)
    checkpointer = DetectionCheckpointer(
        model, output_dir, trainer=trainer, scheduler=scheduler, ema_state=ema
    )
    cfg = OmegaConf.create(
        {
            "train": {
                "output_dir": output_dir,
                "max_iter": max_iter,
                "checkpointer": {"period": 3, "max_to_keep": 2},
                "eval_period": 4,
                "log_period": 1,
            }
        }
    )

    def evaluate():  # draws random numbers: EvalHook must leave the training RNG as it was
        probe = torch.randn(2, 4)
        with ema.apply_and_restore():
            ema_out = float(model.head(model.norm(model.backbone(probe))).sum().detach())
        return {"toy": {"weight_sum": float(model.head.weight.detach().sum()), "ema_out": ema_out}}

    hooks = [*first_hooks, *default_hooks(cfg, checkpointer, scheduler, evaluate)]
    if interrupt_after is not None:
        hooks.append(InterruptAfter(interrupt_after))
    trainer.register_hooks(hooks)
    start_iter = trainer.resume_or_load(checkpointer, "", resume=resume)
    trainer.train(start_iter, max_iter)
    return trainer


def read_metrics(output_dir):
    by_iter = {}
    with open(os.path.join(output_dir, "metrics.json")) as f:
        for line in f:
            record = json.loads(line)
            by_iter.setdefault(record.pop("iteration"), {}).update(record)
    return {it: {k: v for k, v in r.items() if k not in TIMING_KEYS} for it, r in by_iter.items()}


def test_resume_reproduces_uninterrupted_losses(tmp_path):
    full_dir, split_dir = str(tmp_path / "full"), str(tmp_path / "split")
    run_toy(full_dir)
    with pytest.raises(Interrupt):
        run_toy(split_dir, interrupt_after=5)
    assert open(os.path.join(split_dir, "last_checkpoint")).read().strip() == "model_0000005.pth"
    resumed = run_toy(split_dir, resume=True)
    assert resumed.start_iter == 6

    full, split = read_metrics(full_dir), read_metrics(split_dir)
    assert sorted(full) == list(range(12)) and sorted(split) == sorted(full)
    for it in full:
        assert split[it] == full[it], it  # losses, lr, eval results (plain and EMA): bit-identical
    assert {"loss_class", "loss_bbox", "total_loss", "lr", "toy/weight_sum", "toy/ema_out"} <= set(full[11])
    assert full[3]["toy/weight_sum"] == split[3]["toy/weight_sum"]

    # final weights and EMA equal too; max_to_keep=2 keeps the two newest periodic checkpoints
    a = torch.load(os.path.join(full_dir, "model_final.pth"), weights_only=False)
    b = torch.load(os.path.join(split_dir, "model_final.pth"), weights_only=False)
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=0, atol=0)
        torch.testing.assert_close(b["ema_state"][key], a["ema_state"][key], rtol=0, atol=0)
    assert a["iteration"] == 11 and a["trainer"]["iteration"] == 11
    assert set(a["trainer"]) >= {"iteration", "optimizer", "storage", "rng_states"}
    assert a["scheduler"]["last_epoch"] == 12
    assert sorted(f for f in os.listdir(full_dir) if f.endswith(".pth")) == [
        "model_0000005.pth",
        "model_0000008.pth",
        "model_final.pth",
    ]


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path):
    out = str(tmp_path)
    with pytest.raises(NonFiniteStepError, match=r"iteration=7: loss_bbox") as info:
        run_toy(out, nan_at_call=7)
    assert "loss_class" in str(info.value)  # the whole (finite) loss dict is shown too
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == "model_0000005.pth"
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    saved = torch.load(os.path.join(out, "model_0000005.pth"), weights_only=False)
    assert saved["iteration"] == 5
    logged = read_metrics(out)
    assert max(logged) == 6 and "total_loss" in logged[6]  # nothing was logged for the failed step


class RecordWeights(HookBase):
    """Keeps a copy of the model's weights and the optimizer's step count after every step."""

    def after_step(self):
        self.weights = {k: v.clone() for k, v in self.trainer.model.state_dict().items()}
        self.adam_steps = [float(s["step"]) for s in self.trainer.optimizer.state.values()]


@pytest.mark.parametrize("clip", [None, {"max_norm": 0.1, "norm_type": 2.0}])
def test_non_finite_gradient_stops_before_the_update(tmp_path, clip):
    out, record = str(tmp_path), RecordWeights()
    with pytest.raises(NonFiniteStepError) as info:
        run_toy(out, inf_grad_at_call=7, clip_grad_params=clip, first_hooks=[record])
    tip = "" if clip else " or gradient clipping (train.clip_grad.enabled=True)"
    assert str(info.value) == (
        "The gradient norm became nan at iteration=7 (the losses were finite). Training stopped before this "
        f"step's update. Try a lower optimizer.lr (this step's lr: 0.01){tip}."
    )
    trainer_model = record.trainer.model
    for key, value in trainer_model.state_dict().items():  # the weights of iteration 6, all finite
        torch.testing.assert_close(value, record.weights[key], rtol=0, atol=0)
        assert torch.isfinite(value).all()
    assert (
        [float(s["step"]) for s in record.trainer.optimizer.state.values()] == record.adam_steps == [7.0] * 6
    )
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == "model_0000005.pth"


class PoisonWeights(HookBase):
    """Puts a NaN into the head's bias after ``iteration``, as an update gone wrong would."""

    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self):
        if self.trainer.iter == self.iteration:
            with torch.no_grad():
                self.trainer.model.head.bias[0] = float("nan")


def test_weights_with_nan_are_never_written(tmp_path):
    out = str(tmp_path)
    with pytest.raises(NonFiniteStepError) as info:
        run_toy(out, first_hooks=[PoisonWeights(8)])
    assert str(info.value).startswith(
        "After iteration=8 1 of the model's 6 tensors hold NaN or Inf (e.g. head.bias): model_0000008.pth was "
        "not written. Try a lower optimizer.lr"
    )
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == "model_0000005.pth"
    assert sorted(f for f in os.listdir(out) if f.endswith(".pth")) == [
        "model_0000002.pth",
        "model_0000005.pth",
    ]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_amp_and_clipping_run_on_cpu(tmp_path, dtype, caplog):
    with caplog.at_level("INFO", logger="detrex.engine.train_loop"):
        trainer = run_toy(
            str(tmp_path),
            max_iter=3,
            amp_enabled=True,
            amp_dtype=dtype,
            clip_grad_params={"max_norm": 0.01, "norm_type": 2.0},
        )
    scaling = " with a GradScaler" if dtype == "float16" else ""
    assert f"Mixed precision: cpu autocast to {dtype}{scaling}" in caplog.text
    assert isinstance(trainer.autocast, torch.autocast) and trainer.autocast.fast_dtype == getattr(
        torch, dtype
    )
    assert trainer.scaler.is_enabled() == (dtype == "float16")  # loss scaling only for float16
    saved = torch.load(os.path.join(str(tmp_path), "model_final.pth"), weights_only=False)
    assert ("grad_scaler" in saved["trainer"]) == (dtype == "float16")
    if dtype == "float16":
        assert saved["trainer"]["grad_scaler"]["scale"] == trainer.scaler.get_scale()
    metrics = read_metrics(str(tmp_path))
    assert all(np.isfinite(metrics[i]["total_loss"]) for i in range(3))


def test_amp_off_uses_no_op_contexts():
    model = nn.Linear(2, 1)
    trainer = Trainer(model, None, torch.optim.SGD(model.parameters(), lr=0.1))
    assert not isinstance(trainer.autocast, torch.autocast) and not trainer.scaler.is_enabled()
    with pytest.raises(ValueError, match="amp.dtype"):
        Trainer(model, None, torch.optim.SGD(model.parameters(), lr=0.1), amp_enabled=True, amp_dtype="fp8")


def test_clip_grad_limits_the_update():
    model = nn.Linear(3, 1)
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    trainer = Trainer(model, None, optimizer, clip_grad_params={"max_norm": 0.5, "norm_type": 2.0})
    (100.0 * model(torch.ones(1, 3)).sum()).backward()  # gradient: 100 everywhere, norm 200
    norm = trainer.unscale_and_clip()
    optimizer.step()
    assert norm.item() == pytest.approx(200.0)  # the norm before clipping
    torch.testing.assert_close(model.weight.detach(), w - 0.25, rtol=0, atol=1e-6)  # scaled to norm 0.5
    torch.testing.assert_close(model.bias.detach(), b - 0.25, rtol=0, atol=1e-6)
    with pytest.raises(KeyError, match="max_norm"):
        Trainer(model, None, optimizer, clip_grad_params={"max_nrm": 1.0})


class MatcherLike(nn.Module):
    """Fails on NaN boxes the way a Hungarian matcher does: with a ValueError that does not say why."""

    def forward(self, boxes):
        if not torch.isfinite(boxes).all():
            raise ValueError("degenerate boxes")
        return boxes.sum()


class BuggyMatcher(nn.Module):
    def forward(self, boxes):
        raise KeyError("a bug")


class BoxModel(nn.Module):
    def __init__(self, scale: float, matcher: nn.Module):
        super().__init__()
        self.backbone = nn.Linear(2, 4)
        self.box_head = nn.Linear(4, 4)
        self.matcher = matcher
        with torch.no_grad():
            self.box_head.weight.fill_(scale)  # 1e38: finite, but the head's output overflows to inf

    def forward(self, batch):
        boxes = self.box_head(self.backbone(torch.ones(1, 2)).relu() + 1)
        return {"loss_bbox": self.matcher(boxes - boxes)}  # inf - inf = NaN


def test_a_forward_failing_on_nan_values_names_where_they_appeared():
    model = BoxModel(1e38, MatcherLike())
    trainer = Trainer(model, None, torch.optim.SGD(model.parameters(), lr=0.1))
    trainer._data_iter, trainer.iter = iter([[{}]]), 4
    with pytest.raises(NonFiniteForwardError) as info:  # a FloatingPointError found by this rank alone
        trainer.run_step()
    assert str(info.value) == (
        "At iteration=4 the forward pass produced NaN/Inf, first in the output of box_head; the weights are "
        "finite, but the largest is 1e+38 (box_head.weight). Training stopped before this step's update. Try "
        "a lower optimizer.lr (this step's lr: 0.1) or gradient clipping (train.clip_grad.enabled=True)."
    )
    assert isinstance(info.value.__cause__, ValueError)  # the original error is chained, not lost


def test_a_forward_failing_with_finite_values_keeps_its_error():
    model = BoxModel(1.0, BuggyMatcher())
    trainer = Trainer(model, None, torch.optim.SGD(model.parameters(), lr=0.1))
    trainer._data_iter = iter([[{}]])
    with pytest.raises(KeyError, match="a bug"):
        trainer.run_step()


def test_fp16_loss_scaling_skips_an_overflowing_step_instead_of_stopping(tmp_path):
    runs = {}
    for inf_grad_at_call in (None, 7):
        record = RecordWeights()
        trainer = run_toy(str(tmp_path / str(inf_grad_at_call)), max_iter=9, amp_enabled=True,
                          amp_dtype="float16", inf_grad_at_call=inf_grad_at_call, first_hooks=[record])  # fmt: skip
        assert trainer.completed
        runs[inf_grad_at_call] = trainer.scaler.get_scale(), record.adam_steps[0]
    (scale, steps), (scale_inf, steps_inf) = runs[None], runs[7]
    assert scale_inf == scale / 2 and steps_inf == steps - 1  # that step skipped, the scale halved once

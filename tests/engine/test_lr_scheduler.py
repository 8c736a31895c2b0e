import pytest
import torch
from fvcore.common.param_scheduler import (
    CompositeParamScheduler,
    CosineParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
)

from detrex.config import LazyConfig, instantiate
from detrex.engine import LRMultiplier, WarmupParamScheduler


def _optimizer(lr=1e-4):
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.1 * lr}], lr=lr, momentum=0.9)


def test_warmup_multistep_values_exact():
    sched = WarmupParamScheduler(
        MultiStepParamScheduler(values=[1.0, 0.1], milestones=[80, 100]),
        warmup_factor=0.001,
        warmup_length=10 / 100,
    )
    expected = [0.001 + (1 - 0.001) * i / 10 for i in range(10)] + [1.0] * 70 + [0.1] * 21
    got = [sched(i / 100) for i in range(101)]
    assert got == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("method", ["linear", "constant"])
@pytest.mark.parametrize("rescale", [False, True])
def test_warmup_matches_fvcore_composite(method, rescale):
    base = CosineParamScheduler(1.0, 0.0)
    ours = WarmupParamScheduler(base, 0.01, 0.2, method, rescale_interval=rescale)
    start = 0.01 * base(0.0)
    end = base(0.0) if rescale else base(0.2)
    warm = LinearParamScheduler(start, end) if method == "linear" else LinearParamScheduler(start, start)
    reference = CompositeParamScheduler(
        [warm, base], interval_scaling=["rescaled", "rescaled" if rescale else "fixed"], lengths=[0.2, 0.8]
    )
    for i in range(101):
        assert ours(i / 100) == pytest.approx(reference(i / 100), rel=1e-12, abs=1e-15), i


def test_lr_multiplier_steps_every_group_and_resumes():
    opt = _optimizer()
    multiplier = WarmupParamScheduler(MultiStepParamScheduler([1.0, 0.1], milestones=[6, 10]), 0.5, 0.2)
    sched = LRMultiplier(opt, multiplier, max_iter=10)
    lrs = []
    for _ in range(10):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    factors = [0.5, 0.75, 1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1]
    torch.testing.assert_close(torch.tensor(lrs), torch.tensor([[1e-4 * f, 1e-5 * f] for f in factors]))
    assert sched.state_dict() == {"base_lrs": [1e-4, 1e-5], "last_epoch": 10, "max_iter": 10}

    # a scheduler rebuilt and loaded from the state at iteration 6 continues with the same lrs
    opt2 = _optimizer()
    sched2 = LRMultiplier(opt2, multiplier, max_iter=10)
    state = {"base_lrs": [1e-4, 1e-5], "last_epoch": 6}
    sched2.load_state_dict(state)
    opt2.step()
    sched2.step()
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([1e-5, 1e-6])


def test_resuming_towards_another_max_iter_says_the_schedule_stretches(caplog):
    multiplier = CosineParamScheduler(1.0, 0.0)
    sched = LRMultiplier(_optimizer(), multiplier, max_iter=40)
    with caplog.at_level("WARNING", logger="detrex.engine.lr_scheduler"):
        sched.load_state_dict({"base_lrs": [1e-4, 1e-5], "last_epoch": 20, "max_iter": 40})  # the same length
        assert caplog.text == ""
        sched.load_state_dict({"base_lrs": [1e-4, 1e-5], "last_epoch": 20, "max_iter": 30})
    assert "Resuming with max_iter=40, but the checkpoint was trained towards max_iter=30" in caplog.text
    assert f"from {multiplier(20 / 30):.4g} to {multiplier(20 / 40):.4g}" in caplog.text


def test_resuming_with_another_lr_continues_the_schedule_with_it(caplog):
    """--resume optimizer.lr=... (say after a NaN stop): the new lrs win over the checkpoint's."""
    multiplier = CosineParamScheduler(1.0, 0.0)
    trained = _optimizer()
    LRMultiplier(trained, multiplier, max_iter=40)
    saved_optimizer = trained.state_dict()  # holds lr and initial_lr 1e-4 / 1e-5
    opt = _optimizer(lr=3e-5)
    sched = LRMultiplier(opt, multiplier, max_iter=40)
    opt.load_state_dict(saved_optimizer)
    with caplog.at_level("WARNING", logger="detrex.engine.lr_scheduler"):
        sched.load_state_dict({"base_lrs": [1e-4, 1e-5], "last_epoch": 20, "max_iter": 40})
    assert sched.base_lrs == pytest.approx([3e-5, 3e-6])
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(
        [3e-5 * multiplier(0.5), 3e-6 * multiplier(0.5)]
    )
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([3e-5, 3e-6])
    assert (
        "Resuming with base lrs [3e-05, 3e-06] instead of the checkpoint's [0.0001, 1e-05]: the lr schedule "
        "continues from iteration 20 with the new ones" in caplog.text
    )
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx(
        [3e-5 * multiplier(21 / 40), 3e-6 * multiplier(21 / 40)]
    )


def test_lr_multiplier_rejects_non_fvcore():
    with pytest.raises(TypeError, match="ParamScheduler"):
        LRMultiplier(_optimizer(), lambda where: 1.0, max_iter=10)


def test_coco_schedule_configs():
    cfg = LazyConfig.load("configs/common/coco_schedule.py")
    sched = instantiate(cfg.lr_multiplier_50ep)
    max_iter = 375000
    assert sched(0.0) == 1.0
    assert sched(299999 / max_iter) == 1.0
    assert sched(300000 / max_iter) == pytest.approx(0.1)
    assert sched(1.0) == pytest.approx(0.1)
    warm = instantiate(cfg.lr_multiplier_12ep_warmup)  # 7.5 warm-up iterations out of 90000
    assert warm(0.0) == pytest.approx(0.001)
    assert warm(4 / 90000) == pytest.approx(0.001 + 0.999 * 4 / 7.5)
    assert warm(8 / 90000) == 1.0
    assert warm(82500 / 90000) == pytest.approx(0.1)
    one_x = instantiate(cfg.lr_multiplier_1x)
    assert [one_x(i / 90000) for i in (0, 1000, 59999, 60000, 80000)] == pytest.approx(
        [0.001, 1.0, 1.0, 0.1, 0.01]
    )

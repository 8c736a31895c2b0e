import pytest
import torch
from torch import nn

from detrex.config import LazyConfig, instantiate
from detrex.engine import get_default_optimizer_params


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)
        self.tied = self.head  # a shared module: its parameters must appear once
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _lookup(groups, model):
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for g in groups:
        for p in g["params"]:
            out[names[id(p)]] = {k: v for k, v in g.items() if k != "params"}
    return out


def test_groups_norm_decay_and_lr_factor():
    model = Toy()
    groups = get_default_optimizer_params(
        model,
        base_lr=1e-4,
        weight_decay=0.1,
        weight_decay_norm=0.0,
        lr_factor_func=lambda name: 0.1 if "backbone" in name else 1,
    )
    hp = _lookup(groups, model)
    assert set(hp) == {
        "backbone.0.weight",
        "backbone.0.bias",
        "backbone.1.weight",
        "backbone.1.bias",
        "proj.weight",
        "proj.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    }
    assert sum(len(g["params"]) for g in groups) == 10  # tied head once, frozen left out
    assert hp["backbone.0.weight"] == {"lr": pytest.approx(1e-5), "weight_decay": 0.1}
    assert hp["backbone.1.weight"] == {"lr": pytest.approx(1e-5), "weight_decay": 0.0}
    assert hp["norm.bias"] == {"lr": 1e-4, "weight_decay": 0.0}
    assert hp["proj.weight"] == {"lr": 1e-4, "weight_decay": 0.1}
    assert len(groups) == 4  # merged by identical hyperparameters


def test_bias_and_overrides():
    model = Toy()
    groups = get_default_optimizer_params(
        model,
        base_lr=1.0,
        bias_lr_factor=2.0,
        weight_decay_bias=0.0,
        overrides={"weight": {"weight_decay": 5.0}},
    )
    hp = _lookup(groups, model)
    assert hp["proj.bias"] == {"lr": 2.0, "weight_decay": 0.0}
    assert hp["proj.weight"] == {"lr": 1.0, "weight_decay": 5.0}
    with pytest.raises(ValueError, match="base_lr"):
        get_default_optimizer_params(model, lr_factor_func=lambda n: 1.0)
    with pytest.raises(ValueError, match="bias"):
        get_default_optimizer_params(model, weight_decay_bias=0.0, overrides={"bias": {"lr": 1.0}})


def test_optim_config_adamw():
    cfg = LazyConfig.load("configs/common/optim.py")
    cfg.AdamW.params.model = Toy()
    cfg.AdamW.params.lr_factor_func = lambda name: 0.1 if "backbone" in name else 1
    opt = instantiate(cfg.AdamW)
    assert isinstance(opt, torch.optim.AdamW)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == pytest.approx([1e-5, 1e-4])  # base_lr follows optimizer.lr through ${..lr}
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.1}
    assert opt.defaults["betas"] == (0.9, 0.999)


def test_config_adamw_is_fused_and_matches_the_loop_implementation():
    """configs/common/optim.py's AdamW uses the fused kernel (torch >= 2.4): same updates as the
    per-parameter loop, float rounding aside, over a few steps with several parameter groups."""
    cfg = LazyConfig.load("configs/common/optim.py")
    if not cfg.AdamW.fused:  # the config turns it off before torch 2.4
        pytest.skip("fused AdamW on the CPU needs torch >= 2.4")
    models = [Toy(), Toy()]
    models[1].load_state_dict(models[0].state_dict())
    cfg.AdamW.params.model = models[0]
    cfg.AdamW.params.lr_factor_func = lambda name: 0.1 if "backbone" in name else 1
    fused = instantiate(cfg.AdamW)
    assert all(group["fused"] for group in fused.param_groups)
    cfg.AdamW.params.model = models[1]
    cfg.AdamW.fused = False
    loop = instantiate(cfg.AdamW)
    x = torch.randn(2, 3, 5, 5)
    for _ in range(3):
        for model, opt in zip(models, (fused, loop)):
            opt.zero_grad()
            feats = model.backbone(x).mean((2, 3))
            model.head(model.norm(model.proj(feats))).square().sum().backward()
            opt.step()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)

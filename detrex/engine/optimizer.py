"""Optimizer parameter groups (detectron2's ``get_default_optimizer_params``) and gradient clipping."""

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["get_default_optimizer_params", "reduce_param_groups", "NORM_MODULE_TYPES"]

NORM_MODULE_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


def get_default_optimizer_params(
    model: nn.Module,
    base_lr: float | None = None,
    weight_decay: float | None = None,
    weight_decay_norm: float | None = None,
    bias_lr_factor: float | None = 1.0,
    weight_decay_bias: float | None = None,
    lr_factor_func: Callable[[str], float] | None = None,
    overrides: dict[str, dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups for ``torch.optim`` with per-parameter lr / weight decay.

    Args:
        model: its trainable parameters (``requires_grad``) are grouped; shared ones appear once.
        base_lr, weight_decay: defaults for every group; None leaves them to the optimizer's own.
        weight_decay_norm: weight decay of parameters of normalization layers (usually 0).
        bias_lr_factor: lr multiplier of parameters named ``bias`` (needs ``base_lr``).
        weight_decay_bias: weight decay of parameters named ``bias``.
        lr_factor_func: maps "module.path.param_name" to an lr multiplier, e.g.
            ``lambda name: 0.1 if "backbone" in name else 1`` (needs ``base_lr``).
        overrides: {param_name: {"lr": ..., "weight_decay": ...}} for parameters with that
            (unqualified) name, e.g. {"embedding": {"weight_decay": 0.0}}.

    Example::

        torch.optim.AdamW(get_default_optimizer_params(model, base_lr=1e-4, weight_decay_norm=0.0),
                          lr=1e-4, weight_decay=1e-4)
    """
    overrides = dict(overrides or {})
    defaults: dict[str, float] = {}
    if base_lr is not None:
        defaults["lr"] = base_lr
    if weight_decay is not None:
        defaults["weight_decay"] = weight_decay
    bias_overrides: dict[str, float] = {}
    if bias_lr_factor is not None and bias_lr_factor != 1.0:
        if base_lr is None:
            raise ValueError("get_default_optimizer_params: bias_lr_factor requires base_lr")
        bias_overrides["lr"] = base_lr * bias_lr_factor
    if weight_decay_bias is not None:
        bias_overrides["weight_decay"] = weight_decay_bias
    if bias_overrides:
        if "bias" in overrides:
            raise ValueError(
                "get_default_optimizer_params: 'bias' is set by both overrides and bias_* options"
            )
        overrides["bias"] = bias_overrides
    if lr_factor_func is not None and base_lr is None:
        raise ValueError("get_default_optimizer_params: lr_factor_func requires base_lr")

    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            hyperparams = dict(defaults)
            if weight_decay_norm is not None and isinstance(module, NORM_MODULE_TYPES):
                hyperparams["weight_decay"] = weight_decay_norm
            if lr_factor_func is not None:
                hyperparams["lr"] *= lr_factor_func(f"{module_name}.{param_name}")
            hyperparams.update(overrides.get(param_name, {}))
            groups.append({"params": [param], **hyperparams})
    return reduce_param_groups(groups)


def reduce_param_groups(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge groups with identical hyperparameters (keeping parameter order), so the optimizer
    has a few groups instead of one per parameter."""
    merged: dict[tuple, dict[str, Any]] = {}
    for group in groups:
        hyperparams = tuple(sorted((k, v) for k, v in group.items() if k != "params"))
        target = merged.setdefault(hyperparams, {"params": [], **dict(hyperparams)})
        target["params"].extend(group["params"])
    return list(merged.values())


def clip_grad_norm(params, max_norm: float, norm_type: float = 2.0) -> torch.Tensor | None:
    """Clip the gradient norm of the parameters that have a gradient; returns the total norm."""
    params = [p for p in params if p.grad is not None]
    if not params:
        return None
    return torch.nn.utils.clip_grad_norm_(params, max_norm=max_norm, norm_type=norm_type)

"""Optimizers for lazy configs. ``optimizer.params.model`` is set to the built model by train_net.py
before ``instantiate(cfg.optimizer)``; model configs may add
``optimizer.params.lr_factor_func = lambda module_name: 0.1 if "backbone" in module_name else 1``."""

import torch

from detrex.config import LazyCall as L
from detrex.engine import get_default_optimizer_params

# One fused kernel for the whole AdamW update (CPU and CUDA since torch 2.4) instead of a loop over the
# parameters: the same update up to float rounding.
_FUSED_ADAMW = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)

SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(weight_decay_norm=0.0),
    lr=0.02,
    momentum=0.9,
    weight_decay=1e-4,
)

AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        base_lr="${..lr}",  # lr_factor_func multiplies this one lr
        weight_decay_norm=0.0,
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
    fused=_FUSED_ADAMW,
)

"""Learning-rate multipliers (``lr_multiplier``) for COCO schedules, stated in epochs of 7500 iterations
at batch size 16 (118k images / 16 ~ 7393, rounded as in detrex). The schedule is a function of
iteration / train.max_iter, so the decay stays at the same fraction of training if max_iter changes."""

from fvcore.common.param_scheduler import MultiStepParamScheduler

from detrex.config import LazyCall as L
from detrex.engine import WarmupParamScheduler


def default_X_scheduler(num_X: float):
    """detectron2's "1x" family: num_X x 90000 iterations at batch 16 (~12 epochs per 1x), lr x0.1
    twice near the end, 1000 warm-up iterations from 0.001."""
    total_steps_16bs = num_X * 90000
    if num_X <= 2:
        milestones = [60000, 80000, 90000]  # scale-invariant: the same fractions for 1x and 2x
    else:
        milestones = [total_steps_16bs - 60000, total_steps_16bs - 20000, total_steps_16bs]
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=milestones),
        warmup_length=1000 / total_steps_16bs,
        warmup_method="linear",
        warmup_factor=0.001,
    )


def default_coco_scheduler(
    epochs: float = 50, decay_epochs: float = 40, warmup_epochs: float = 0, base_steps: int = 7500
):
    """lr x1 until ``decay_epochs``, then x0.1 until ``epochs``; optional linear warm-up from 0.001
    over ``warmup_epochs``. ``base_steps``: iterations per epoch (7500 = COCO at batch 16)."""
    total_steps = epochs * base_steps
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[1.0, 0.1],
            milestones=[decay_epochs * base_steps, total_steps],
        ),
        warmup_length=warmup_epochs * base_steps / total_steps,
        warmup_method="linear",
        warmup_factor=0.001,
    )


lr_multiplier_1x = default_X_scheduler(1)
lr_multiplier_2x = default_X_scheduler(2)
lr_multiplier_3x = default_X_scheduler(3)

# DETR-family schedules
lr_multiplier_50ep = default_coco_scheduler(50, 40, 0)  # 375000 iterations, drop at 300000
lr_multiplier_36ep = default_coco_scheduler(36, 30, 0)
lr_multiplier_24ep = default_coco_scheduler(24, 20, 0)
lr_multiplier_12ep = default_coco_scheduler(12, 11, 0)
lr_multiplier_50ep_warmup = default_coco_scheduler(50, 40, 1e-3)  # 7.5 warm-up iterations, as detrex
lr_multiplier_12ep_warmup = default_coco_scheduler(12, 11, 1e-3)

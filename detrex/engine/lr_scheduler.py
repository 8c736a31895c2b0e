"""Learning-rate schedules: fvcore param schedulers (a multiplier of "where" in [0, 1]) with a warm-up
stage, applied to an optimizer by ``LRMultiplier`` at every iteration."""

import logging
import math

import torch
from fvcore.common.param_scheduler import ParamScheduler
from torch.optim.lr_scheduler import LRScheduler

logger = logging.getLogger(__name__)

__all__ = ["WarmupParamScheduler", "LRMultiplier", "build_lr_scheduler"]


class WarmupParamScheduler(ParamScheduler):
    """``scheduler`` preceded by a warm-up over the first ``warmup_length`` fraction of training.

    During warm-up the value goes from ``warmup_factor * scheduler(0)`` to ``scheduler(warmup_length)``
    (linearly, or stays at the start value for "constant"); afterwards it is ``scheduler(where)``, or,
    with ``rescale_interval``, ``scheduler`` stretched over the remaining ``1 - warmup_length``.
    """

    def __init__(
        self,
        scheduler: ParamScheduler,
        warmup_factor: float,
        warmup_length: float,
        warmup_method: str = "linear",
        rescale_interval: bool = False,
    ):
        if warmup_method not in ("linear", "constant"):
            raise ValueError(f"warmup_method={warmup_method!r}: expected 'linear' or 'constant'")
        if not 0.0 <= warmup_length < 1.0:
            raise ValueError(f"warmup_length={warmup_length}: expected a fraction of training in [0, 1)")
        self.scheduler = scheduler
        self.warmup_length = warmup_length
        self.warmup_method = warmup_method
        self.rescale_interval = rescale_interval
        self.start_value = warmup_factor * scheduler(0.0)
        self.end_value = scheduler(0.0 if rescale_interval else warmup_length)

    def __call__(self, where: float) -> float:
        # same phase boundary as fvcore's CompositeParamScheduler (epsilon guards float round-off)
        if where + self.WHERE_EPSILON <= self.warmup_length:
            if self.warmup_method == "constant":
                return self.start_value
            alpha = where / self.warmup_length
            return self.start_value + alpha * (self.end_value - self.start_value)
        if self.rescale_interval:
            where = (where - self.warmup_length) / (1.0 - self.warmup_length)
        return self.scheduler(where)


class LRMultiplier(LRScheduler):
    """Sets every param group's lr to its initial lr times ``multiplier(iteration / max_iter)``.

    The relative lrs between param groups (e.g. backbone x0.1) stay fixed. Only ``base_lrs`` and
    ``last_epoch`` (= the number of iterations stepped) are saved: the fvcore schedule is stateless.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        multiplier: ParamScheduler,
        max_iter: int,
        last_iter: int = -1,
    ):
        if not isinstance(multiplier, ParamScheduler):
            raise TypeError(
                f"LRMultiplier(multiplier=...) must be an fvcore ParamScheduler, got {type(multiplier).__name__}"
            )
        if max_iter <= 0:
            raise ValueError(f"LRMultiplier: max_iter must be positive, got {max_iter}")
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch, "max_iter": self._max_iter}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue the saved schedule. When this run's optimizer was built with other lrs than the
        checkpoint's (``--resume optimizer.lr=...`` after a NaN stop), the new ones win: the schedule goes on
        from the saved iteration with them, and a warning says so. Call it after the optimizer's own
        ``load_state_dict``, which restores the saved lrs (the checkpointer loads "trainer" first)."""
        configured = list(self.base_lrs)  # this run's initial lrs, from its config
        saved = [float(lr) for lr in state_dict["base_lrs"]]
        self.last_epoch = int(state_dict["last_epoch"])
        changed = len(saved) == len(configured) and any(
            not math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) for a, b in zip(saved, configured)
        )
        self.base_lrs = configured if changed else saved
        if changed:
            for group, base_lr, lr in zip(self.optimizer.param_groups, configured, self.get_lr()):
                group["initial_lr"], group["lr"] = base_lr, lr
            logger.warning(
                f"Resuming with base lrs {_short(configured)} instead of the checkpoint's {_short(saved)}: "
                f"the lr schedule continues from iteration {self.last_epoch} with the new ones"
            )
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        saved_max_iter = state_dict.get("max_iter")  # absent in checkpoints of earlier versions
        if saved_max_iter is not None and int(saved_max_iter) != self._max_iter:
            before = self._multiplier(min(self.last_epoch / int(saved_max_iter), 1.0))
            now = self._multiplier(min(self.last_epoch / self._max_iter, 1.0))
            logger.warning(
                f"Resuming with max_iter={self._max_iter}, but the checkpoint was trained towards "
                f"max_iter={saved_max_iter}: the lr schedule is a function of iteration / max_iter, so it is "
                f"stretched to the new length (at iteration {self.last_epoch} the lr multiplier goes from "
                f"{before:.4g} to {now:.4g})"
            )

    def get_lr(self) -> list[float]:
        factor = self._multiplier(min(self.last_epoch / self._max_iter, 1.0))
        return [base_lr * factor for base_lr in self.base_lrs]


def _short(lrs: list[float]) -> str:
    return "[" + ", ".join(f"{lr:.4g}" for lr in lrs) + "]"


def build_lr_scheduler(optimizer: torch.optim.Optimizer, schedule, max_iter: int) -> LRScheduler:
    """The torch scheduler for ``cfg.lr_multiplier`` (an instantiated fvcore ParamScheduler)."""
    if isinstance(schedule, LRScheduler):
        return schedule
    return LRMultiplier(optimizer, schedule, max_iter=max_iter)

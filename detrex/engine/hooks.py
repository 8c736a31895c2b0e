"""Hooks: the periodic side effects of training. ``detrex.engine.default_hooks`` orders them, always as
IterationTimer -> LRScheduler -> PeriodicCheckpointer -> EvalHook -> PeriodicWriter."""

import datetime
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping

import torch

from detrex.utils import comm
from detrex.utils.env import preserve_rng_state
from detrex.utils.events import EventWriter

from .non_finite import non_finite_tensors
from .train_loop import HookBase, NonFiniteStepError

__all__ = ["IterationTimer", "LRScheduler", "PeriodicCheckpointer", "EvalHook", "PeriodicWriter"]

logger = logging.getLogger(__name__)


class IterationTimer(HookBase):
    """Put the duration of each step as "time" (after ``warmup_iter`` steps) and log the overall speed."""

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_start = 0.0
        self._timed_start: float | None = None  # perf_counter when the timed (post warm-up) steps began

    def before_train(self) -> None:
        self._train_start = time.perf_counter()
        self._timed_start = None

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        done = self.trainer.iter - self.trainer.start_iter + 1
        if done > self._warmup_iter:
            self.trainer.storage.put_scalars(time=time.perf_counter() - self._step_start)
        elif done == self._warmup_iter:
            self._timed_start = time.perf_counter()

    def after_train(self) -> None:
        total = time.perf_counter() - self._train_start
        timed_iters = self.trainer.iter - self.trainer.start_iter - self._warmup_iter
        if self._timed_start is not None and timed_iters > 0:
            timed = time.perf_counter() - self._timed_start
            logger.info(
                f"Overall training speed: {timed_iters} iterations in "
                f"{datetime.timedelta(seconds=int(timed))} ({timed / timed_iters:.4f} s / it)"
            )
        logger.info(f"Total training time: {datetime.timedelta(seconds=int(total))}")


class LRScheduler(HookBase):
    """Put the current lr (the largest of the param groups) as "lr", then step the scheduler."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler):
        self.scheduler = scheduler

    def after_step(self) -> None:
        lr = max(group["lr"] for group in self.scheduler.optimizer.param_groups)
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        with warnings.catch_warnings():  # fp16 loss scaling skips optimizer steps on overflow, by design
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()


class PeriodicCheckpointer(HookBase):
    """Save ``model_{iter:07d}.pth`` every ``period`` iterations and ``model_final.pth`` at the end,
    keeping only the newest ``max_to_keep`` periodic ones (None: all). Runs on every rank (the random
    generator states are gathered from all of them); only the main process writes. Weights holding NaN or
    Inf are never written: training stops instead, and ``last_checkpoint`` keeps naming the last good file."""

    def __init__(self, checkpointer, period: int, max_to_keep: int | None = None, file_prefix: str = "model"):
        if period <= 0:
            raise ValueError(f"train.checkpointer.period must be positive, got {period}")
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"train.checkpointer.max_to_keep must be >= 1 or None, got {max_to_keep}")
        self.checkpointer = checkpointer
        self.period = period
        self.max_to_keep = max_to_keep
        self.file_prefix = file_prefix
        self._recent: list[str] = []

    def after_step(self) -> None:
        iteration, max_iter = self.trainer.iter, self.trainer.max_iter
        is_last = iteration >= max_iter - 1
        if not is_last and (iteration + 1) % self.period != 0:
            return
        name = f"{self.file_prefix}_final" if is_last else f"{self.file_prefix}_{iteration:07d}"
        self._stop_if_not_finite(name)  # DDP replicas are equal: every rank stops here, or none does
        self.trainer.gather_rng_states()
        if comm.is_main_process():
            self.checkpointer.save(name, iteration=iteration)
            if not is_last:
                self._remove_old(name)

    def _stop_if_not_finite(self, name: str) -> None:
        state = self.checkpointer.model.state_dict()
        bad = non_finite_tensors(state)
        if bad:
            raise NonFiniteStepError(
                f"After iteration={self.trainer.iter} {len(bad)} of the model's {len(state)} tensors hold NaN "
                f"or Inf (e.g. {bad[0]}): {name}.pth was not written. {self.trainer.what_to_try()}"
            )

    def _remove_old(self, name: str) -> None:
        self._recent.append(name)
        if self.max_to_keep is None:
            return
        while len(self._recent) > self.max_to_keep:
            path = os.path.join(self.checkpointer.save_dir, self._recent.pop(0) + ".pth")
            if os.path.exists(path):
                os.remove(path)


class EvalHook(HookBase):
    """Run ``eval_function()`` every ``eval_period`` iterations and once more after the last one.

    The results ({"bbox": {"AP": ...}}) are put into the storage as "bbox/AP" etc. Random generators
    are left as they were, so evaluating does not change the training that follows.
    """

    def __init__(self, eval_period: int, eval_function: Callable[[], Mapping]):
        self._period = eval_period
        self._func = eval_function

    def _do_eval(self) -> None:
        with preserve_rng_state():
            results = self._func()
        if results:
            flat = _flatten_results(results)
            for name, value in flat.items():
                if not isinstance(value, int | float):
                    raise TypeError(f"EvalHook: result '{name}'={value!r} is not a number")
            self.trainer.storage.put_scalars(**flat, smoothing_hint=False)
        comm.synchronize()  # ranks leave evaluation together

    def after_step(self) -> None:
        next_iter = self.trainer.iter + 1
        if self._period > 0 and next_iter % self._period == 0 and next_iter != self.trainer.max_iter:
            self._do_eval()  # the final evaluation happens in after_train

    def after_train(self) -> None:
        if self.trainer.completed:
            self._do_eval()


def _flatten_results(results: Mapping, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in results.items():
        if isinstance(value, Mapping):
            flat.update(_flatten_results(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class PeriodicWriter(HookBase):
    """Call the writers every ``period`` iterations, after the last one, and when training ends."""

    def __init__(self, writers: list[EventWriter], period: int = 20):
        if period <= 0:
            raise ValueError(f"train.log_period must be positive, got {period}")
        self.writers = writers
        self.period = period

    def before_train(self) -> None:
        if self.trainer.start_iter > 0:  # resumed: rows of the interrupted run from here on are redone
            for writer in self.writers:
                writer.resume_from(self.trainer.start_iter)

    def after_step(self) -> None:
        iteration = self.trainer.iter
        if (iteration + 1) % self.period == 0 or iteration == self.trainer.max_iter - 1:
            for writer in self.writers:
                writer.write()

    def after_train(self) -> None:
        for writer in self.writers:
            writer.write()  # e.g. the final evaluation's results
            writer.close()

"""The training loop: one ``Trainer`` whose ``run_step`` reads top to bottom; hooks do periodic work.

AMP, gradient clipping and model EMA are options of the same Trainer: when off, autocast is a
``nullcontext()``, the grad scaler is disabled (a pass-through) and clipping/EMA are skipped.
A NaN/Inf loss, gradient norm or forward pass stops training with a FloatingPointError before that step's
update, so the weights stay finite.
"""

import contextlib
import logging
import math
import time

import torch
import torch.distributed as dist
from torch import nn

from detrex.utils import comm
from detrex.utils.env import get_rng_state, set_rng_state
from detrex.utils.events import EventStorage

from .ema import ModelEMA, unwrap_model
from .non_finite import first_non_finite_output, non_finite_tensors
from .optimizer import clip_grad_norm

__all__ = ["HookBase", "Trainer", "NonFiniteForwardError", "NonFiniteStepError"]

logger = logging.getLogger(__name__)

_AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_amp_dtype(name: str, device_type: str) -> torch.dtype:
    """``train.amp.dtype``: "float16", "bfloat16", or "auto" = bfloat16 where the device supports it
    (CPU; CUDA from Ampere on), else float16 (with loss scaling)."""
    if name == "auto":
        if device_type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16
    if name not in _AMP_DTYPES:
        raise ValueError(f"train.amp.dtype={name!r}: expected 'auto', 'float16' or 'bfloat16'")
    return _AMP_DTYPES[name]


class NonFiniteStepError(FloatingPointError):
    """NaN/Inf that every rank finds at the same point: the all-reduced losses or gradient norm
    (``Trainer.stop_if_not_finite``), or weights that DDP keeps equal (the checkpoint hook's check). All ranks
    raise it together; any other FloatingPointError may be one rank's alone."""


class NonFiniteForwardError(FloatingPointError):
    """NaN/Inf values in this process's forward pass: other ranks may not have met them."""


class HookBase:
    """Periodic side effects around the steps of ``Trainer.train``; ``self.trainer`` is set on register."""

    trainer: "Trainer"

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Trainer:
    """Train ``model`` on an infinite ``data_loader`` from ``start_iter`` to ``max_iter``.

    model(batch) must return a dict of already-weighted losses; their sum is minimised.
    Args:
        amp_enabled, amp_dtype: autocast to "float16" (with a GradScaler), "bfloat16", or "auto"
            (bfloat16 where supported, see ``resolve_amp_dtype``).
        clip_grad_params: {"max_norm": float, "norm_type": float} to clip the gradient norm, or None.
        ema: a ``ModelEMA`` updated after every optimizer step, or None.
    Checkpointable: ``state_dict`` holds the iteration, optimizer, grad scaler, hook states, the recent
    metric history and every rank's random generators, so that a resumed run repeats the losses of an
    uninterrupted one (given a data loader that can restart at an iteration, see ``set_start_iter``).
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader,
        optimizer: torch.optim.Optimizer,
        *,
        amp_enabled: bool = False,
        amp_dtype: str = "auto",
        clip_grad_params: dict | None = None,
        ema: ModelEMA | None = None,
    ):
        if clip_grad_params is not None and set(clip_grad_params) - {"max_norm", "norm_type"}:
            raise KeyError(
                f"clip_grad_params {dict(clip_grad_params)}: only max_norm and norm_type are allowed"
            )
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.clip_grad_params = dict(clip_grad_params) if clip_grad_params is not None else None
        self.ema = ema
        device_type = next(model.parameters()).device.type
        dtype = resolve_amp_dtype(amp_dtype, device_type)
        self.amp_enabled = amp_enabled
        self.autocast = torch.autocast(device_type, dtype=dtype) if amp_enabled else contextlib.nullcontext()
        # loss scaling is only needed for float16; disabled, the scaler passes everything through
        self.scaler = torch.amp.GradScaler(device_type, enabled=amp_enabled and dtype == torch.float16)
        if amp_enabled:
            scaling = " with a GradScaler" if self.scaler.is_enabled() else ""
            logger.info(
                f"Mixed precision: {device_type} autocast to {str(dtype).replace('torch.', '')}{scaling}"
            )
        self._hooks: list[HookBase] = []
        self.iter = self.start_iter = self.max_iter = 0
        self.storage: EventStorage | None = None
        self._pending_state: dict = {}  # restored at the start of train(), see load_state_dict
        self._rng_states: tuple[int, list] | None = None  # (iteration, every rank's generators)
        self._resumed = False

    def register_hooks(self, hooks: list[HookBase | None]) -> None:
        """Hooks run in the given order at every stage; None entries are skipped."""
        for hook in hooks:
            if hook is not None:
                hook.trainer = self
                self._hooks.append(hook)

    def train(self, start_iter: int, max_iter: int) -> None:
        logger.info(f"Starting training from iteration {start_iter}")
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        with EventStorage(start_iter) as self.storage:
            try:
                self._data_iter = self._start_data(start_iter)
                self._restore_pending_state()  # after the loader drew its seeds, as in a fresh run
                if self.ema is not None and not self.ema.initialized:
                    self.ema.reset()
                for hook in self._hooks:
                    hook.before_train()
                for self.iter in range(start_iter, max_iter):
                    self.storage.iter = self.iter
                    for hook in self._hooks:
                        hook.before_step()
                    self.run_step()
                    for hook in self._hooks:
                        hook.after_step()
                self.iter = max_iter
            except KeyboardInterrupt:
                logger.warning(f"Interrupted during iteration {self.iter}", extra={"console": False})
                raise
            except Exception:  # the caller reports it; log.txt keeps the traceback
                logger.error(
                    f"Exception during training (iteration {self.iter}):",
                    exc_info=True,
                    extra={"console": False},
                )
                raise
            finally:
                for hook in self._hooks:
                    hook.after_train()

    @property
    def completed(self) -> bool:
        """Whether ``train`` reached ``max_iter`` (False while running or after an exception)."""
        return self.iter >= self.max_iter

    def run_step(self) -> None:
        if not self.model.training:
            raise RuntimeError("Trainer.run_step: the model was switched to eval mode (call model.train())")
        start = time.perf_counter()
        batch = next(self._data_iter)
        data_time = time.perf_counter() - start

        # zero_grad before the forward, not after it: the last step's gradients are freed before the
        # activations are stored, which lowers the peak memory by one copy of the gradients
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:  # nullcontext() when AMP is off
            try:
                loss_dict = self.model(batch)
            except Exception as error:  # NaN/Inf activations make model code fail in unrelated-looking ways
                self._stop_if_forward_not_finite(batch, error)
                raise
        self.scaler.scale(sum(loss_dict.values())).backward()  # scaler is a pass-through unless fp16
        grad_norm = self.unscale_and_clip()
        reduced = self.stop_if_not_finite(loss_dict, grad_norm, data_time)  # every rank stops together
        self.scaler.step(self.optimizer)  # skips the update when fp16 loss scaling overflowed
        self.scaler.update()
        if self.ema is not None:
            self.ema.update()
        self.write_metrics(reduced)

    def unscale_and_clip(self) -> torch.Tensor | None:
        """The true gradients (loss scaling undone; a no-op without it), clipped when clipping is on. Returns
        their total norm (the one clipping computes anyway) as a device tensor, None without gradients."""
        self.scaler.unscale_(self.optimizer)
        if self.clip_grad_params is not None:
            return clip_grad_norm(self.model.parameters(), **self.clip_grad_params)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        return torch.nn.utils.get_total_norm(grads) if grads else None

    def stop_if_not_finite(
        self, loss_dict: dict[str, torch.Tensor], grad_norm: torch.Tensor | None, data_time: float
    ) -> dict[str, float]:
        """Check the losses and the gradient norm before the update, in one all-reduce and one host copy
        (the step's only wait for the device besides the matcher's).

        A NaN/Inf on any rank makes the average non-finite on every rank (DDP has averaged the gradients
        already): all raise NonFiniteStepError together, naming the iteration and what went non-finite,
        and the weights stay finite. With fp16 loss scaling a non-finite gradient is routine: the scaler
        skips that step itself and lowers its scale.
        """
        if not isinstance(loss_dict, dict):
            raise TypeError(f"model(batch) must return a dict of losses in training, got {type(loss_dict)}")
        names = list(loss_dict)
        values = torch.stack([loss_dict[k].detach().float().reshape(()) for k in names])
        norm = values.new_zeros(1) if grad_norm is None else grad_norm.detach().float().reshape(1)
        values = torch.cat(
            [values, norm, torch.full((1,), data_time, device=values.device)]
        )  # filled, not copied
        if comm.get_world_size() > 1:
            dist.all_reduce(values)
            values /= comm.get_world_size()
        *losses, norm, data_time = values.tolist()
        reduced = dict(zip(names, losses))
        bad = [k for k, v in reduced.items() if not math.isfinite(v)]
        if bad:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in reduced.items())
            raise NonFiniteStepError(
                f"Loss became infinite or NaN at iteration={self.iter}: {', '.join(bad)} (rank-averaged: "
                f"{shown}). Training stopped before this step's update. {self.what_to_try()}"
            )
        if not math.isfinite(norm) and not self.scaler.is_enabled():
            raise NonFiniteStepError(
                f"The gradient norm became {norm} at iteration={self.iter} (the losses were finite). "
                f"Training stopped before this step's update. {self.what_to_try()}"
            )
        reduced["data_time"] = data_time
        return reduced

    def _stop_if_forward_not_finite(self, batch, error: Exception) -> None:
        """After a forward pass that raised: when NaN/Inf values were behind it, raise FloatingPointError
        saying where they first appeared (weights blown up by a too large lr give NaN boxes, and the
        matcher then fails on them in an unrelated-looking way). Returns when nothing was non-finite."""
        if isinstance(error, torch.OutOfMemoryError):
            return
        model = unwrap_model(self.model)  # the names of the model itself, under DDP or torch.compile
        bad = non_finite_tensors(dict(model.named_parameters()))
        if bad:
            what = f"{len(bad)} weight tensors hold NaN/Inf (e.g. {bad[0]})"
        else:
            first = first_non_finite_output(model, batch)
            if first is None:
                return
            size, name = max(
                (p.detach().abs().max().item(), n) for n, p in model.named_parameters() if p.numel()
            )
            what = (
                f"the forward pass produced NaN/Inf, first in the output of {first}; the weights are finite, "
                f"but the largest is {size:.3g} ({name})"
            )
        raise NonFiniteForwardError(
            f"At iteration={self.iter} {what}. Training stopped before this step's update. {self.what_to_try()}"
        ) from error

    def what_to_try(self) -> str:
        """The remedies for a non-finite loss, gradient or weight, for this run's settings."""
        lr = max(group["lr"] for group in self.optimizer.param_groups)
        tips = [f"a lower optimizer.lr (this step's lr: {lr:.3g})"]
        if self.amp_enabled:
            tips.append("AMP off (train.amp.enabled=False)")
        if self.clip_grad_params is None:
            tips.append("gradient clipping (train.clip_grad.enabled=True)")
        return f"Try {' or '.join(tips)}."

    def write_metrics(self, reduced: dict[str, float]) -> None:
        reduced = dict(reduced)
        self.storage.put_scalar("data_time", reduced.pop("data_time"))
        self.storage.put_scalar("total_loss", sum(reduced.values()))
        if len(reduced) > 1:
            self.storage.put_scalars(**reduced)

    def _start_data(self, start_iter: int):
        """An iterator over the loader positioned at ``start_iter``: the loader must skip the batches
        of earlier iterations (``loader.set_start_iter(n)``, or detrex's ``loader.batch_sampler.start_iter``)."""
        batch_sampler = getattr(self.data_loader, "batch_sampler", None)
        if hasattr(self.data_loader, "set_start_iter"):
            self.data_loader.set_start_iter(start_iter)
        elif hasattr(batch_sampler, "start_iter"):
            batch_sampler.start_iter = start_iter
        elif start_iter > 0:
            logger.warning(
                f"The data loader ({type(self.data_loader).__name__}) cannot start at an iteration: the "
                "resumed run does not continue the data order of the interrupted one."
            )
        return iter(self.data_loader)

    # --- checkpointing -------------------------------------------------------------------------
    def resume_or_load(self, checkpointer, init_checkpoint: str, resume: bool) -> int:
        """Load the last checkpoint of the output dir with everything in it (``resume`` and one exists),
        else only the model weights of ``init_checkpoint`` (may be ""). Returns the start iteration."""
        if resume and checkpointer.has_checkpoint():
            path = checkpointer.get_checkpoint_file()
            logger.info(f"Resuming from {path}; train.init_checkpoint={init_checkpoint!r} is ignored")
            self._resumed = False
            checkpointer.load(path)
            if not self._resumed:
                raise KeyError(f"{path} has no 'trainer' state (iteration, optimizer): it cannot be resumed")
            return self.iter + 1  # the checkpoint holds the last finished iteration
        if resume:
            start = f"train.init_checkpoint={init_checkpoint!r}" if init_checkpoint else "scratch"
            logger.info(f"--resume: no checkpoint in {checkpointer.save_dir} yet; starting from {start}")
        checkpointer.load(init_checkpoint, checkpointables=[])
        return 0

    def gather_rng_states(self) -> None:
        """Collect every rank's random generators for the next checkpoint (collective: all ranks call)."""
        self._rng_states = (self.iter, comm.all_gather(get_rng_state()))

    def state_dict(self) -> dict:
        state = {"iteration": self.iter, "optimizer": self.optimizer.state_dict()}
        if self.scaler.is_enabled():
            state["grad_scaler"] = self.scaler.state_dict()
        hook_states = {type(h).__qualname__: h.state_dict() for h in self._hooks if h.state_dict()}
        if hook_states:
            state["hooks"] = hook_states
        if self.storage is not None:
            state["storage"] = self.storage.state_dict()
        if self._rng_states is not None and self._rng_states[0] == self.iter:
            state["rng_states"] = self._rng_states[1]
        elif comm.get_world_size() == 1:
            state["rng_states"] = [get_rng_state()]
        return state

    def load_state_dict(self, state: dict) -> None:
        self.iter = int(state["iteration"])
        self.optimizer.load_state_dict(state["optimizer"])
        restored = ["iteration", "optimizer"]
        if self.scaler.is_enabled() and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
            restored.append("grad_scaler")
        for hook in self._hooks:
            if type(hook).__qualname__ in state.get("hooks", {}):
                hook.load_state_dict(state["hooks"][type(hook).__qualname__])
                restored.append(type(hook).__qualname__)
        self._pending_state = {k: state[k] for k in ("storage", "rng_states") if k in state}
        restored += list(self._pending_state)
        logger.info(f"Restored trainer state: {', '.join(restored)}")
        self._resumed = True

    def _restore_pending_state(self) -> None:
        pending, self._pending_state = self._pending_state, {}
        if "storage" in pending:
            self.storage.load_state_dict(pending["storage"])
        rng_states = pending.get("rng_states")
        if rng_states is None:
            return
        if len(rng_states) == comm.get_world_size():
            set_rng_state(rng_states[comm.get_rank()])
        else:
            logger.warning(
                f"The checkpoint holds random generator states of {len(rng_states)} ranks, this run has "
                f"{comm.get_world_size()}: generators not restored, losses will differ from an uninterrupted run."
            )

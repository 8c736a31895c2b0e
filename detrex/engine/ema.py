"""Model EMA: an exponential moving average of the weights, saved in checkpoints as ``ema_state``."""

import contextlib
import logging

import torch
from torch import nn

__all__ = ["ModelEMA", "unwrap_model"]

logger = logging.getLogger(__name__)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside its DistributedDataParallel / DataParallel and ``torch.compile`` wrappers (in any
    order), or the model itself."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
            model = model._orig_mod
        else:
            return model


class ModelEMA:
    """Keeps ``ema = decay * ema + (1 - decay) * value`` after every optimizer step, for every entry of
    the model's state dict (parameters and persistent buffers; integer buffers are copied).

    Checkpointable (``state_dict``/``load_state_dict``), keys equal to the model's state-dict keys.
    ``device=""`` keeps the average next to the weights; e.g. "cpu" saves accelerator memory.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, device: str = ""):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"ModelEMA: decay must be in [0, 1], got {decay}")
        self.model = unwrap_model(model)
        self.decay = decay
        self.device = device
        self.state: dict[str, torch.Tensor] = {}

    @property
    def initialized(self) -> bool:
        return bool(self.state)

    def _model_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict(keep_vars=True)

    def _place(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device) if self.device else tensor

    @torch.no_grad()
    def reset(self) -> None:
        """Start the average at the model's current weights."""
        self.state = {k: self._place(v.detach().clone()) for k, v in self._model_state().items()}

    @torch.no_grad()
    def update(self) -> None:
        """One EMA step towards the model's current weights (initialises on first use)."""
        if not self.initialized:
            self.reset()
            return
        averaged, current = [], []
        for name, value in self._model_state().items():
            ema = self.state[name]
            value = self._place(value.detach())
            if ema.is_floating_point():
                averaged.append(ema)
                current.append(value)
            else:
                ema.copy_(value)  # counters (e.g. num_batches_tracked) are not averaged
        if averaged:
            torch._foreach_mul_(averaged, self.decay)
            torch._foreach_add_(averaged, current, alpha=1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module | None = None) -> None:
        """Write the averaged weights into ``model`` (default: the tracked model)."""
        target = unwrap_model(model) if model is not None else self.model
        for name, value in target.state_dict(keep_vars=True).items():
            value.copy_(self.state[name])

    @contextlib.contextmanager
    def apply_and_restore(self):
        """Evaluate with the averaged weights inside the block; the trained weights come back after."""
        backup = {k: v.detach().clone() for k, v in self._model_state().items()}
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in self._model_state().items():
                    value.copy_(backup[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.state)

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        model_state = self._model_state()
        missing = sorted(set(model_state) - set(state_dict))
        if missing:
            raise KeyError(
                f"ema_state does not match the model: {len(missing)} missing keys, e.g. {missing[:5]}"
            )
        unexpected = sorted(set(state_dict) - set(model_state))
        if unexpected:  # e.g. non-persistent buffers kept by other code bases' EMA
            logger.warning(
                f"ema_state: ignoring {len(unexpected)} keys the model lacks, e.g. {unexpected[:5]}"
            )
        self.state = {k: self._place(state_dict[k].to(v.device)) for k, v in model_state.items()}

"""Finding NaN/Inf: in a set of tensors (weights before a checkpoint is written), and in the outputs of a
model's modules (where a forward pass that failed first produced them)."""

import functools

import torch
from torch import nn

__all__ = ["non_finite_tensors", "first_non_finite_output"]


def non_finite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors that hold a NaN or an Inf (one host sync in all)."""
    floats = {name: t.detach() for name, t in tensors.items() if t.is_floating_point() and t.numel()}
    if not floats:
        return []
    finite = torch.stack([torch.isfinite(t).all() for t in floats.values()]).tolist()
    return [name for name, ok in zip(floats, finite) if not ok]


class _NonFiniteOutput(Exception):
    pass


def first_non_finite_output(model: nn.Module, batch) -> str | None:
    """Run ``model(batch)`` without gradients, checking every submodule's output; return the name of the
    first one whose output holds NaN/Inf (modules finish inner first: this is where the values appear),
    or None when the forward pass finishes, or fails, with finite outputs only."""

    def check(name, module, inputs, output):
        stack = [output]
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, list | tuple):
                stack.extend(value)
            elif torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all():
                raise _NonFiniteOutput(name)

    handles = [
        module.register_forward_hook(functools.partial(check, name))
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(batch)
    except _NonFiniteOutput as found:
        return str(found)
    except Exception:  # the same failure as before, with no NaN/Inf ahead of it
        return None
    finally:
        for handle in handles:
            handle.remove()
    return None

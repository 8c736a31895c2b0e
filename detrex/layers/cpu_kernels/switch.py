"""The one switch of the CPU kernels: on by default; ``DETREX_CPU_KERNELS=0``, ``train.cpu_kernels=False``
or ``with use_cpu_kernels(False):`` turns every kernel off."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

import torch

ENV_VAR = "DETREX_CPU_KERNELS"
KERNELS = (
    "dropout",
    "dropout_attention",
    "malloc",
)
_active: frozenset[str] | None = None  # None: not decided yet, read the environment on first use


def _from_environment() -> frozenset[str]:
    off = os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "off", "no")
    return frozenset() if off else frozenset(KERNELS)


def active_kernels() -> frozenset[str]:
    """Names of the kernels that are turned on."""
    global _active
    if _active is None:
        _active = _from_environment()
    return _active


def _as_set(enabled: bool | Iterable[str]) -> frozenset[str]:
    if isinstance(enabled, bool):
        return frozenset(KERNELS) if enabled else frozenset()
    names = frozenset(enabled)
    unknown = sorted(names - set(KERNELS))
    if unknown:
        raise ValueError(f"unknown CPU kernel(s) {unknown}; the kernels are {list(KERNELS)}")
    return names


def set_cpu_kernels(enabled: bool) -> None:
    """The config key ``train.cpu_kernels``: False turns every kernel off; True leaves them as the environment
    says (on, unless ``DETREX_CPU_KERNELS=0``)."""
    global _active
    _active = _from_environment() if enabled else frozenset()


@contextlib.contextmanager
def use_cpu_kernels(enabled: bool | Iterable[str] = True) -> Iterator[None]:
    """``with use_cpu_kernels(False):`` runs the plain PyTorch path, ``use_cpu_kernels(["dropout"])`` only the
    named kernels (ablations); the previous setting is restored after."""
    global _active
    previous = active_kernels()
    _active = _as_set(enabled)
    try:
        yield
    finally:
        _active = previous


def applies(name: str, *tensors: torch.Tensor) -> bool:
    """Kernel ``name`` is on and every tensor is a float32 CPU tensor, in eager mode (not compiling, tracing
    or scripting: there the portable operators are kept) and without autocast."""
    return (
        name in active_kernels()
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.is_autocast_enabled("cpu")
        and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
    )

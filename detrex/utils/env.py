"""Reproducibility and environment reporting: ``seed_all_rng`` and ``collect_env_info`` (for the logs)."""

import contextlib
import importlib
import importlib.metadata
import logging
import os
import random
import sys
from datetime import datetime

import numpy as np
import torch
from tabulate import tabulate

__all__ = [
    "seed_all_rng",
    "collect_env_info",
    "get_rng_state",
    "set_rng_state",
    "preserve_rng_state",
]

logger = logging.getLogger(__name__)


def seed_all_rng(seed: int | None = None) -> int:
    """Seed python's ``random``, numpy and torch (all devices) with ``seed``; None draws a fresh seed.

    Returns the seed used, so that it can be logged and reused.
    """
    if seed is None:
        seed = (
            os.getpid() + int(datetime.now().strftime("%S%f")) + int.from_bytes(os.urandom(2), "big")
        ) % 2**31
        logger.info(f"Using a generated random seed {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def get_rng_state() -> dict:
    """The state of every global random generator of this process (python, numpy, torch CPU/CUDA),
    made of tensors and python numbers only, so that ``torch.load(weights_only=True)`` reads it."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = (
        name,
        torch.from_numpy(keys.astype(np.int64)),
        int(pos),
        int(has_gauss),
        float(cached_gaussian),
    )
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device's generator
    return state


def set_rng_state(state: dict) -> None:
    """Restore generators saved by :func:`get_rng_state`."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@contextlib.contextmanager
def preserve_rng_state():
    """Run a block (e.g. an evaluation) without changing the global random generators' state."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def _package_row(name: str) -> tuple[str, str]:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return name, "not found"
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
    path = os.path.dirname(getattr(module, "__file__", "") or "")
    return name, f"{version} @{path}" if name in ("detrex", "torch", "torchvision") else str(version)


def _gpu_rows() -> list[tuple[str, str]]:
    if not torch.cuda.is_available():
        return [("GPU available", "No")]
    devices: dict[str, list[str]] = {}
    for k in range(torch.cuda.device_count()):
        cap = ".".join(str(x) for x in torch.cuda.get_device_capability(k))
        devices.setdefault(f"{torch.cuda.get_device_name(k)} (arch={cap})", []).append(str(k))
    rows = [("GPU available", "Yes")]
    rows += [(f"GPU {','.join(ids)}", name) for name, ids in devices.items()]
    rows.append(("CUDA_HOME", os.environ.get("CUDA_HOME", "not set")))
    return rows


def collect_env_info() -> str:
    """A table of the versions that matter for reproducing a run (python, torch, CUDA, GPUs, libraries)."""
    rows = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", "")),
        ("numpy", np.__version__),
    ]
    rows.append(_package_row("detrex"))
    rows.append(_package_row("torch"))
    rows.append(("PyTorch debug build", str(torch.version.debug)))
    rows.append(("torch._C._GLIBCXX_USE_CXX11_ABI", str(torch._C._GLIBCXX_USE_CXX11_ABI)))
    rows.append(("PyTorch built with CUDA", str(torch.version.cuda)))
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    rows.append(("cuDNN", str(cudnn)))
    rows += _gpu_rows()
    for name in ("torchvision", "fvcore", "iopath", "omegaconf", "pycocotools", "scipy"):
        rows.append(_package_row(name))
    rows.append(("CPU threads (torch)", str(torch.get_num_threads())))
    return tabulate(rows)

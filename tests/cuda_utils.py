"""Helpers of the CUDA tests (marked ``cuda``: skipped without a GPU; tools/gpu_check.py runs them): models on
the GPU, float32 matmul precision, and the places where code makes the host wait for the GPU. The tiny models,
their configs and random batches are tests/tiny.py's.

    with fp32_precision("ieee"):          # TF32 off for matmuls and cuDNN convolutions
        ...
    with host_syncs() as syncs:           # torch.cuda.set_sync_debug_mode("warn") while inside
        model(batch)
    assert syncs == ["detrex/modeling/matcher.py:87"]
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings

import torch

from detrex.config import LazyConfig, instantiate
from tests.projects.parity_utils import detrex_state_dict, load_case, official_state_dict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# images of one padded batch of the tiny models (tests/tiny.py): the second is smaller, so the padding masks matter
TINY_SIZES = [(160, 224), (128, 176)]


@functools.cache
def parity_weights(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(case, detrex-layout weights) of a parity case (tests/fixtures/parity), generated once per process."""
    case = load_case(name)
    return case, detrex_state_dict(case, official_state_dict(case))


def build_cuda_model(config: str, overrides: tuple[str, ...] = (), seed: int = 0):
    """(cfg, model on cuda:0 in train mode) of a config, built with torch's seed ``seed``."""
    cfg = LazyConfig.apply_overrides(
        LazyConfig.load(os.path.join(REPO, config)), ["train.device=cuda", *overrides]
    )
    torch.manual_seed(seed)
    model = instantiate(cfg.model).to("cuda")
    return cfg, model.train()


def build_optimizer(cfg, model):
    cfg.optimizer.params.model = model  # as tools/train_net.py does
    return instantiate(cfg.optimizer)


@contextlib.contextmanager
def fp32_precision(precision: str):
    """float32 matmuls and cuDNN convolutions in "ieee" (full float32: TF32 off) or "tf32", restored after."""
    if hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv  # torch >= 2.9
        saved = matmul.fp32_precision, conv.fp32_precision
        matmul.fp32_precision = conv.fp32_precision = precision
        try:
            yield
        finally:
            matmul.fp32_precision, conv.fp32_precision = saved
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def host_syncs():
    """Yields a list that receives, on exit, "file:line" (relative to the repository) of every CUDA
    operation inside the block that made the host wait for the device: a copy to the CPU, ``.item()``,
    ``if tensor``, boolean-mask indexing, a blocking copy from the host, an explicit synchronize
    (``torch.cuda.set_sync_debug_mode("warn")``, which reports each at the Python line that called it)."""
    sites: list[str] = []
    torch.cuda.synchronize()  # the work queued before the block is not counted
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield sites
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchronizing CUDA operation" in str(w.message):
            sites.append(f"{os.path.relpath(w.filename, REPO)}:{w.lineno}")


@contextlib.contextmanager
def no_host_syncs():
    """Any operation that makes the host wait for the device raises inside the block
    (``torch.cuda.set_sync_debug_mode("error")``)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def line_of(path: str, text: str) -> str:
    """ "path:line" of the single line of repository file ``path`` that contains ``text``."""
    with open(os.path.join(REPO, path)) as f:
        lines = [i + 1 for i, line in enumerate(f) if text in line]
    assert len(lines) == 1, f"{path}: {len(lines)} lines contain {text!r}"
    return f"{path}:{lines[0]}"

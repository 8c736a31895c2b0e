"""Helpers of the CUDA tests (marked ``cuda``: skipped without a GPU; tools/gpu_check.py runs them): tiny
models and batches, float32 matmul precision, and the places where code makes the host wait for the GPU.

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
from detrex.structures import Boxes, Instances
from tests.projects.parity_utils import detrex_state_dict, load_case, official_state_dict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIGS = {
    "anchor_detr": "projects/anchor_detr/configs/anchor_detr_tiny_synthetic.py",
    "conditional_detr": "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py",
}
# images of one padded batch: the second is smaller, so the padding masks matter
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


def synthetic_batch(sizes: list[tuple[int, int]], num_classes: int, seed: int = 0) -> list[dict]:
    """Random uint8 images of the given (H, W) with 1, 2, 3, .. boxes of random classes each (CPU tensors,
    as the data loader gives them)."""
    generator = torch.Generator().manual_seed(seed)
    batch = []
    for i, (h, w) in enumerate(sizes):
        n = 1 + i % 3
        top_left = torch.rand(n, 2, generator=generator) * 0.6
        size = 0.1 + torch.rand(n, 2, generator=generator) * 0.3
        boxes = torch.cat([top_left, top_left + size], dim=1) * torch.tensor([w, h, w, h])  # xyxy pixels
        classes = torch.randint(0, num_classes, (n,), generator=generator)
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator)
        instances = Instances((h, w), gt_boxes=Boxes(boxes), gt_classes=classes)
        batch.append({"image": image, "height": h, "width": w, "image_id": i, "instances": instances})
    return batch


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

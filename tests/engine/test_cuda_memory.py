"""Peak GPU memory of one R50 training step at batch 2 per GPU (images of 800x1333 and 800x1200, fp32 with
PyTorch's default TF32 settings): the Trainer's step as tools/train_net.py builds it. The figure is recorded
(``record_property``; tools/gpu_check.py copies it into its JSON) and must fit a 16 GB V100, the GPU the
papers trained on at 2 images per GPU."""

import itertools

import pytest
import torch

from detrex.engine import Trainer
from tests.cuda_utils import build_cuda_model, build_optimizer
from tests.tiny import random_inputs

pytestmark = pytest.mark.cuda

R50_CONFIGS = {
    "anchor_detr": "projects/anchor_detr/configs/anchor_detr_r50_50ep.py",
    "conditional_detr": "projects/conditional_detr/configs/conditional_detr_r50_50ep.py",
}


@pytest.mark.parametrize("family", sorted(R50_CONFIGS))
def test_r50_train_step_peak_memory_at_batch_2(family, record_property):
    cfg, model = build_cuda_model(R50_CONFIGS[family])
    batch = random_inputs([(800, 1333), (800, 1200)], with_instances=True, num_classes=cfg.model.num_classes)
    clip = cfg.train.clip_grad
    trainer = Trainer(
        model,
        itertools.repeat(batch),
        build_optimizer(cfg, model),
        clip_grad_params=dict(clip.params) if clip.enabled else None,
    )
    trainer.train(0, 1)  # the optimizer state exists from the first step on: it is part of every later peak
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    trainer.train(1, 2)
    torch.cuda.synchronize()
    peak_mb = torch.cuda.max_memory_allocated() / 2**20
    record_property("peak_memory_mb", f"{peak_mb:.0f}")
    assert 0 < peak_mb < 16 * 1024, f"{family} R50 train step at batch 2 needs {peak_mb:.0f} MiB"

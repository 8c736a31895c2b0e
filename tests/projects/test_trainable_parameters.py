"""Every trainable parameter of the detectors gets a gradient in a training step. DistributedDataParallel
with find_unused_parameters=False (configs/common/train.py) requires it: a parameter left without one
stops multi-GPU training at the next step (tests/engine/test_cuda_ddp.py runs DDP itself on a GPU)."""

import pytest
import torch

from detrex.config import LazyConfig, instantiate
from tests.tiny import random_inputs

CONFIGS = [
    "projects/anchor_detr/configs/anchor_detr_tiny_synthetic.py",
    "projects/conditional_detr/configs/conditional_detr_tiny_synthetic.py",
    # the R50 models take ~10 s each on 2 CPU cores, more on a busy machine
    pytest.param("projects/anchor_detr/configs/anchor_detr_r50_50ep.py", marks=pytest.mark.slow),
    pytest.param("projects/conditional_detr/configs/conditional_detr_r50_50ep.py", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_every_trainable_parameter_gets_a_gradient(config):
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config), ["train.device=cpu"])
    torch.manual_seed(0)
    model = instantiate(cfg.model).train()
    losses = model(
        random_inputs([(96, 128), (80, 112)], with_instances=True, num_classes=cfg.model.num_classes)
    )
    sum(losses.values()).backward()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert trainable and not missing, f"{len(missing)} trainable parameters without a gradient: {missing[:8]}"

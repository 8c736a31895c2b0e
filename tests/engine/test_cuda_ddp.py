"""DistributedDataParallel on the GPU with NCCL and find_unused_parameters=False (configs/common/train.py's
train.ddp): every trainable parameter of both R50 detectors gets a gradient in each step, or DDP's reducer
fails at the next forward. One process here (a group of one rank: the reducer and NCCL all-reduce run as
with eight); tools/train_net.py with two GPUs is tested in test_cuda_train_net.py.
"""

import inspect

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tests.cuda_utils import build_cuda_model, build_optimizer, fp32_precision
from tests.tiny import random_inputs

pytestmark = pytest.mark.cuda

DDP_ARGS = inspect.signature(DistributedDataParallel.__init__).parameters  # torch 2.13 renamed one
R50_CONFIGS = {
    "anchor_detr": "projects/anchor_detr/configs/anchor_detr_r50_50ep.py",
    "conditional_detr": "projects/conditional_detr/configs/conditional_detr_r50_50ep.py",
}


@pytest.fixture
def nccl_group(tmp_path):
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("family", sorted(R50_CONFIGS))
def test_ddp_steps_without_searching_unused_parameters(family, nccl_group):
    cfg, model = build_cuda_model(R50_CONFIGS[family], seed=0)
    _, plain = build_cuda_model(R50_CONFIGS[family], seed=0)
    plain.load_state_dict(model.state_dict())
    assert cfg.train.ddp.find_unused_parameters is False
    sync_buffers = "forward_sync_buffers" if "forward_sync_buffers" in DDP_ARGS else "broadcast_buffers"
    ddp = DistributedDataParallel(
        model, device_ids=[0], find_unused_parameters=False, **{sync_buffers: cfg.train.ddp.broadcast_buffers}
    )
    optimizer = build_optimizer(cfg, model)
    batches = [
        random_inputs(
            [(256, 320), (224, 352)], seed=s, with_instances=True, num_classes=cfg.model.num_classes
        )
        for s in range(3)
    ]
    with fp32_precision("ieee"):
        for batch in batches:  # an unused parameter fails the second forward ("Expected to have finished
            optimizer.zero_grad(set_to_none=True)  # reduction in the prior iteration ...")
            sum(ddp(batch).values()).backward()
            optimizer.step()
        torch.cuda.synchronize()

        # the gradient DDP averaged over one rank equals the plain model's, for every trainable parameter
        plain.load_state_dict(model.state_dict())
        for module in (ddp, plain):
            module.zero_grad(set_to_none=True)
            torch.manual_seed(0)
            sum(module(batches[0]).values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"trainable parameters without a gradient: {missing[:5]}"
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        if p.requires_grad:
            atol = 1e-5 * float(q.grad.abs().max()) + 1e-12  # atomic sums in the backward differ in order
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=atol, msg=name)

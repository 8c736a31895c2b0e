"""On a GPU, a training step makes the host wait for the device only where it must: the matcher's one copy
of the cost matrices of all decoder layers to the CPU (the Hungarian assignment runs there) and the
Trainer's loss check (finite on every rank before the update, and the logged values). Anywhere else, a
wait stalls the queue of kernels the host has launched ahead."""

import contextlib
import itertools

import pytest
import torch

from detrex.engine import HookBase, Trainer
from detrex.engine.optimizer import clip_grad_norm
from tests.cuda_utils import (
    TINY_SIZES,
    build_cuda_model,
    build_optimizer,
    host_syncs,
    line_of,
    no_host_syncs,
)
from tests.tiny import CONFIGS, FAMILIES, random_inputs

pytestmark = pytest.mark.cuda

MATCHER_COPY = ("detrex/modeling/matcher.py", "costs = costs.cpu()")
LOSS_CHECK = ("detrex/engine/train_loop.py", "values.tolist()")


@pytest.mark.parametrize("family", FAMILIES)
def test_model_step_waits_only_for_the_matcher_copy(family):
    cfg, model = build_cuda_model(CONFIGS[family])
    optimizer = build_optimizer(cfg, model)
    batch = random_inputs(TINY_SIZES, with_instances=True)

    def backward_and_update(losses):
        sum(losses.values()).backward()
        clip_grad_norm(model.parameters(), max_norm=0.1)
        optimizer.step()

    optimizer.zero_grad(set_to_none=True)
    backward_and_update(model(batch))  # first step: lazy CUDA / cuBLAS set-up and the optimizer state

    optimizer.zero_grad(set_to_none=True)
    with host_syncs() as syncs:
        losses = model(batch)
    assert syncs == [line_of(*MATCHER_COPY)], f"the forward waited for the device at {syncs}"
    with no_host_syncs():  # backward, clipping and the fused AdamW update never wait
        backward_and_update(losses)
    assert all(torch.isfinite(v) for v in losses.values())


class RecordHostSyncs(HookBase):
    """The host waits of every step after the first (which sets up CUDA and the optimizer state)."""

    def __init__(self):
        self.per_step: list[list[str]] = []

    def before_step(self):
        if self.trainer.iter > 0:
            self._stack = contextlib.ExitStack()
            self._syncs = self._stack.enter_context(host_syncs())

    def after_step(self):
        if self.trainer.iter > 0:
            self._stack.close()
            self.per_step.append(self._syncs)


@pytest.mark.parametrize("amp", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_step_waits_for_the_matcher_copy_and_the_loss_check(family, amp):
    cfg, model = build_cuda_model(CONFIGS[family])
    batch = random_inputs(TINY_SIZES, with_instances=True)
    trainer = Trainer(
        model,
        itertools.repeat(batch),
        build_optimizer(cfg, model),
        amp_enabled=amp != "fp32",
        amp_dtype={"fp32": "auto", "bf16": "bfloat16", "fp16": "float16"}[amp],
        clip_grad_params={"max_norm": 0.1, "norm_type": 2.0},
    )
    record = RecordHostSyncs()
    trainer.register_hooks([record])
    trainer.train(0, 3)
    expected = sorted([line_of(*MATCHER_COPY), line_of(*LOSS_CHECK)])
    assert [sorted(syncs) for syncs in record.per_step] == [expected, expected]

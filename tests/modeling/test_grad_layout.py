"""Every parameter's gradient comes back in the parameter's own strides (the gradient layout contract).

DistributedDataParallel compares them with its bucket views: a mismatch warns ("Grad strides do not match
bucket view strides") and costs a strided copy per parameter and step. Channels-last backbones return
their 1x1 weight gradients (and the input projection's) with channels-last strides of the size-1 dims."""

import pytest
import torch

from detrex.layers import conv_weights_channels_last
from tests.tiny import FAMILIES, build_tiny_model, random_inputs


def test_conv_weights_channels_last_strides_and_values():
    convs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 6, 1))
    before = [m.weight.detach().clone() for m in convs]
    conv_weights_channels_last(convs)
    assert convs[0].weight.stride() == (27, 1, 9, 3)
    assert convs[1].weight.stride() == (4, 1, 4, 4)  # the size-1 dims too, not only the memory order
    assert all(torch.equal(m.weight, b) for m, b in zip(convs, before))
    convs.load_state_dict({k: v.contiguous() for k, v in convs.state_dict().items()})
    assert convs[1].weight.stride() == (4, 1, 4, 4)  # loading keeps the layout


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_have_the_parameters_strides(family):
    model = build_tiny_model(family).train()
    sum(model(random_inputs([(128, 160)], with_instances=True)).values()).backward()
    trained = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    assert any(p.dim() == 4 and p.shape[-1] == 1 for _, p in trained)  # 1x1 convolutions are among them
    mismatched = [(n, p.stride(), p.grad.stride()) for n, p in trained if p.grad.stride() != p.stride()]
    assert not mismatched

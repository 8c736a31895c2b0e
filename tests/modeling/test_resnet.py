import json
from pathlib import Path

import pytest
import torch
import torchvision
from torch.testing import assert_close

from detrex.checkpoint.resnet_keys import BackboneLayout
from detrex.layers import FrozenBatchNorm2d
from detrex.modeling import BasicStem, ResNet

SPEC = (
    Path(__file__).resolve().parents[1] / "fixtures/parity/specs/conditional_detr_r50_50ep.detrex.spec.json"
)


def _resnet(
    depth, norm="FrozenBN", freeze_at=1, res5_dilation=1, out_features=("res5",), stride_in_1x1=False
):
    stages = ResNet.make_default_stages(
        depth, norm=norm, res5_dilation=res5_dilation, stride_in_1x1=stride_in_1x1
    )
    return ResNet(BasicStem(3, 64, norm), stages, out_features=list(out_features), freeze_at=freeze_at)


def test_r50_keys_and_shapes_match_detrex_layout():
    spec = json.loads(SPEC.read_text())["shapes"]
    expected = {k[len("backbone.") :]: v for k, v in spec.items() if k.startswith("backbone.")}
    model = _resnet(50, out_features=["res2", "res3", "res4", "res5"])
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_parameter_count_matches_torchvision(depth):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        tv = getattr(torchvision.models, f"resnet{depth}")()
        ours = _resnet(depth)
    convs = sum(p.numel() for n, p in tv.named_parameters() if "bn" not in n and "downsample.1" not in n)
    convs -= sum(p.numel() for p in tv.fc.parameters())
    assert sum(p.numel() for p in ours.parameters()) == convs


@pytest.mark.parametrize("depth", [18, 50])
def test_forward_equals_torchvision_with_mapped_weights(depth):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, f"resnet{depth}")().eval()
    for m in tv.modules():  # non-trivial statistics so that the norms matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    ours = _resnet(depth).eval()
    layout = BackboneLayout("", "detectron2")
    sd = {
        layout.name(k): v
        for k, v in tv.state_dict().items()
        if not k.startswith("fc") and "num_batches" not in k
    }
    assert ours.load_state_dict(sd, strict=True)
    tv, ours = tv.double(), ours.double()  # activations grow large with random weights: compare in float64
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))
    with torch.no_grad():
        assert_close(ours(x)["res5"], expected, rtol=1e-10, atol=1e-8)
    assert ours.output_shape()["res5"]["stride"] == 32


def test_dc5_dilates_every_res5_block():
    # detectron2's DC5: all res5 3x3 convs dilated (torchvision leaves the first block undilated)
    model = _resnet(50, res5_dilation=2)
    assert [b.conv2.dilation for b in model.res5] == [(2, 2)] * 3
    assert model.res5[0].conv2.stride == (1, 1) and model.res5[0].shortcut.stride == (1, 1)
    assert model(torch.zeros(1, 3, 64, 64))["res5"].shape == (1, 2048, 4, 4)
    assert model.output_shape()["res5"]["stride"] == 16


def test_freeze_at_and_stride_in_1x1():
    model = _resnet(50, norm="BN", freeze_at=2, out_features=["res3"], stride_in_1x1=True)
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.res2.parameters())
    assert all(p.requires_grad for p in model.res3.parameters())
    assert isinstance(model.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert isinstance(model.res3[0].conv1.norm, torch.nn.BatchNorm2d)
    assert model.res3[0].conv1.stride == (2, 2) and model.res3[0].conv2.stride == (1, 1)
    assert not hasattr(model, "res4")  # stages after the last requested output are not built
    assert list(model(torch.zeros(1, 3, 32, 32))) == ["res3"]


def test_bad_depth_is_an_error():
    with pytest.raises(ValueError, match="depth=42"):
        ResNet.make_default_stages(42)

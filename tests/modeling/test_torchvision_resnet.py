import pytest
import torch
import torchvision
from torch import nn

from detrex.modeling.backbone.torchvision_resnet import TorchvisionResNet


def test_resnet50_state_dict_keys_match_torchvision():
    backbone = TorchvisionResNet("resnet50", train_backbone=True, return_layers={"layer4": "res5"})
    keys = set(backbone.state_dict())
    reference = torchvision.models.resnet50(weights=None).state_dict()
    expected = {
        "body." + k for k in reference if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    assert keys == expected
    assert backbone.state_dict()["body.conv1.weight"].shape == (64, 3, 7, 7)
    assert backbone.state_dict()["body.layer4.2.bn3.running_var"].shape == (2048,)


def test_strides_channels_and_feature_shapes():
    backbone = TorchvisionResNet(
        "resnet18", return_layers={"layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
    )
    shapes = backbone.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "res2": (64, 4),
        "res3": (128, 8),
        "res4": (256, 16),
        "res5": (512, 32),
    }
    out = backbone(torch.zeros(2, 3, 64, 96))
    for name, spec in shapes.items():
        assert out[name].shape == (2, spec.channels, 64 // spec.stride, 96 // spec.stride)


def test_dilation_keeps_stride_16_and_matches_torchvision():
    torch.manual_seed(0)
    backbone = TorchvisionResNet("resnet50", dilation=True).eval()
    assert backbone.output_shape()["res5"].channels == 2048
    assert backbone.output_shape()["res5"].stride == 16
    assert backbone.body.layer4[0].conv2.dilation == (1, 1)  # torchvision dilates from the 2nd block on
    assert backbone.body.layer4[1].conv2.dilation == (2, 2)
    reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
    reference.load_state_dict({k[len("body.") :]: v for k, v in backbone.state_dict().items()}, strict=False)
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = backbone(x)["res5"]
        body = nn.Sequential(*list(reference.children())[:-2])
        expected = body(x)
    assert ours.shape == (1, 2048, 4, 4)
    # folded frozen norms and channels-last kernels round differently: compare at the output's scale
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item())


def test_frozen_parameters_and_frozen_bn():
    backbone = TorchvisionResNet("resnet18", train_backbone=True)
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    frozen = {n for n, p in backbone.named_parameters() if not p.requires_grad}
    assert all(n.startswith(("body.layer2.", "body.layer3.", "body.layer4.")) for n in trainable)
    assert frozen == {
        n for n, _ in backbone.named_parameters() if n.startswith(("body.conv1.", "body.layer1."))
    }
    assert not any("bn" in n for n, _ in backbone.named_parameters())  # frozen BN: buffers only
    assert not any(k.endswith("num_batches_tracked") for k in backbone.state_dict())

    none_trained = TorchvisionResNet("resnet18", train_backbone=False)
    assert not any(p.requires_grad for p in none_trained.parameters())


def test_frozen_bn_ignores_batch_statistics_in_train_mode():
    backbone = TorchvisionResNet("resnet18", return_layers={"layer1": "res2"})
    x = torch.randn(2, 3, 32, 32)
    backbone.train()
    out_train = backbone(x)["res2"]
    backbone.eval()
    torch.testing.assert_close(backbone(x)["res2"], out_train)


def test_trainable_batchnorm_option():
    backbone = TorchvisionResNet("resnet18", frozen_bn=False)
    assert isinstance(backbone.body.bn1, nn.BatchNorm2d)
    assert "body.bn1.num_batches_tracked" in backbone.state_dict()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"name": "resnet51"}, "unknown name"), ({"return_layers": {"layer5": "res6"}}, "return_layers")],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TorchvisionResNet(**kwargs)

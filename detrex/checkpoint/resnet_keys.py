"""ResNet parameter names in the three layouts ImageNet weights come in, and in the two layouts our
backbones have. Conversions go through torchvision's names (``conv1``, ``bn1``, ``layer1.0.bn1`` ...).

* torchvision: ``conv1.weight``, ``bn1.*``, ``layer{1-4}.{i}.conv{1-3}.weight``, ``.bn{1-3}.*``,
  ``.downsample.0.weight``, ``.downsample.1.*``, ``fc.*`` (download.pytorch.org files, official DETR-family
  backbones under ``backbone.0.body.``, TorchvisionResNet under ``backbone.body.``)
* detectron2: ``stem.conv1.weight``, ``stem.conv1.norm.*``, ``res{2-5}.{i}.conv{1-3}(.norm)``,
  ``.shortcut(.norm)`` (detectron2's R-50.pkl converted from torchvision, ResNet of this package)
* caffe2: ``conv1_w``, ``res_conv1_bn_s``, ``res2_0_branch2a_w``, ``res2_0_branch1_bn_b`` ... (MSRA R-50.pkl)
"""

import re
from dataclasses import dataclass


def _apply(rules, key: str) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


TORCHVISION_TO_DETECTRON2 = (
    (r"^conv1\.", "stem.conv1."),
    (r"^bn1\.", "stem.conv1.norm."),
    (r"^layer(\d)\.", lambda m: f"res{int(m[1]) + 1}."),
    (r"\.bn(\d)\.", r".conv\1.norm."),
    (r"\.downsample\.0\.", ".shortcut."),
    (r"\.downsample\.1\.", ".shortcut.norm."),
)
DETECTRON2_TO_TORCHVISION = (
    (r"^stem\.conv1\.norm\.", "bn1."),
    (r"^stem\.conv1\.", "conv1."),
    (r"^stem\.fc\.", "fc."),  # detectron2's convert-torchvision-to-d2 script prefixes fc with "stem."
    (r"^res(\d)\.", lambda m: f"layer{int(m[1]) - 1}."),
    (r"\.conv(\d)\.norm\.", r".bn\1."),
    (r"\.shortcut\.norm\.", ".downsample.1."),
    (r"\.shortcut\.", ".downsample.0."),
)
CAFFE2_TO_DETECTRON2 = (
    (r"^conv1_w$", "stem.conv1.weight"),
    (r"^res_conv1_bn_", "stem.conv1_bn_"),
    (r"^res(\d)_(\d+)_branch1_", r"res\1.\2.shortcut_"),
    (r"^res(\d)_(\d+)_branch2a_", r"res\1.\2.conv1_"),
    (r"^res(\d)_(\d+)_branch2b_", r"res\1.\2.conv2_"),
    (r"^res(\d)_(\d+)_branch2c_", r"res\1.\2.conv3_"),
    (r"_bn_s$", ".norm.weight"),
    (r"_bn_b$", ".norm.bias"),
    (r"_bn_rm$", ".norm.running_mean"),
    (r"_bn_riv$", ".norm.running_var"),
    (r"_w$", ".weight"),
    (r"_b$", ".bias"),
)


def detect_resnet_layout(keys) -> str | None:
    """ "torchvision", "detectron2" or "caffe2" when ``keys`` are those of a bare ResNet, else None."""
    keys = set(keys)
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "torchvision"
    if "stem.conv1.weight" in keys and any(k.startswith("res2.") for k in keys):
        return "detectron2"
    if "conv1_w" in keys and any(re.match(r"^res2_\d+_branch2a_w$", k) for k in keys):
        return "caffe2"
    return None


def to_torchvision_name(key: str, layout: str) -> str:
    """Name of a ``layout`` ResNet key in torchvision's layout."""
    if layout == "caffe2":
        key = _apply(CAFFE2_TO_DETECTRON2, key)
        layout = "detectron2"
    return _apply(DETECTRON2_TO_TORCHVISION, key) if layout == "detectron2" else key


@dataclass(frozen=True)
class BackboneLayout:
    """Where and how a model holds its ResNet: ``prefix`` + names in ``style`` ("torchvision" / "detectron2")."""

    prefix: str
    style: str

    def name(self, torchvision_key: str) -> str:
        """The model's key for a torchvision-layout ResNet key."""
        if self.style == "detectron2":
            return self.prefix + _apply(TORCHVISION_TO_DETECTRON2, torchvision_key)
        return self.prefix + torchvision_key


def find_backbone_layout(model_keys) -> BackboneLayout | None:
    """The ResNet inside a model, from its state-dict keys (e.g. ``backbone.stem.conv1.weight`` ->
    detectron2 layout at ``backbone.``; ``backbone.body.conv1.weight`` -> torchvision at ``backbone.body.``)."""
    keys = set(model_keys)
    for key in sorted(keys, key=len):
        if key.endswith("stem.conv1.weight"):
            prefix = key[: -len("stem.conv1.weight")]
            if any(k.startswith(prefix + "res2.") for k in keys):
                return BackboneLayout(prefix, "detectron2")
        elif key.endswith("conv1.weight") and (key == "conv1.weight" or key.endswith(".conv1.weight")):
            prefix = key[: -len("conv1.weight")]
            if prefix + "bn1.weight" in keys and any(k.startswith(prefix + "layer1.") for k in keys):
                return BackboneLayout(prefix, "torchvision")
    return None

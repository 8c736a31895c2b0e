"""The tiny detectors and inputs of the tests.

Models come from each family's quick-start model, projects/<family>/configs/models/<family>_tiny.py (a narrow
ResNet-18-style backbone with trainable BN at stride 16, 128-dim transformer, 2 encoder + 3 decoder layers,
30 queries, 5 classes), with config overrides; whole configs (that model on tiny synthetic data, runs of a few
iterations) are tests/configs/tiny_<family>.py.

    model = build_tiny_model("conditional_detr", "model.transformer.decoder.num_layers=2", seed=1)
    losses = model(random_inputs([(64, 96), (48, 80)], seed=2, with_instances=True))
    official = build_tiny_model("anchor_detr", "model.num_classes=80", backbone="torchvision_resnet18")
"""

from __future__ import annotations

import copy
import os

import torch

from detrex.config import LazyCall as L
from detrex.config import LazyConfig, instantiate
from detrex.modeling.backbone import BasicStem, ResNet, TorchvisionResNet
from detrex.structures import Boxes, Instances

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ("anchor_detr", "conditional_detr")
MODEL_CONFIGS = {family: f"projects/{family}/configs/models/{family}_tiny.py" for family in FAMILIES}
CONFIGS = {family: f"tests/configs/tiny_{family}.py" for family in FAMILIES}
NUM_CLASSES = 5  # the synthetic shapes

# The quick-start backbone with frozen batch norms (FrozenBatchNorm2d: fixed statistics, no num_batches_tracked,
# as in the official checkpoints and the R50 configs).
FROZEN_NORMS = (
    "model.backbone.stem.norm=FrozenBN",
    *(f"model.backbone.stages[{i}].norm=FrozenBN" for i in range(3)),
)

# For the tests that need what the quick-start backbone lacks. Both return res5 (512 channels, stride 32) with
# frozen norms and a frozen stem, at ImageNet ResNet-18's widths, so that timm / torchvision ResNet-18
# weights fit them and the Hugging Face export can name them.
BACKBONES = {
    # detectron2 layout (backbone.stem / backbone.res2 ..), as the R50 configs
    "resnet18": L(ResNet)(
        stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
        stages=L(ResNet.make_default_stages)(depth=18, norm="FrozenBN"),
        out_features=["res5"],
        freeze_at=2,
    ),
    # torchvision layout (backbone.body.conv1 ..): the keys of official Anchor-DETR checkpoints
    "torchvision_resnet18": L(TorchvisionResNet)(name="resnet18", return_layers={"layer4": "res5"}),
}


def tiny_model_config(family: str, *overrides: str, backbone: str | None = None):
    """The config of ``family``'s tiny model (``cfg.model``), with the backbone ``BACKBONES[backbone]`` in place
    of the quick-start one when given, then ``overrides`` ("model.key=value") applied."""
    cfg = LazyConfig.load(os.path.join(REPO, MODEL_CONFIGS[family]))
    if backbone is not None:
        cfg.model.backbone = copy.deepcopy(BACKBONES[backbone])
        cfg.model.in_features = ["res5"]
        cfg.model.in_channels = 512
    return LazyConfig.apply_overrides(cfg, list(overrides))


def build_tiny_model(
    family: str,
    *overrides: str,
    seed: int = 0,
    backbone: str | None = None,
    random_box_head: bool = True,
):
    """``family``'s tiny model (see ``tiny_model_config``), its weights drawn from torch's seed ``seed``.

    random_box_head: give the box head's last layer random weights (std 0.1). The model zero-initialises it,
        so that every box starts on its reference point; tests that compare boxes want them to differ.
    """
    torch.manual_seed(seed)
    model = instantiate(tiny_model_config(family, *overrides, backbone=backbone).model)
    if random_box_head:
        with torch.no_grad():  # the box head's last layer is the only all-zero weight matrix of either model
            for p in model.parameters():
                if p.dim() > 1 and not p.any():
                    p.normal_(std=0.1)
    return model


def random_inputs(
    sizes: list[tuple[int, int]], seed: int = 0, with_instances: bool = False, num_classes: int = NUM_CLASSES
) -> list[dict]:
    """Random uint8 RGB images of the given (H, W), as the data loader gives them (CPU tensors, "image_id" =
    position). with_instances: image i has 1 + i % 3 boxes (xyxy pixels, inside the image) of random classes."""
    generator = torch.Generator().manual_seed(seed)
    batch = []
    for i, (h, w) in enumerate(sizes):
        n = 1 + i % 3
        top_left = torch.rand(n, 2, generator=generator) * 0.6
        size = 0.1 + torch.rand(n, 2, generator=generator) * 0.3
        boxes = torch.cat([top_left, top_left + size], dim=1) * torch.tensor([w, h, w, h])
        classes = torch.randint(0, num_classes, (n,), generator=generator)
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator)
        item = {"image": image, "height": h, "width": w, "image_id": i}
        if with_instances:
            item["instances"] = Instances((h, w), gt_boxes=Boxes(boxes), gt_classes=classes)
        batch.append(item)
    return batch

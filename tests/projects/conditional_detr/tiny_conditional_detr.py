"""A tiny Conditional-DETR built from the R50 model config with overrides (ResNet-18, width 32, 2 + 2
layers, 10 queries, 5 classes): it shows that the config scales down and runs in well under a second."""

import torch

from detrex.config import LazyConfig, instantiate
from detrex.structures import Boxes, Instances

MODEL_CONFIG = "projects/conditional_detr/configs/models/conditional_detr_r50.py"
NUM_CLASSES = 5

TINY_OVERRIDES = [
    "model.backbone.stages.depth=18",
    "model.backbone.out_features=['res5']",
    "model.in_channels=512",
    "model.embed_dim=32",
    "model.num_queries=10",
    f"model.num_classes={NUM_CLASSES}",
    "model.select_box_nums_for_evaluation=20",
    "model.position_embedding.num_pos_feats=16",
    *(f"model.transformer.{part}.{key}" for part in ("encoder", "decoder") for key in (
        "num_heads=4", "feedforward_dim=64", "num_layers=2", "attn_dropout=0.0", "ffn_dropout=0.0",
    )),
]  # fmt: skip


def tiny_config(*extra_overrides: str):
    cfg = LazyConfig.load(MODEL_CONFIG)
    return LazyConfig.apply_overrides(cfg, TINY_OVERRIDES + list(extra_overrides))


def build_tiny_conditional_detr(*extra_overrides: str, seed: int = 0):
    torch.manual_seed(seed)
    model = instantiate(tiny_config(*extra_overrides).model)
    with torch.no_grad():  # the zero-initialised box head would make every box the reference box
        torch.nn.init.normal_(model.bbox_embed.layers[-1].weight, std=0.1)
    return model


def random_inputs(sizes, seed: int = 0, with_instances: bool = False):
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for h, w in sizes:
        item = {
            "image": torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8),
            "height": h,
            "width": w,
        }
        if with_instances:
            xy = torch.rand(3, 2, generator=g) * torch.tensor([w / 2, h / 2])
            wh = torch.rand(3, 2, generator=g) * torch.tensor([w / 2, h / 2]) + 4
            boxes = torch.cat([xy, xy + wh], dim=1)
            classes = torch.randint(0, NUM_CLASSES, (3,), generator=g)
            item["instances"] = Instances((h, w), gt_boxes=Boxes(boxes), gt_classes=classes)
        inputs.append(item)
    return inputs

"""Test helpers for the tests next to this file: a tiny Anchor-DETR (ResNet-18, width 64,
16 anchor points x 2 patterns, 5 classes) that runs in a fraction of a second on a CPU."""

import torch

from detrex.modeling import HungarianMatcher, SetCriterion
from detrex.modeling.backbone import TorchvisionResNet
from detrex.structures import Boxes, Instances
from projects.anchor_detr.modeling import AnchorDETR, AnchorDETRTransformer

NUM_CLASSES = 5


def build_tiny_anchor_detr(
    attention_type="RCDA",
    spatial_prior="learned",
    num_decoder_layers=2,
    dropout=0.0,
    topk=10,
    num_classes=NUM_CLASSES,
) -> AnchorDETR:
    transformer = AnchorDETRTransformer(
        embed_dim=64,
        num_heads=4,
        num_encoder_layers=1,
        num_decoder_layers=num_decoder_layers,
        dim_feedforward=128,
        dropout=dropout,
        num_query_position=16,
        num_query_pattern=2,
        spatial_prior=spatial_prior,
        attention_type=attention_type,
        num_classes=num_classes,
    )
    criterion = SetCriterion(
        num_classes=num_classes,
        matcher=HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0),
        weight_dict={"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0},
    )
    return AnchorDETR(
        backbone=TorchvisionResNet("resnet18", return_layers={"layer4": "res5"}),
        in_features=["res5"],
        in_channels=512,
        transformer=transformer,
        embed_dim=64,
        num_classes=num_classes,
        criterion=criterion,
        select_box_nums_for_evaluation=topk,
    )


def randomize_heads(model: AnchorDETR, seed: int = 0) -> None:
    """Give the zero-initialised box head weights so that predictions differ between queries."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.transformer.bbox_embed[0].parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def make_input(h, w, seed, with_instances=False):
    g = torch.Generator().manual_seed(seed)
    item = {
        "image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g),
        "height": h,
        "width": w,
    }
    if with_instances:
        boxes = torch.tensor([[2.0, 3.0, w / 2, h / 2], [w / 3, h / 4, w - 1.0, h - 2.0]])
        item["instances"] = Instances((h, w), gt_boxes=Boxes(boxes), gt_classes=torch.tensor([1, 3]))
    return item

from detrex.config import LazyCall as L
from detrex.modeling import HungarianMatcher, SetCriterion
from detrex.modeling.backbone import TorchvisionResNet
from projects.anchor_detr.modeling import AnchorDETR, AnchorDETRTransformer

model = L(AnchorDETR)(
    backbone=L(TorchvisionResNet)(
        name="resnet50",
        train_backbone=True,  # layer2..layer4 train (at 0.1x lr, see the optimizer); conv1 / layer1 frozen
        return_layers={"layer4": "res5"},
        dilation=False,  # True: DC5 (stride 16), the official code's default
        frozen_bn=True,
    ),
    in_features=["res5"],  # Anchor-DETR uses one feature level
    in_channels=2048,
    embed_dim=256,
    num_classes=80,
    transformer=L(AnchorDETRTransformer)(
        embed_dim="${..embed_dim}",
        num_heads=8,
        num_encoder_layers=6,
        num_decoder_layers=6,
        dim_feedforward=1024,
        dropout=0.0,  # the reference trains without dropout
        activation="relu",
        num_feature_levels=1,
        num_query_position=300,  # anchor points
        num_query_pattern=3,  # patterns per anchor point: 900 queries
        spatial_prior="learned",  # or "grid": fixed anchor points on a 17 x 17 grid
        attention_type="RCDA",  # or "nn.MultiheadAttention"
        num_classes="${..num_classes}",
    ),
    criterion=L(SetCriterion)(
        num_classes="${..num_classes}",
        matcher=L(HungarianMatcher)(
            cost_class=2.0,
            cost_bbox=5.0,
            cost_giou=2.0,
            cost_class_type="focal_loss_cost",
            alpha=0.25,
            gamma=2.0,
        ),
        # weights of the last decoder layer; every auxiliary layer reuses them (derived in SetCriterion)
        weight_dict={"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0},
        loss_class_type="focal_loss",
        alpha=0.25,
        gamma=2.0,
    ),
    aux_loss=True,
    pixel_mean=[123.675, 116.280, 103.530],
    pixel_std=[58.395, 57.120, 57.375],
    select_box_nums_for_evaluation=100,
)

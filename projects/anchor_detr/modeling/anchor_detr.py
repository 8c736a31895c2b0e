"""Anchor-DETR meta-architecture: backbone -> 1x1 projection + GroupNorm -> AnchorDETRTransformer."""

from __future__ import annotations

from torch import nn

from detrex.modeling import DETRDetector
from detrex.structures import ImageList

__all__ = ["AnchorDETR"]


class AnchorDETR(DETRDetector):
    """Anchor-DETR (Wang et al., AAAI 2022): anchor-point queries x pattern embeddings; RCDA attention.

    Inputs, losses and detections are those of ``DETRDetector``. The transformer owns the class and box
    heads (shared by all decoder layers) and returns every decoder layer's predictions.

    Args (beyond DETRDetector's):
        in_channels: channels of the backbone feature map; a 1x1 convolution + GroupNorm(32) projects it
            to ``embed_dim``.
        transformer: AnchorDETRTransformer; its num_classes must equal the model's.
        embed_dim: transformer width.
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_features: list[str],
        in_channels: int,
        transformer: nn.Module,
        embed_dim: int,
        num_classes: int,
        criterion: nn.Module,
        aux_loss: bool = True,
        pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530),
        pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375),
        select_box_nums_for_evaluation: int = 100,
    ):
        if transformer.num_classes != num_classes:
            raise ValueError(
                f"AnchorDETR: num_classes={num_classes} but transformer.num_classes={transformer.num_classes}; "
                'set it once on the model and write "${..num_classes}" in the transformer config'
            )
        input_proj = nn.Sequential(
            nn.Conv2d(in_channels, embed_dim, kernel_size=1), nn.GroupNorm(32, embed_dim)
        )
        nn.init.xavier_uniform_(input_proj[0].weight)
        nn.init.zeros_(input_proj[0].bias)
        super().__init__(
            backbone=backbone,
            in_features=in_features,
            input_proj=input_proj,
            num_classes=num_classes,
            criterion=criterion,
            aux_loss=aux_loss,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            select_box_nums_for_evaluation=select_box_nums_for_evaluation,
        )
        self.transformer = transformer

    def forward_images(self, images: ImageList) -> dict:
        features, mask = self.features(images)  # (B, E, h, w), (B, h, w)
        logits, boxes = self.transformer(features, mask)  # (L, B, Q, K), (L, B, Q, 4)
        return self.predictions(logits, boxes)

    def decoder_cross_attentions(self) -> list[nn.Module]:
        return [layer.cross_attn for layer in self.transformer.decoder_layers]

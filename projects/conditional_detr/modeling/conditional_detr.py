"""The Conditional-DETR meta-architecture: backbone -> transformer -> class / box heads."""

import math

import torch
from torch import nn

from detrex.layers import MLP, inverse_sigmoid
from detrex.modeling import DETRDetector
from detrex.structures import ImageList


class ConditionalDETR(DETRDetector):
    """Conditional-DETR (Meng et al., ICCV 2021): DETR whose decoder cross-attention separates content and
    spatial queries; each query predicts its box relative to a reference point; focal-loss classification.

    Inputs, losses and detections are those of ``DETRDetector``. The transformer returns the decoder
    embeddings of every layer and one reference point per query; the class and box heads here are shared by
    all decoder layers, and boxes are offsets from the reference point in logit space.

    Args (beyond DETRDetector's):
        in_channels: channels of the backbone feature map; a 1x1 convolution projects it to ``embed_dim``.
        position_embedding: sine embedding of the feature pixels (``embed_dim`` channels).
        transformer: ConditionalDetrTransformer.
        embed_dim: transformer width.
        num_queries: learned query positions.
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_features: list[str],
        in_channels: int,
        position_embedding: nn.Module,
        transformer: nn.Module,
        embed_dim: int,
        num_classes: int,
        num_queries: int,
        criterion: nn.Module,
        aux_loss: bool = True,
        pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530),
        pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375),
        select_box_nums_for_evaluation: int = 300,
    ):
        num_pos_feats = getattr(position_embedding, "num_pos_feats", None)
        if num_pos_feats is not None and 2 * num_pos_feats != embed_dim:
            raise ValueError(
                f"ConditionalDETR: position_embedding.num_pos_feats={num_pos_feats} gives {2 * num_pos_feats}-d "
                f"position embeddings, but embed_dim={embed_dim}; set model.position_embedding.num_pos_feats="
                f"{embed_dim // 2} together with model.embed_dim"
            )
        super().__init__(
            backbone=backbone,
            in_features=in_features,
            input_proj=nn.Conv2d(in_channels, embed_dim, kernel_size=1),
            num_classes=num_classes,
            criterion=criterion,
            aux_loss=aux_loss,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            select_box_nums_for_evaluation=select_box_nums_for_evaluation,
        )
        self.position_embedding = position_embedding
        self.transformer = transformer
        self.query_embed = nn.Embedding(num_queries, embed_dim)
        self.class_embed = nn.Linear(embed_dim, num_classes)
        self.bbox_embed = MLP(embed_dim, embed_dim, 4, 3)

        prior_prob = 0.01  # focal-loss prior: every class starts at probability 0.01
        nn.init.constant_(self.class_embed.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.zeros_(self.bbox_embed.layers[-1].weight)  # boxes start at the reference points
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)

    def forward_images(self, images: ImageList) -> dict:
        features, mask = self.features(images)  # (B, C, h, w), (B, h, w)
        pos = self.position_embedding(mask)  # (B, C, h, w)
        hidden_states, references = self.transformer(features, mask, self.query_embed.weight, pos)

        logits = self.class_embed(hidden_states)  # (L, B, Q, K)
        box_offsets = self.bbox_embed(hidden_states)  # (L, B, Q, 4): (cx, cy) relative to the reference
        reference_logit = inverse_sigmoid(references)  # (B, Q, 2)
        boxes = torch.cat([box_offsets[..., :2] + reference_logit, box_offsets[..., 2:]], dim=-1).sigmoid()
        return self.predictions(logits, boxes)

    def decoder_cross_attentions(self) -> list[nn.Module]:
        return [layer.attentions[1] for layer in self.transformer.decoder.layers]

"""The Conditional-DETR meta-architecture: backbone -> transformer -> class / box heads, losses, inference."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from detrex.layers import (
    MLP,
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    conv_weights_channels_last,
    inverse_sigmoid,
)
from detrex.modeling.postprocessing import detector_postprocess
from detrex.structures import Boxes, ImageList, Instances


class ConditionalDETR(nn.Module):
    """Conditional-DETR (Meng et al., ICCV 2021): DETR whose decoder cross-attention separates content and
    spatial queries; each query predicts its box relative to a reference point; focal-loss classification.

    batched_inputs: list of {"image": uint8 [3, H, W] RGB, "height", "width",
        "instances": Instances(gt_boxes xyxy pixels of the image, gt_classes)}   # instances: training only
    training -> dict of weighted losses: loss_class, loss_bbox, loss_giou, and _0 .. _{L-2} (aux_loss)
    eval     -> [{"instances": Instances(pred_boxes, scores, pred_classes)}] in height x width pixels,
                the ``select_box_nums_for_evaluation`` best (query, class) pairs, clipped, empty boxes dropped

    Images of a batch are padded to a common size; padded pixels are masked in the encoder and in the
    decoder's cross-attention, in training and in evaluation.
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
        super().__init__()
        num_pos_feats = getattr(position_embedding, "num_pos_feats", None)
        if num_pos_feats is not None and 2 * num_pos_feats != embed_dim:
            raise ValueError(
                f"ConditionalDETR: position_embedding.num_pos_feats={num_pos_feats} gives {2 * num_pos_feats}-d "
                f"position embeddings, but embed_dim={embed_dim}; set model.position_embedding.num_pos_feats="
                f"{embed_dim // 2} together with model.embed_dim"
            )
        self.backbone = backbone
        self.in_features = list(in_features)
        self.position_embedding = position_embedding
        self.input_proj = nn.Conv2d(in_channels, embed_dim, kernel_size=1)
        self.transformer = transformer
        self.query_embed = nn.Embedding(num_queries, embed_dim)
        self.class_embed = nn.Linear(embed_dim, num_classes)
        self.bbox_embed = MLP(embed_dim, embed_dim, 4, 3)
        self.num_classes = num_classes
        self.aux_loss = aux_loss
        self.criterion = criterion
        self.select_box_nums_for_evaluation = select_box_nums_for_evaluation
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

        prior_prob = 0.01  # focal-loss prior: every class starts at probability 0.01
        nn.init.constant_(self.class_embed.bias, -math.log((1 - prior_prob) / prior_prob))
        nn.init.zeros_(self.bbox_embed.layers[-1].weight)  # boxes start at the reference points
        nn.init.zeros_(self.bbox_embed.layers[-1].bias)
        if getattr(backbone, "channels_last", False):  # its features come channels-last: so do the gradients
            conv_weights_channels_last(self.input_proj)

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        outputs = self.forward_images(images)
        if self.training:
            return self.criterion(outputs, self.prepare_targets(batched_inputs, images.device))
        results = self.inference(outputs["pred_logits"], outputs["pred_boxes"], images.image_sizes)
        return [
            {"instances": detector_postprocess(r, x.get("height", size[0]), x.get("width", size[1]))}
            for r, x, size in zip(results, batched_inputs, images.image_sizes)
        ]

    def forward_images(self, images: ImageList) -> dict:
        """Raw predictions: {"pred_logits": (B, Q, K), "pred_boxes": (B, Q, 4) cxcywh normalised by each
        image's unpadded size, "aux_outputs": [the same for decoder layers 0 .. L-2]}."""
        features = self.input_proj(self.backbone(images.tensor)[self.in_features[-1]])  # (B, C, h, w)
        # padding mask at feature resolution: nearest-neighbour downsampling of the pixel mask
        mask = F.interpolate(images.padding_mask()[None].float(), size=features.shape[-2:]).to(torch.bool)[0]
        pos = self.position_embedding(mask)  # (B, C, h, w)
        hidden_states, references = self.transformer(features, mask, self.query_embed.weight, pos)

        logits = self.class_embed(hidden_states)  # (L, B, Q, K)
        box_offsets = self.bbox_embed(hidden_states)  # (L, B, Q, 4): (cx, cy) relative to the reference
        reference_logit = inverse_sigmoid(references)  # (B, Q, 2)
        boxes = torch.cat([box_offsets[..., :2] + reference_logit, box_offsets[..., 2:]], dim=-1).sigmoid()
        outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.aux_loss:
            outputs["aux_outputs"] = [
                {"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])
            ]
        return outputs

    def inference(self, logits: torch.Tensor, boxes: torch.Tensor, image_sizes) -> list[Instances]:
        """Top-k (query, class) pairs by sigmoid score; boxes in pixels of each (unpadded) input image."""
        logits, boxes = logits.float(), boxes.float()  # float32 detections also under bf16 / fp16 autocast
        num_classes = logits.shape[-1]
        k = min(self.select_box_nums_for_evaluation, logits.shape[1] * num_classes)
        scores, index = logits.sigmoid().flatten(1).topk(k, dim=1)  # (B, k) over all (query, class) pairs
        query = torch.div(index, num_classes, rounding_mode="floor")  # (B, k)
        boxes = torch.gather(box_cxcywh_to_xyxy(boxes), 1, query.unsqueeze(-1).expand(-1, -1, 4))  # (B, k, 4)
        results = []
        for i, (h, w) in enumerate(image_sizes):
            pred_boxes = Boxes(boxes[i])
            pred_boxes.scale(scale_x=w, scale_y=h)
            results.append(
                Instances(
                    (h, w), pred_boxes=pred_boxes, scores=scores[i], pred_classes=index[i] % num_classes
                )
            )
        return results

    def preprocess_image(self, batched_inputs: list[dict]) -> ImageList:
        images = [
            (x["image"].to(self.pixel_mean.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs
        ]
        return ImageList.from_tensors(images)

    def prepare_targets(self, batched_inputs: list[dict], device: torch.device) -> list[dict]:
        """Instances (xyxy pixels) -> {"labels", "boxes": cxcywh normalised by the image size}."""
        targets = []
        for x in batched_inputs:
            gt = x["instances"].to(device)
            h, w = gt.image_size
            scale = torch.as_tensor([w, h, w, h], dtype=torch.float32, device=device)
            targets.append({"labels": gt.gt_classes, "boxes": box_xyxy_to_cxcywh(gt.gt_boxes.tensor / scale)})
        return targets

"""Anchor-DETR meta-architecture: backbone -> 1x1 projection + GroupNorm -> AnchorDETRTransformer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detrex.layers import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, conv_weights_channels_last
from detrex.structures import Boxes, ImageList, Instances

__all__ = ["AnchorDETR"]


class AnchorDETR(nn.Module):
    """Anchor-DETR (Wang et al., AAAI 2022): anchor-point queries x pattern embeddings; RCDA attention.

    batched_inputs: list of {"image": uint8 [3, H, W] RGB, "height", "width",
        "instances": Instances(gt_boxes xyxy pixels, gt_classes)}   # instances: training only
    training -> dict of weighted losses: loss_class, loss_bbox, loss_giou, and _0.._{L-2}
    eval     -> [{"instances": Instances(pred_boxes, scores, pred_classes)}] in height x width

    Args:
        backbone: returns a dict of feature maps; `in_features[-1]` is used.
        in_features: backbone output names (Anchor-DETR uses one level).
        in_channels: channels of that feature map.
        transformer: AnchorDETRTransformer; it owns the class and box heads.
        embed_dim: transformer width (output of the input projection).
        num_classes: foreground classes; the transformer's class head and the criterion must agree.
        criterion: matches predictions to targets and returns the weighted losses.
        aux_loss: also supervise every decoder layer but the last.
        pixel_mean, pixel_std: RGB normalisation of the uint8 input, applied in the model.
        select_box_nums_for_evaluation: detections kept per image (top-k over queries x classes).
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
        super().__init__()
        for owner, value in [("transformer", transformer.num_classes), ("criterion", criterion.num_classes)]:
            if value != num_classes:
                raise ValueError(
                    f"AnchorDETR: num_classes={num_classes} but {owner}.num_classes={value}; set it once on the "
                    f'model and write "${{..num_classes}}" in the {owner} config'
                )
        self.backbone = backbone
        self.in_features = list(in_features)
        self.transformer = transformer
        self.input_proj = nn.Sequential(
            nn.Conv2d(in_channels, embed_dim, kernel_size=1), nn.GroupNorm(32, embed_dim)
        )
        nn.init.xavier_uniform_(self.input_proj[0].weight)
        nn.init.zeros_(self.input_proj[0].bias)
        if getattr(backbone, "channels_last", False):  # its features come channels-last: so do the gradients
            conv_weights_channels_last(self.input_proj)
        self.num_classes = num_classes
        self.criterion = criterion
        self.aux_loss = aux_loss
        self.select_box_nums_for_evaluation = select_box_nums_for_evaluation
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def forward(self, batched_inputs: list[dict]):
        images = self.preprocess_image(batched_inputs)
        pad_mask = images.padding_mask()  # (B, H, W), True on padding: honoured in training and inference
        features = self.input_proj(self.backbone(images.tensor)[self.in_features[-1]])  # (B, E, h, w)
        pad_mask = F.interpolate(pad_mask[None].float(), size=features.shape[-2:])[0].to(torch.bool)
        classes, boxes = self.transformer(features, pad_mask)  # (L, B, Q, K), (L, B, Q, 4)

        if self.training:
            outputs = {"pred_logits": classes[-1], "pred_boxes": boxes[-1]}
            if self.aux_loss:
                outputs["aux_outputs"] = [
                    {"pred_logits": c, "pred_boxes": b} for c, b in zip(classes[:-1], boxes[:-1])
                ]
            targets = self.prepare_targets([x["instances"].to(self.device) for x in batched_inputs])
            return self.criterion(outputs, targets)

        results = []
        for logits, pred_boxes, inputs, size in zip(
            classes[-1], boxes[-1], batched_inputs, images.image_sizes
        ):
            height, width = inputs.get("height", size[0]), inputs.get("width", size[1])
            results.append({"instances": self.inference(logits, pred_boxes, (height, width))})
        return results

    def inference(self, logits: torch.Tensor, boxes: torch.Tensor, out_size: tuple[int, int]) -> Instances:
        """logits (Q, K), boxes (Q, 4) normalised cxcywh of one image -> top-k detections in out_size pixels
        (clipped; empty boxes dropped)."""
        logits, boxes = logits.float(), boxes.float()  # float32 detections also under bf16 / fp16 autocast
        num_classes = logits.shape[-1]
        k = min(self.select_box_nums_for_evaluation, logits.numel())
        scores, index = logits.sigmoid().flatten().topk(k)  # over queries x classes
        query = torch.div(index, num_classes, rounding_mode="floor")
        height, width = out_size
        xyxy = box_cxcywh_to_xyxy(boxes[query]) * boxes.new_tensor([width, height, width, height])
        pred_boxes = Boxes(xyxy)
        pred_boxes.clip((height, width))
        keep = pred_boxes.nonempty()
        return Instances(
            (height, width),
            pred_boxes=pred_boxes[keep],
            scores=scores[keep],
            pred_classes=(index % num_classes)[keep],
        )

    def prepare_targets(self, gt_instances: list[Instances]) -> list[dict]:
        """Instances (xyxy pixels of the resized image) -> {"labels", "boxes": normalised cxcywh}."""
        targets = []
        for inst in gt_instances:
            h, w = inst.image_size
            scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=self.device)
            boxes = box_xyxy_to_cxcywh(inst.gt_boxes.tensor / scale)
            targets.append({"labels": inst.gt_classes, "boxes": boxes})
        return targets

    def preprocess_image(self, batched_inputs: list[dict]) -> ImageList:
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images)

"""What every DETR-family detector here shares: image normalisation and padding, targets for the criterion,
the padding mask at feature resolution, and top-k inference. A project implements ``forward_images``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detrex.layers import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, conv_weights_channels_last
from detrex.structures import Boxes, ImageList, Instances

from .postprocessing import detector_postprocess

__all__ = ["DETRDetector", "topk_detections"]


class DETRDetector(nn.Module):
    """Base of the DETR-family meta-architectures: backbone -> ``input_proj`` -> the project's transformer.

    batched_inputs: list of {"image": uint8 [3, H, W] RGB, "height", "width",
        "instances": Instances(gt_boxes xyxy pixels of the image, gt_classes)}   # instances: training only
    training -> dict of weighted losses from ``criterion``: loss_class, loss_bbox, loss_giou, and
                _0 .. _{L-2} for the decoder layers before the last (``aux_loss``)
    eval     -> [{"instances": Instances(pred_boxes, scores, pred_classes)}] in height x width pixels:
                the ``select_box_nums_for_evaluation`` best (query, class) pairs by sigmoid score, clipped,
                empty boxes dropped

    Images of a batch are padded to a common size at the bottom / right; ``feature_padding_mask`` gives the
    padding at feature resolution, which the transformer masks in training and in evaluation.

    A subclass builds its own modules and implements ``forward_images(images) -> {"pred_logits": (B, Q, K),
    "pred_boxes": (B, Q, 4) cxcywh normalised by each image's unpadded size, "aux_outputs": [...]}``
    (``predictions`` assembles that dict from the per-layer outputs).

    Args:
        backbone: returns a dict of feature maps; ``in_features[-1]`` is used.
        in_features: backbone output names.
        input_proj: maps the backbone's feature map to the transformer's width. When the backbone runs
            channels-last, its convolution weights are stored channels-last too, so that their gradients
            come back in the parameters' own layout.
        num_classes: foreground classes of the class head; the criterion must agree.
        criterion: matches predictions to targets and returns the weighted losses.
        aux_loss: also supervise every decoder layer but the last.
        pixel_mean, pixel_std: RGB normalisation of the uint8 input, applied in the model.
        select_box_nums_for_evaluation: detections kept per image.
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_features: list[str],
        input_proj: nn.Module,
        num_classes: int,
        criterion: nn.Module,
        aux_loss: bool = True,
        pixel_mean: tuple[float, float, float] = (123.675, 116.280, 103.530),
        pixel_std: tuple[float, float, float] = (58.395, 57.120, 57.375),
        select_box_nums_for_evaluation: int = 100,
    ):
        super().__init__()
        if criterion.num_classes != num_classes:
            raise ValueError(
                f"{type(self).__name__}: num_classes={num_classes} but criterion.num_classes="
                f'{criterion.num_classes}; set it once on the model and write "${{..num_classes}}" in the '
                "criterion config"
            )
        self.backbone = backbone
        self.in_features = list(in_features)
        self.input_proj = input_proj
        if getattr(backbone, "channels_last", False):
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
        outputs = self.forward_images(images)
        if self.training:
            return self.criterion(outputs, self.prepare_targets(batched_inputs))
        results = self.inference(outputs["pred_logits"], outputs["pred_boxes"], images.image_sizes)
        return [
            {"instances": detector_postprocess(r, x.get("height", size[0]), x.get("width", size[1]))}
            for r, x, size in zip(results, batched_inputs, images.image_sizes)
        ]

    def forward_images(self, images: ImageList) -> dict:
        """Raw predictions of a padded batch; see the class docstring."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_images")

    def decoder_cross_attentions(self) -> list[nn.Module]:
        """The cross-attention module of each decoder layer, first layer first: what
        ``detrex.utils.attention_maps.record_attention`` hooks. Each has an ``attention_maps`` method taking
        its forward's arguments, or is an ``nn.MultiheadAttention``."""
        raise NotImplementedError(f"{type(self).__name__} must implement decoder_cross_attentions")

    def features(self, images: ImageList) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected feature map (B, C, h, w) of ``in_features[-1]`` and its padding mask (B, h, w)."""
        features = self.input_proj(self.backbone(images.tensor)[self.in_features[-1]])
        return features, self.feature_padding_mask(images, features.shape[-2:])

    @staticmethod
    def feature_padding_mask(images: ImageList, size: tuple[int, int]) -> torch.Tensor:
        """(B, h, w) bool, True on padding: the pixel mask downsampled to ``size`` (nearest neighbour)."""
        return F.interpolate(images.padding_mask()[None].float(), size=tuple(size)).to(torch.bool)[0]

    def predictions(self, logits: torch.Tensor, boxes: torch.Tensor) -> dict:
        """Per-layer logits (L, B, Q, K) and boxes (L, B, Q, 4) -> the last layer's as ``pred_logits`` /
        ``pred_boxes``, the others as ``aux_outputs`` when ``aux_loss``."""
        outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.aux_loss:
            outputs["aux_outputs"] = [
                {"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])
            ]
        return outputs

    def inference(
        self, logits: torch.Tensor, boxes: torch.Tensor, image_sizes: list[tuple[int, int]]
    ) -> list[Instances]:
        """Top-k (query, class) pairs of each image by sigmoid score. logits (B, Q, K), boxes (B, Q, 4)
        normalised cxcywh -> Instances with boxes in pixels of each unpadded input image."""
        k = min(self.select_box_nums_for_evaluation, logits.shape[1] * logits.shape[2])
        scores, classes, boxes = topk_detections(logits, boxes, k)
        results = []
        for i, (h, w) in enumerate(image_sizes):
            pred_boxes = Boxes(boxes[i])
            pred_boxes.scale(scale_x=w, scale_y=h)
            results.append(
                Instances((h, w), pred_boxes=pred_boxes, scores=scores[i], pred_classes=classes[i])
            )
        return results

    def preprocess_image(self, batched_inputs: list[dict]) -> ImageList:
        """Normalise each uint8 image and pad the batch (bottom / right) into one tensor."""
        images = [x["image"].to(self.device, non_blocking=True) for x in batched_inputs]
        return ImageList.from_tensors([(x - self.pixel_mean) / self.pixel_std for x in images])

    def prepare_targets(self, batched_inputs: list[dict]) -> list[dict]:
        """Instances (xyxy pixels of each image) -> {"labels", "boxes": cxcywh normalised by the image size},
        computed where the loader left them (the host) and copied to the model's device without waiting."""
        targets = []
        for x in batched_inputs:
            gt = x["instances"]
            h, w = gt.image_size
            boxes = box_xyxy_to_cxcywh(gt.gt_boxes.tensor / gt.gt_boxes.tensor.new_tensor([w, h, w, h]))
            targets.append(
                {
                    "labels": gt.gt_classes.to(self.device, non_blocking=True),
                    "boxes": boxes.to(self.device, non_blocking=True),
                }
            )
        return targets


def topk_detections(
    logits: torch.Tensor, boxes: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best (query, class) pairs of each image by sigmoid score, best first: logits (B, Q, K), boxes
    (B, Q, 4) normalised cxcywh -> scores (B, k), classes (B, k), boxes (B, k, 4) normalised xyxy, in float32
    (also under bf16 / fp16 autocast)."""
    logits, boxes = logits.float(), boxes.float()
    num_classes = logits.shape[-1]
    scores, index = logits.sigmoid().flatten(1).topk(k, dim=1)  # over all (query, class) pairs
    query = torch.div(index, num_classes, rounding_mode="floor")
    boxes = torch.gather(box_cxcywh_to_xyxy(boxes), 1, query.unsqueeze(-1).expand(-1, -1, 4))
    return scores, index % num_classes, boxes

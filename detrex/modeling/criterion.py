"""Set-prediction losses of the DETR family: focal classification, L1 and GIoU box losses, per decoder layer."""

import re

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from detrex.layers.box_ops import box_cxcywh_to_xyxy, generalized_box_iou
from detrex.utils.comm import get_world_size

LOSS_NAMES = {"class": ("loss_class",), "boxes": ("loss_bbox", "loss_giou")}
_AUX_KEY = re.compile(r"^(?P<base>\w+?)_(?P<layer>\d+)$")


def sigmoid_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    num_boxes: float | torch.Tensor,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal loss (Lin et al., 2017) of (B, Q, K) logits against one-hot (B, Q, K) targets.

    Normalised as the references do: mean over queries, summed over images and classes, divided by
    ``num_boxes`` (the caller multiplies by Q, so the result is the sum over all entries / num_boxes).
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_boxes


class SetCriterion(nn.Module):
    """Match predictions to targets (``matcher``), then compute the weighted losses of every decoder layer.

    forward(outputs, targets):
        outputs: {"pred_logits": (B, Q, K), "pred_boxes": (B, Q, 4) normalised cxcywh,
                  "aux_outputs": [same two keys for decoder layers 0 .. L-2]}   (aux_outputs optional)
        targets: list of B dicts {"labels": (n_i,) int64 in [0, num_classes), "boxes": (n_i, 4) cxcywh}
    returns the WEIGHTED losses: loss_class, loss_bbox, loss_giou of the last layer and
    loss_class_i, loss_bbox_i, loss_giou_i of aux layer i.

    ``weight_dict`` holds the weights of the base names ("loss_class", "loss_bbox", "loss_giou"); aux layer
    i uses the weight of its base name unless ``weight_dict`` has an explicit "<name>_<i>" entry, so the
    number of decoder layers is never written in a config. A computed loss without a weight is an error.
    Box losses are divided by the number of target boxes averaged over all processes (at least 1).

    ``matcher(outputs, targets)`` returns, per image, (query_idx, target_idx) int64 CPU tensors. On a GPU
    the matcher's copy of the costs to the CPU is the only point where ``forward`` waits for the device:
    every layer is matched from that one copy (``HungarianMatcher.match_layers``), and the matched
    positions go back in one copy that does not wait.
    """

    def __init__(
        self,
        num_classes: int,
        matcher: nn.Module,
        weight_dict: dict[str, float],
        losses: tuple[str, ...] | list[str] = ("class", "boxes"),
        loss_class_type: str = "focal_loss",
        alpha: float = 0.25,
        gamma: float = 2.0,
    ):
        super().__init__()
        unknown = [name for name in losses if name not in LOSS_NAMES]
        if unknown:
            raise ValueError(f"SetCriterion: unknown losses {unknown}; available: {sorted(LOSS_NAMES)}")
        if loss_class_type != "focal_loss":
            raise ValueError(
                f"SetCriterion: loss_class_type={loss_class_type!r}; only 'focal_loss' is implemented"
            )
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = dict(weight_dict)
        self.losses = tuple(losses)
        self.alpha = alpha
        self.gamma = gamma
        self._check_weights()

    def _check_weights(self) -> None:
        computed = [name for loss in self.losses for name in LOSS_NAMES[loss]]
        missing = [name for name in computed if name not in self.weight_dict]
        if missing:
            raise KeyError(
                f"SetCriterion: no weight for {missing} in weight_dict {self.weight_dict}. Every computed loss "
                f"needs a weight, e.g. weight_dict={{'loss_class': 2.0, 'loss_bbox': 5.0, 'loss_giou': 2.0}}."
            )
        for key in self.weight_dict:
            match = _AUX_KEY.match(key)
            if key not in computed and not (match and match["base"] in computed):
                raise KeyError(
                    f"SetCriterion: weight_dict key {key!r} names no computed loss (computed: {computed})"
                )

    def weight(self, name: str) -> float:
        """Weight of loss ``name`` ("loss_bbox" or an aux name such as "loss_bbox_3")."""
        if name in self.weight_dict:
            return self.weight_dict[name]
        match = _AUX_KEY.match(name)
        if match is None or match["base"] not in self.weight_dict:
            raise KeyError(f"SetCriterion: no weight for loss {name!r} in {self.weight_dict}")
        return self.weight_dict[match["base"]]

    def loss_class(self, logits, batch_idx, query_idx, target_labels, num_boxes) -> dict[str, torch.Tensor]:
        """logits (B, Q, K); query ``query_idx[j]`` of image ``batch_idx[j]`` is matched to a target of class
        ``target_labels[j]``; every other query's target is "no object"."""
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        target_classes[batch_idx, query_idx] = target_labels
        # one-hot over K + 1 columns so that "no object" (= num_classes) becomes an all-zero row
        onehot = F.one_hot(target_classes, self.num_classes + 1)[..., :-1].to(logits.dtype)
        loss = sigmoid_focal_loss(logits, onehot, num_boxes, self.alpha, self.gamma) * logits.shape[1]
        return {"loss_class": loss}

    def loss_boxes(
        self, pred_boxes, batch_idx, query_idx, target_boxes, num_boxes
    ) -> dict[str, torch.Tensor]:
        """pred_boxes (B, Q, 4) cxcywh; the matched predictions against ``target_boxes`` (n, 4), pair by pair."""
        src = pred_boxes[batch_idx, query_idx]  # (n, 4) matched predictions
        loss_bbox = F.l1_loss(src, target_boxes, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(target_boxes)))
        loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def layer_losses(self, layer, positions, labels, boxes, num_boxes) -> dict[str, torch.Tensor]:
        """Unweighted losses of one decoder layer's outputs. positions: (batch_idx, query_idx, target_idx)
        of its matched pairs (``matched_positions``); labels (M,), boxes (M, 4): all targets of the batch."""
        batch_idx, query_idx, target_idx = positions
        losses = {}
        if "class" in self.losses:
            losses.update(
                self.loss_class(layer["pred_logits"], batch_idx, query_idx, labels[target_idx], num_boxes)
            )
        if "boxes" in self.losses:
            losses.update(
                self.loss_boxes(layer["pred_boxes"], batch_idx, query_idx, boxes[target_idx], num_boxes)
            )
        return losses

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        layers = [outputs, *outputs.get("aux_outputs", [])]  # the last decoder layer, then aux layers 0 ..
        # fp16 / bf16 outputs of AMP are matched and their losses computed in float32
        layers = [{k: _at_least_fp32(layer[k]) for k in ("pred_logits", "pred_boxes")} for layer in layers]
        device = layers[0]["pred_logits"].device
        num_boxes = self.average_num_boxes(targets, device)
        sizes = [len(t["labels"]) for t in targets]
        matched = matched_positions(self.match(layers, targets), sizes, device)
        labels = torch.cat([t["labels"] for t in targets])  # (M,): the batch's targets, image by image
        boxes = torch.cat([t["boxes"] for t in targets])  # (M, 4)
        raw = {}
        for i, (layer, positions) in enumerate(zip(layers, matched)):
            suffix = "" if i == 0 else f"_{i - 1}"
            layer_raw = self.layer_losses(layer, positions, labels, boxes, num_boxes)
            raw.update({f"{name}{suffix}": value for name, value in layer_raw.items()})
        return {name: value * self.weight(name) for name, value in raw.items()}

    def match(self, layers: list[dict], targets: list[dict]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each layer matched on its own: per layer, per image (query_idx, target_idx). A matcher with
        ``match_layers`` (HungarianMatcher) does all layers with one device-to-host copy; any other module
        is called once per layer."""
        if hasattr(self.matcher, "match_layers"):
            return self.matcher.match_layers(layers, targets)
        return [self.matcher(layer, targets) for layer in layers]

    @staticmethod
    def average_num_boxes(targets: list[dict], device: torch.device) -> torch.Tensor:
        """Number of target boxes per process, averaged over all processes, at least 1: a 0-dim tensor on
        ``device`` (filled there, not copied from the host; the losses are divided by it on the device)."""
        num_boxes = torch.full((), float(sum(len(t["labels"]) for t in targets)), device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(num_boxes)
        return torch.clamp(num_boxes / get_world_size(), min=1)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, losses={self.losses}, weight_dict={self.weight_dict}, "
            f"alpha={self.alpha}, gamma={self.gamma}"
        )


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def matched_positions(
    indices: list[list[tuple[torch.Tensor, torch.Tensor]]], sizes: list[int], device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per layer, (batch_idx, query_idx, target_idx) of its matched pairs, int64 tensors on ``device``.

    indices: per layer, per image (query_idx, target_idx) CPU tensors, as the matcher returns them; sizes:
    targets per image. target_idx counts the batch's targets image by image (``torch.cat`` order). All
    layers go to the device in one copy that does not wait for it (``non_blocking``): indexing a device
    tensor with CPU indices would copy them one at a time, each copy waiting for the device's queue."""
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]  # index of each image's first target
    per_layer = []
    for layer in indices:
        batch_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(layer)])
        query_idx = torch.cat([q for q, _ in layer])
        target_idx = torch.cat([t + offset for (_, t), offset in zip(layer, offsets)])
        per_layer.append(torch.stack([batch_idx, query_idx, target_idx]))  # (3, n)
    lengths = [positions.shape[1] for positions in per_layer]
    on_device = torch.cat(per_layer, dim=1).to(device, non_blocking=True)
    return [tuple(positions) for positions in on_device.split(lengths, dim=1)]

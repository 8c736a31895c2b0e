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

    def loss_class(self, outputs, targets, indices, num_boxes) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]  # (B, Q, K)
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        batch_idx, query_idx = _query_index(indices)
        target_classes[batch_idx, query_idx] = torch.cat(
            [t["labels"][j] for t, (_, j) in zip(targets, indices)]
        )
        # one-hot over K + 1 columns so that "no object" (= num_classes) becomes an all-zero row
        onehot = F.one_hot(target_classes, self.num_classes + 1)[..., :-1].to(logits.dtype)
        loss = sigmoid_focal_loss(logits, onehot, num_boxes, self.alpha, self.gamma) * logits.shape[1]
        return {"loss_class": loss}

    def loss_boxes(self, outputs, targets, indices, num_boxes) -> dict[str, torch.Tensor]:
        batch_idx, query_idx = _query_index(indices)
        src = outputs["pred_boxes"][batch_idx, query_idx]  # (n, 4) matched predictions
        tgt = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)], dim=0)
        loss_bbox = F.l1_loss(src, tgt, reduction="none").sum() / num_boxes
        giou = torch.diag(generalized_box_iou(box_cxcywh_to_xyxy(src), box_cxcywh_to_xyxy(tgt)))
        loss_giou = (1 - giou).sum() / num_boxes
        return {"loss_bbox": loss_bbox, "loss_giou": loss_giou}

    def layer_losses(self, outputs, targets, num_boxes) -> dict[str, torch.Tensor]:
        """Unweighted losses of one decoder layer's outputs, matched independently (fp16 / bf16 outputs of
        AMP are computed in float32)."""
        outputs = {k: _at_least_fp32(outputs[k]) for k in ("pred_logits", "pred_boxes")}
        indices = self.matcher(outputs, targets)
        losses = {}
        if "class" in self.losses:
            losses.update(self.loss_class(outputs, targets, indices, num_boxes))
        if "boxes" in self.losses:
            losses.update(self.loss_boxes(outputs, targets, indices, num_boxes))
        return losses

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        num_boxes = self.average_num_boxes(targets, outputs["pred_logits"].device)
        raw = self.layer_losses(outputs, targets, num_boxes)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            raw.update({f"{k}_{i}": v for k, v in self.layer_losses(aux, targets, num_boxes).items()})
        return {name: value * self.weight(name) for name, value in raw.items()}

    @staticmethod
    def average_num_boxes(targets: list[dict], device: torch.device) -> torch.Tensor:
        """Number of target boxes per process, averaged over all processes, at least 1: a 0-dim tensor on
        ``device`` (no host sync; the losses are divided by it on the device)."""
        num_boxes = torch.tensor(float(sum(len(t["labels"]) for t in targets)), device=device)
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


def _query_index(indices) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch index, query index) of every matched prediction, image by image."""
    batch_idx = torch.cat([torch.full_like(q, i) for i, (q, _) in enumerate(indices)])
    query_idx = torch.cat([q for q, _ in indices])
    return batch_idx, query_idx

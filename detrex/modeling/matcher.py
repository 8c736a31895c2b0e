"""Hungarian matching of predictions to ground-truth boxes (one-to-one, minimum total cost)."""

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from detrex.layers.box_ops import box_cxcywh_to_xyxy, generalized_box_iou

COST_CLASS_TYPES = ("focal_loss_cost", "ce_cost")


class HungarianMatcher(nn.Module):
    """Assign each ground-truth box to one query by minimising

        cost = cost_class * C_class + cost_bbox * L1(boxes) + cost_giou * (-GIoU(boxes))

    ``focal_loss_cost``: C_class = focal(p, positive) - focal(p, negative) with p = sigmoid(logit) of the
    target class (alpha, gamma as the focal loss); ``ce_cost``: C_class = -softmax(logits)[target class].

    forward(outputs, targets):
        outputs: {"pred_logits": (B, Q, K), "pred_boxes": (B, Q, 4) normalised cxcywh}
        targets: list of B dicts {"labels": (n_i,) int64, "boxes": (n_i, 4) normalised cxcywh}
    returns a list of B pairs (query_idx, target_idx), int64 CPU tensors of length min(Q, n_i).
    ``match_layers`` matches several decoder layers' predictions to the same targets.

    The assignment runs on the CPU (scipy), so the costs cross from the device to the host, and that copy
    waits for all the device work queued before it. The cost matrices of the whole batch, and with
    ``match_layers`` of all decoder layers, are computed on the device and moved in one copy: one wait
    per training step instead of one per layer and image.
    """

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_bbox: float = 1.0,
        cost_giou: float = 1.0,
        cost_class_type: str = "focal_loss_cost",
        alpha: float = 0.25,
        gamma: float = 2.0,
    ):
        super().__init__()
        if cost_class_type not in COST_CLASS_TYPES:
            raise ValueError(
                f"HungarianMatcher: cost_class_type={cost_class_type!r}, expected one of {COST_CLASS_TYPES}"
            )
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("HungarianMatcher: all costs are 0; the assignment would be arbitrary")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.cost_class_type = cost_class_type
        self.alpha = alpha
        self.gamma = gamma

    def class_cost(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, K) logits, (M,) labels -> (N, M) classification cost."""
        if self.cost_class_type == "ce_cost":
            return -logits.softmax(-1)[:, labels]
        prob = logits.sigmoid()[:, labels]
        neg = (1 - self.alpha) * prob**self.gamma * -(1 - prob + 1e-8).log()
        pos = self.alpha * (1 - prob) ** self.gamma * -(prob + 1e-8).log()
        return pos - neg

    @torch.no_grad()
    def cost_matrix(self, outputs: dict, targets: list[dict]) -> torch.Tensor:
        """(B, Q, M) cost of every query of every image against all M targets of the batch, on the
        outputs' device; only image i's own targets (its block of columns) are used for image i."""
        bs, num_queries = outputs["pred_logits"].shape[:2]
        logits = outputs["pred_logits"].flatten(0, 1)  # (B*Q, K)
        boxes = outputs["pred_boxes"].flatten(0, 1)  # (B*Q, 4)
        tgt_labels = torch.cat([t["labels"] for t in targets])
        tgt_boxes = torch.cat([t["boxes"] for t in targets])  # (M, 4): all images' targets
        cost = (
            self.cost_class * self.class_cost(logits, tgt_labels)
            + self.cost_bbox * torch.cdist(boxes, tgt_boxes, p=1)
            + self.cost_giou * -generalized_box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(tgt_boxes))
        )
        return cost.view(bs, num_queries, -1)

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return self.match_layers([outputs], targets)[0]

    @torch.no_grad()
    def match_layers(
        self, layer_outputs: list[dict], targets: list[dict]
    ) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """``forward`` for each of several layers' outputs (same B, Q, K), with one device-to-host copy."""
        costs = torch.stack([self.cost_matrix(outputs, targets) for outputs in layer_outputs])  # (L, B, Q, M)
        costs = costs.cpu()  # the one copy that waits for the device
        if not torch.isfinite(costs).all():
            raise FloatingPointError(
                "HungarianMatcher: the matching costs are not finite: the predicted boxes or class logits "
                "hold NaN / Inf (the model's outputs diverged)"
            )
        sizes = [len(t["boxes"]) for t in targets]
        return [assign(cost, sizes) for cost in costs]

    def extra_repr(self) -> str:
        return (
            f"cost_class={self.cost_class}, cost_bbox={self.cost_bbox}, cost_giou={self.cost_giou}, "
            f"cost_class_type={self.cost_class_type!r}, alpha={self.alpha}, gamma={self.gamma}"
        )


def assign(cost: torch.Tensor, sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Minimum-cost one-to-one assignment per image. cost: (B, Q, M) CPU tensor whose columns are the
    images' targets in order (image i owns ``sizes[i]`` of them); returns B int64 (query_idx, target_idx)."""
    indices = []
    for i, cost_i in enumerate(cost.split(sizes, dim=-1)):  # cost_i: (B, Q, n_i), image i's targets
        query_idx, target_idx = linear_sum_assignment(cost_i[i])
        indices.append(
            (torch.as_tensor(query_idx, dtype=torch.int64), torch.as_tensor(target_idx, dtype=torch.int64))
        )
    return indices

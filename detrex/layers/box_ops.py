"""Box conversions, IoU and generalized IoU.

Boxes are ``(..., 4)`` tensors. ``cxcywh`` is (center x, center y, width, height); ``xyxy`` is
(x0, y0, x1, y1). The pairwise functions take ``boxes1 (..., N, 4)`` and ``boxes2 (..., M, 4)`` and return
``(..., N, M)``: plain ``(N, 4) x (M, 4)`` inputs or batched ``(B, N, 4) x (B, M, 4)`` inputs.
"""

import torch


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes, ``(..., 4) -> (...)``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairwise IoU of xyxy boxes. Returns ``(iou, union)``, both ``(..., N, M)``.

    The union is returned too because generalized IoU needs it (as in the DETR references).
    """
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # (..., N, M, 2)
    bottom_right = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[..., :, None] + area2[..., None, :] - inter
    return inter / union, union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise generalized IoU (Rezatofighi et al., 2019) of xyxy boxes, ``(..., N, M)``.

    No epsilon in the denominators, as in the official DETR-family code (detrex adds 1e-6). Boxes must be
    xyxy with x1 >= x0 and y1 >= y0 (``box_cxcywh_to_xyxy`` of non-negative sizes is); no check is made here,
    since one would wait for the device on every call: HungarianMatcher checks its costs on the host.
    """
    iou, union = box_iou(boxes1, boxes2)
    top_left = torch.min(boxes1[..., :, None, :2], boxes2[..., None, :, :2])
    bottom_right = torch.max(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing_area = wh[..., 0] * wh[..., 1]
    return iou - (enclosing_area - union) / enclosing_area

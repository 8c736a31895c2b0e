import pytest
import torch
from torch.testing import assert_close

from detrex.layers import box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh, generalized_box_iou


def test_cxcywh_xyxy_round_trip():
    cxcywh = torch.tensor([[0.5, 0.5, 0.2, 0.4], [10.0, 20.0, 4.0, 6.0]])
    xyxy = box_cxcywh_to_xyxy(cxcywh)
    assert_close(xyxy, torch.tensor([[0.4, 0.3, 0.6, 0.7], [8.0, 17.0, 12.0, 23.0]]))
    assert_close(box_xyxy_to_cxcywh(xyxy), cxcywh)


def _iou_and_giou_by_hand(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union, inter / union - (hull - union) / hull


def test_pairwise_iou_and_giou_match_hand_formula():
    boxes1 = torch.tensor(
        [[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0], [5.0, 5.0, 6.0, 7.0]], dtype=torch.float64
    )
    boxes2 = torch.tensor([[1.0, 0.0, 2.0, 3.0], [4.0, 4.0, 8.0, 8.0]], dtype=torch.float64)
    iou, union = box_iou(boxes1, boxes2)
    giou = generalized_box_iou(boxes1, boxes2)
    assert iou.shape == giou.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            exp_iou, exp_giou = _iou_and_giou_by_hand(boxes1[i].tolist(), boxes2[j].tolist())
            assert iou[i, j].item() == pytest.approx(exp_iou, abs=1e-12)
            assert giou[i, j].item() == pytest.approx(exp_giou, abs=1e-12)
    assert union[0, 0].item() == pytest.approx(4.0 + 3.0 - 2.0)


def test_giou_has_no_epsilon():
    # disjoint unit boxes 1 apart: hull 3, union 2 -> giou = 0 - 1/3 exactly (detrex's 1e-6 would shift it)
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 0.0, 3.0, 1.0]], dtype=torch.float64)
    assert generalized_box_iou(a, b).item() == -1.0 / 3.0


def test_batched_matches_per_image():
    torch.manual_seed(0)
    b1 = box_cxcywh_to_xyxy(torch.rand(3, 5, 4) * 0.5 + 0.25)
    b2 = box_cxcywh_to_xyxy(torch.rand(3, 4, 4) * 0.5 + 0.25)
    batched = generalized_box_iou(b1, b2)
    assert batched.shape == (3, 5, 4)
    for i in range(3):
        assert_close(batched[i], generalized_box_iou(b1[i], b2[i]))

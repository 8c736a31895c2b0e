import itertools

import pytest
import torch
from torch.overrides import TorchFunctionMode

from detrex.layers import box_cxcywh_to_xyxy, generalized_box_iou
from detrex.modeling import HungarianMatcher


def _cost(matcher, logits, boxes, labels, tgt_boxes):
    """Cost matrix (Q, n) from the definition, one entry at a time."""
    q, n = logits.shape[0], labels.shape[0]
    cost = torch.zeros(q, n, dtype=torch.float64)
    a, g = matcher.alpha, matcher.gamma
    for i in range(q):
        for j in range(n):
            p = logits[i, labels[j]].sigmoid()
            pos = a * (1 - p) ** g * -torch.log(p + 1e-8)
            neg = (1 - a) * p**g * -torch.log(1 - p + 1e-8)
            l1 = (boxes[i] - tgt_boxes[j]).abs().sum()
            giou = generalized_box_iou(
                box_cxcywh_to_xyxy(boxes[i : i + 1]), box_cxcywh_to_xyxy(tgt_boxes[j : j + 1])
            )
            cost[i, j] = (
                matcher.cost_class * (pos - neg) + matcher.cost_bbox * l1 - matcher.cost_giou * giou[0, 0]
            )
    return cost


def _brute_force(cost):
    """Best assignment of every target to a distinct query, by enumerating all permutations."""
    q, n = cost.shape
    best = min(
        itertools.permutations(range(q), n), key=lambda qs: sum(cost[qi, j] for j, qi in enumerate(qs))
    )
    return sorted(zip(best, range(n)))


def test_matcher_equals_brute_force_on_small_problems():
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    for seed in range(10):
        g = torch.Generator().manual_seed(seed)
        bs, num_queries, num_classes = 2, 4, 5
        logits = torch.randn(bs, num_queries, num_classes, generator=g, dtype=torch.float64)
        boxes = torch.rand(bs, num_queries, 4, generator=g, dtype=torch.float64) * 0.4 + 0.2
        sizes = [3, 2]
        targets = [
            {
                "labels": torch.randint(0, num_classes, (n,), generator=g),
                "boxes": torch.rand(n, 4, generator=g, dtype=torch.float64) * 0.4 + 0.2,
            }
            for n in sizes
        ]
        indices = matcher({"pred_logits": logits, "pred_boxes": boxes}, targets)
        for b, (query_idx, target_idx) in enumerate(indices):
            assert query_idx.dtype == target_idx.dtype == torch.int64
            cost = _cost(matcher, logits[b], boxes[b], targets[b]["labels"], targets[b]["boxes"])
            assert sorted(zip(query_idx.tolist(), target_idx.tolist())) == _brute_force(cost)


def test_matcher_handles_images_without_targets():
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    outputs = {"pred_logits": torch.randn(2, 4, 3), "pred_boxes": torch.rand(2, 4, 4) * 0.5 + 0.25}
    targets = [
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
        {"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])},
    ]
    (q0, t0), (q1, t1) = matcher(outputs, targets)
    assert len(q0) == len(t0) == 0
    assert len(q1) == 1 and t1.tolist() == [0]


class CountHostCopies(TorchFunctionMode):
    """Counts the calls that bring tensor data to the host (a wait for the device on a GPU)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.item):
            self.count += 1
        elif func is torch.Tensor.to and "cpu" in map(str, (*args[1:], *(kwargs or {}).values())):
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_match_layers_equals_matching_each_layer_from_one_host_copy():
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    g = torch.Generator().manual_seed(0)
    layers = [
        {
            "pred_logits": torch.randn(2, 6, 5, generator=g),
            "pred_boxes": torch.rand(2, 6, 4, generator=g) * 0.4 + 0.2,
        }
        for _ in range(3)
    ]
    targets = [
        {"labels": torch.tensor([0, 3, 3]), "boxes": torch.rand(3, 4, generator=g) * 0.4 + 0.2},
        {"labels": torch.tensor([4]), "boxes": torch.rand(1, 4, generator=g) * 0.4 + 0.2},
    ]
    with CountHostCopies() as copies:
        together = matcher.match_layers(layers, targets)
    assert copies.count == 1
    for layer, indices in zip(layers, together):
        separate = matcher(layer, targets)
        assert len(indices) == len(separate) == 2
        for (q, t), (q_ref, t_ref) in zip(indices, separate):
            assert q.tolist() == q_ref.tolist() and t.tolist() == t_ref.tolist()


def test_non_finite_predictions_are_a_floating_point_error():
    """Diverged outputs end in a message about them, checked on the host copy of the costs (no extra wait
    for the device), not in an error about box formats."""
    torch.manual_seed(0)
    outputs = {"pred_logits": torch.randn(1, 4, 3), "pred_boxes": torch.rand(1, 4, 4) * 0.3 + 0.2}
    outputs["pred_boxes"][0, 2] = float("nan")
    targets = [{"labels": torch.tensor([1]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}]
    with pytest.raises(FloatingPointError, match="not finite.*diverged"):
        HungarianMatcher()(outputs, targets)

import math

import pytest
import torch
from torch.testing import assert_close

from detrex.modeling import HungarianMatcher, SetCriterion
from detrex.modeling.criterion import matched_positions


class FixedMatcher(torch.nn.Module):
    def __init__(self, indices):
        super().__init__()
        self.indices = indices
        self.calls = 0

    def forward(self, outputs, targets):
        self.calls += 1
        return self.indices


def _focal(logit, target, alpha=0.25, gamma=2.0):
    p = 1 / (1 + math.exp(-logit))
    if target:
        return -alpha * (1 - p) ** gamma * math.log(p)
    return -(1 - alpha) * p**gamma * math.log(1 - p)


def test_losses_equal_hand_computed_values():
    logits = torch.tensor([[[0.5, -1.0], [2.0, 0.0], [-0.5, 1.5]]], dtype=torch.float64)  # (B=1, Q=3, K=2)
    boxes = torch.tensor(
        [[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.4], [0.6, 0.6, 0.4, 0.2]]], dtype=torch.float64
    )
    targets = [
        {
            "labels": torch.tensor([1, 0]),
            "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.2], [0.7, 0.6, 0.2, 0.2]], dtype=torch.float64),
        }
    ]
    matcher = FixedMatcher(
        [(torch.tensor([2, 0]), torch.tensor([0, 1]))]
    )  # query 2 -> target 0, query 0 -> 1
    criterion = SetCriterion(2, matcher, {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 3.0})
    losses = criterion({"pred_logits": logits, "pred_boxes": boxes}, targets)

    onehot = {(2, 1), (0, 0)}  # (query, class) pairs that are positives
    focal = sum(_focal(logits[0, q, c].item(), (q, c) in onehot) for q in range(3) for c in range(2))
    num_boxes = 2
    assert losses["loss_class"].item() == pytest.approx(2.0 * focal / num_boxes, rel=1e-12)
    l1 = (0.1 + 0.1 + 0.0 + 0.0) + (0.2 + 0.1 + 0.0 + 0.0)  # |pred - target| of the two matched pairs
    assert losses["loss_bbox"].item() == pytest.approx(5.0 * l1 / num_boxes, rel=1e-12)
    # pair 1: pred [0.4, 0.5, 0.8, 0.7] vs target [0.3, 0.4, 0.7, 0.6]: inter 0.3 x 0.1, union 0.13, hull 0.15
    giou1 = 0.03 / 0.13 - (0.15 - 0.13) / 0.15
    # pair 2: pred [0.4, 0.4, 0.6, 0.6] vs target [0.6, 0.5, 0.8, 0.7]: touching, inter 0
    giou2 = 0.0 - (0.4 * 0.3 - 0.08) / (0.4 * 0.3)
    assert losses["loss_giou"].item() == pytest.approx(
        3.0 * ((1 - giou1) + (1 - giou2)) / num_boxes, rel=1e-9
    )


def test_aux_losses_use_base_weights_and_own_matching():
    logits = torch.randn(2, 4, 3)
    boxes = torch.rand(2, 4, 4) * 0.5 + 0.25
    targets = [{"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.2]])}] * 2
    matcher = FixedMatcher([(torch.tensor([1]), torch.tensor([0]))] * 2)
    weights = {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0, "loss_giou_1": 7.0}
    criterion = SetCriterion(3, matcher, weights)
    layer = {"pred_logits": logits, "pred_boxes": boxes}
    losses = criterion({**layer, "aux_outputs": [dict(layer), dict(layer)]}, targets)
    assert matcher.calls == 3
    expected_keys = {f"loss_{n}{s}" for n in ("class", "bbox", "giou") for s in ("", "_0", "_1")}
    assert set(losses) == expected_keys
    assert_close(losses["loss_class_0"], losses["loss_class"])
    assert_close(losses["loss_bbox_1"], losses["loss_bbox"])
    assert_close(losses["loss_giou_1"], losses["loss_giou"] * 7.0 / 2.0)


def test_missing_or_unknown_weight_is_an_error():
    with pytest.raises(KeyError, match="loss_giou"):
        SetCriterion(3, FixedMatcher([]), {"loss_class": 1.0, "loss_bbox": 1.0})
    with pytest.raises(KeyError, match="loss_gou"):
        SetCriterion(
            3, FixedMatcher([]), {"loss_class": 1.0, "loss_bbox": 1.0, "loss_giou": 1.0, "loss_gou": 1.0}
        )


def test_num_boxes_is_clamped_to_one():
    targets = [{"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)}]
    assert SetCriterion.average_num_boxes(targets, torch.device("cpu")) == 1.0


def test_matched_positions_count_targets_across_the_batch():
    layer0 = [
        (torch.tensor([4, 1]), torch.tensor([1, 0])),
        (torch.tensor([2, 0, 3]), torch.tensor([2, 0, 1])),
    ]
    layer1 = [(torch.tensor([0]), torch.tensor([0])), (torch.tensor([5, 6]), torch.tensor([1, 2]))]
    (b0, q0, t0), (b1, q1, t1) = matched_positions([layer0, layer1], sizes=[2, 3], device=torch.device("cpu"))
    assert b0.tolist() == [0, 0, 1, 1, 1] and q0.tolist() == [4, 1, 2, 0, 3]
    assert t0.tolist() == [1, 0, 4, 2, 3]  # image 1's targets start at 2
    assert b1.tolist() == [0, 1, 1] and q1.tolist() == [0, 5, 6] and t1.tolist() == [0, 3, 4]
    assert b0.dtype == q0.dtype == t0.dtype == torch.int64


class LayerByLayer(torch.nn.Module):
    """A matcher module with only ``forward``: the criterion calls it once per layer."""

    def __init__(self, matcher):
        super().__init__()
        self.matcher = matcher
        self.calls = 0

    def forward(self, outputs, targets):
        self.calls += 1
        return self.matcher(outputs, targets)


def test_hungarian_matcher_matches_all_layers_in_one_call():
    matcher = HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    calls = []
    match_layers = matcher.match_layers
    matcher.match_layers = lambda layers, targets: calls.append(len(layers)) or match_layers(layers, targets)
    weights = {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    g = torch.Generator().manual_seed(0)
    outputs, *aux = [
        {
            "pred_logits": torch.randn(2, 5, 3, generator=g),
            "pred_boxes": torch.rand(2, 5, 4, generator=g) * 0.4 + 0.2,
        }
        for _ in range(3)
    ]
    outputs["aux_outputs"] = aux
    targets = [
        {"labels": torch.tensor([0, 2]), "boxes": torch.rand(2, 4, generator=g) * 0.4 + 0.2},
        {"labels": torch.tensor([1]), "boxes": torch.rand(1, 4, generator=g) * 0.4 + 0.2},
    ]
    together = SetCriterion(3, matcher, weights)(outputs, targets)
    assert calls == [3]  # the last layer and two aux layers, in one call
    layer_by_layer = LayerByLayer(HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0))
    separate = SetCriterion(3, layer_by_layer, weights)(outputs, targets)
    assert layer_by_layer.calls == 3
    assert together.keys() == separate.keys() and len(together) == 9
    for key in separate:
        assert_close(together[key], separate[key], rtol=0, atol=0)

"""COCOEvaluator(use_fast_impl=True): faster-coco-eval gives pycocotools' AP on the same detections."""

import numpy as np
import pytest

from tests.tools.conftest import load_script


def test_fast_coco_eval_backend_gives_the_same_ap():
    pytest.importorskip("faster_coco_eval")
    from detrex.evaluation.coco_evaluation import coco_from_dict, evaluate_predictions_on_coco

    dataset, detections = load_script("tools/benchmark.py").synthetic_coco_detections(
        60, num_classes=3, dets_per_image=20
    )
    coco_gt = coco_from_dict(dataset)
    stats = {
        fast: evaluate_predictions_on_coco(coco_gt, detections, use_fast_impl=fast).stats[:12] * 100
        for fast in (False, True)
    }
    assert stats[False][0] > 5  # a non-trivial AP
    np.testing.assert_allclose(stats[True], stats[False], atol=0.01)  # AP points

import logging

import pytest
import torch
from coco_eval_helpers import make_detections, to_model_outputs
from torch import nn

from detrex.evaluation import (
    COCOEvaluator,
    DatasetEvaluator,
    inference_context,
    inference_on_dataset,
    print_csv_format,
)


class _LookupModel(nn.Module):
    """Returns stored outputs for each input image; records the mode it ran in."""

    def __init__(self, outputs_by_id):
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.outputs_by_id = outputs_by_id
        self.seen = []

    def forward(self, batched_inputs):
        self.seen.append((self.training, torch.is_grad_enabled()))
        return [self.outputs_by_id[x["image_id"]] for x in batched_inputs]


class _Counter(DatasetEvaluator):
    def reset(self):
        self.images = []

    def process(self, inputs, outputs):
        self.images += [x["image_id"] for x in inputs]

    def evaluate(self):
        return {"count": {"images": float(len(self.images))}}


def test_inference_on_dataset_eval_mode_no_grad_and_results(coco_dataset, caplog):
    name, _, gt = coco_dataset
    inputs, outputs = to_model_outputs(gt, make_detections(gt, perfect=True))
    model = _LookupModel({x["image_id"]: o for x, o in zip(inputs, outputs)})
    model.train()
    loader = [inputs[i : i + 2] for i in range(0, len(inputs), 2)]  # a list of batches works as a loader
    counter = _Counter()
    with caplog.at_level(logging.INFO):
        results = inference_on_dataset(model, loader, [COCOEvaluator(name), counter], log_period_s=0.0)
    assert model.training  # restored
    assert model.seen == [(False, False)] * len(loader)
    assert counter.images == [x["image_id"] for x in inputs]
    assert results["bbox"]["AP"] == 100.0 and results["count"] == {"images": 8.0}
    assert "Total inference: 8 images" in caplog.text
    assert "Inference done" in caplog.text and "ETA=" in caplog.text


def test_max_batches_stops_early_and_scores_only_the_images_run(coco_dataset, caplog):
    name, _, gt = coco_dataset
    inputs, outputs = to_model_outputs(gt, make_detections(gt, perfect=True))
    model = _LookupModel({x["image_id"]: o for x, o in zip(inputs, outputs)})
    loader = [inputs[i : i + 2] for i in range(0, len(inputs), 2)]
    coco, counter = COCOEvaluator(name), _Counter()
    with caplog.at_level(logging.INFO):
        results = inference_on_dataset(model, loader, [coco, counter], max_batches=2)
    assert len(model.seen) == 2 and counter.images == [x["image_id"] for x in inputs[:4]]
    # perfect detections on the 4 images that ran: 100 AP over those (over all 8, the rest would count as missed)
    assert results["bbox"]["AP"] == 100.0
    assert coco.evaluate()["bbox"]["AP"] < 100.0
    assert "Start inference on 2 batches" in caplog.text
    assert (
        "Stopped at max_batches=2 (of 4 batches): the metrics below cover only those 4 images" in caplog.text
    )
    # a limit at or above the loader's length changes nothing
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert (
            inference_on_dataset(model, loader, [COCOEvaluator(name)], max_batches=4)["bbox"]["AP"] == 100.0
        )
    assert "Stopped at" not in caplog.text
    with pytest.raises(ValueError, match="max_batches must be >= 1"):
        inference_on_dataset(model, loader, None, max_batches=0)


def test_inference_context_restores_on_error():
    model = nn.Linear(1, 1)
    model.train()
    with pytest.raises(RuntimeError), inference_context(model):
        assert not model.training
        raise RuntimeError("boom")
    assert model.training


def test_print_csv_format(caplog):
    results = {"bbox": {"AP": 40.0, "AP50": 60.5, "AP-person": 1.0}, "other": 3}
    with caplog.at_level(logging.INFO, logger="detrex.evaluation.testing"):
        print_csv_format(results)
    assert caplog.messages == [
        "copypaste: Task: bbox",
        "copypaste: AP,AP50",
        "copypaste: 40.0000,60.5000",
        "copypaste: other=3",
    ]

import contextlib
import io
import json
import math
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as tmp
from coco_eval_helpers import make_detections, make_ground_truth, pycocotools_reference, to_model_outputs
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detrex.data import DatasetCatalog, MetadataCatalog, load_coco_json
from detrex.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators


def _evaluate(name, gt, dets, **kwargs):
    evaluator = COCOEvaluator(name, **kwargs)
    evaluator.reset()
    inputs, outputs = to_model_outputs(gt, dets)
    for i in range(0, len(inputs), 3):  # batches of 3
        evaluator.process(inputs[i : i + 3], outputs[i : i + 3])
    return evaluator.evaluate()


def _assert_same(results, reference):
    assert set(results) == set(reference)
    for key, value in reference.items():
        assert (math.isnan(value) and math.isnan(results[key])) or results[key] == value, key


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_pycocotools_exactly(coco_dataset, seed):
    name, json_file, gt = coco_dataset
    dets = make_detections(gt, seed=seed)
    results = _evaluate(name, gt, dets)
    assert list(results) == ["bbox"]
    reference = pycocotools_reference(json_file, dets)
    _assert_same(results["bbox"], reference)
    assert 0 < results["bbox"]["AP"] < 100


def test_perfect_predictions_give_100(coco_dataset):
    name, json_file, gt = coco_dataset
    dets = make_detections(gt, perfect=True)
    results = _evaluate(name, gt, dets)["bbox"]
    _assert_same(results, pycocotools_reference(json_file, dets))
    for key in ("AP", "AP50", "AP75", "AP-cat", "AP-dog", "AP-bird"):
        assert results[key] == 100.0


def test_dataset_without_json_on_disk(coco_dataset, tmp_path):
    name, json_file, gt = coco_dataset
    dets = make_detections(gt, seed=4)
    other = name + "_nojson"
    DatasetCatalog.register(other, lambda: load_coco_json(json_file, str(tmp_path), other))
    try:
        in_memory = _evaluate(other, gt, dets)
        _assert_same(in_memory["bbox"], pycocotools_reference(json_file, dets))
        cached = _evaluate(other, gt, dets, output_dir=str(tmp_path / "out"))
        assert os.path.isfile(tmp_path / "out" / f"{other}_coco_format.json")
        _assert_same(cached["bbox"], in_memory["bbox"])
    finally:
        DatasetCatalog.pop(other)
        MetadataCatalog.pop(other)


def test_results_file_uses_dataset_ids(coco_dataset, tmp_path):
    name, _, gt = coco_dataset
    dets = make_detections(gt, seed=5)
    _evaluate(name, gt, dets, output_dir=str(tmp_path / "out"))
    written = json.loads((tmp_path / "out" / "coco_instances_results.json").read_text())
    assert len(written) == len(dets)
    key = lambda d: (d["image_id"], d["score"])  # noqa: E731
    for got, want in zip(sorted(written, key=key), sorted(dets, key=key)):
        assert got["category_id"] == want["category_id"] and got["bbox"] == want["bbox"]


def test_no_boxes_and_no_predictions(coco_dataset, caplog):
    name, _, gt = coco_dataset
    results = _evaluate(name, gt, [])["bbox"]  # images processed, nothing detected
    assert results["AP"] == 0.0 and results["AP50"] == 0.0 and results["AP-dog"] == 0.0
    evaluator = COCOEvaluator(name)
    evaluator.reset()
    assert evaluator.evaluate() == {}
    assert "received no predictions" in caplog.text


def test_max_dets_per_image(coco_dataset):
    name, json_file, gt = coco_dataset
    dets = make_detections(gt, seed=6)
    dets += [{**d, "bbox": [v + 2.0 for v in d["bbox"]], "score": d["score"] / 2} for d in dets]  # duplicates
    _assert_same(_evaluate(name, gt, dets, max_dets_per_image=30)["bbox"], _evaluate(name, gt, dets)["bbox"])
    # pycocotools' maxDets limit applies per image and category; 1 detection each: the m=0 column of a
    # default evaluation (maxDets 1, 10, 100)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(json_file)
        dets32 = [{**d, "score": float(np.float32(d["score"]))} for d in dets]
        reference = COCOeval(coco_gt, coco_gt.loadRes(dets32), "bbox")
        reference.evaluate()
        reference.accumulate()
    precision = reference.eval["precision"]
    limited = _evaluate(name, gt, dets, max_dets_per_image=1)["bbox"]
    for key, p in [
        ("AP", precision[:, :, :, 0, 0]),
        ("AP50", precision[0, :, :, 0, 0]),
        ("APl", precision[:, :, :, 3, 0]),
    ]:
        assert limited[key] == pytest.approx(100 * np.mean(p[p > -1]), abs=1e-12), key
    assert limited["AP"] < _evaluate(name, gt, dets)["bbox"]["AP"]


def test_argument_errors(coco_dataset):
    name, _, gt = coco_dataset
    assert COCOEvaluator([name]).dataset_name == name  # "${..test.dataset.names}" may be a one-item list
    with pytest.raises(ValueError, match="one dataset"):
        COCOEvaluator([name, name])
    with pytest.raises(ValueError, match="only the 'bbox' task"):
        COCOEvaluator(name, tasks=("segm",))
    dets = make_detections(gt, seed=1)
    inputs, outputs = to_model_outputs(gt, dets)
    outputs[1]["instances"].pred_classes[:] = 7  # the model has more classes than the dataset
    evaluator = COCOEvaluator(name)
    evaluator.process(inputs, outputs)
    with pytest.raises(ValueError, match=r"classes \[7\] are outside the dataset's 3 classes"):
        evaluator.evaluate()
    evaluator.reset()
    evaluator.process([{"image_id": 999}], [{}])
    with pytest.raises(ValueError, match=r"image ids \[999\]"):
        evaluator.evaluate()


class _Fixed(DatasetEvaluator):
    def __init__(self, task):
        self.task = task

    def evaluate(self):
        return {self.task: {"x": 1.0}}


def test_dataset_evaluators_merge():
    assert DatasetEvaluators([_Fixed("a"), _Fixed("b")]).evaluate() == {"a": {"x": 1.0}, "b": {"x": 1.0}}
    with pytest.raises(KeyError, match="task 'a'"):
        DatasetEvaluators([_Fixed("a"), _Fixed("a")]).evaluate()


def _rank_main(rank, world_size, init_file, json_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    from detrex.data import register_coco_instances

    register_coco_instances("dist_eval", {}, json_file, out_dir)
    gt = make_ground_truth()
    inputs, outputs = to_model_outputs(gt, make_detections(gt, seed=1))
    evaluator = COCOEvaluator("dist_eval")
    evaluator.reset()
    half = len(inputs) // 2
    mine = slice(0, half) if rank == 0 else slice(half, None)
    evaluator.process(inputs[mine], outputs[mine])
    with open(f"{out_dir}/rank{rank}.pkl", "wb") as f:
        pickle.dump(evaluator.evaluate(), f)
    dist.barrier()  # rank 1 returns first; tearing gloo down while rank 0 still works aborted it now and then
    dist.destroy_process_group()


def test_two_gloo_ranks_gather_on_rank0(coco_dataset):
    _, json_file, gt = coco_dataset
    with tempfile.TemporaryDirectory() as folder:  # private to this test, even with concurrent pytest runs
        tmp.spawn(_rank_main, args=(2, f"{folder}/init", json_file, folder), nprocs=2, join=True)
        r0, r1 = (pickle.loads(Path(folder, f"rank{r}.pkl").read_bytes()) for r in range(2))
    assert r1 == {}
    _assert_same(r0["bbox"], pycocotools_reference(json_file, make_detections(gt, seed=1)))

"""COCO box AP with pycocotools, for any dataset registered with COCO-style metadata."""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

from detrex.data import DatasetCatalog, MetadataCatalog
from detrex.data.datasets.coco import convert_to_coco_dict, convert_to_coco_json
from detrex.utils import comm

from .evaluator import DatasetEvaluator

__all__ = ["COCOEvaluator", "instances_to_coco_json"]

logger = logging.getLogger(__name__)

BOX_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def instances_to_coco_json(
    instances, image_id: int, to_dataset_id: dict[int, int] | None = None
) -> list[dict]:
    """Predictions (Instances with pred_boxes XYXY, scores, pred_classes) -> COCO result dicts
    (bbox XYWH, category_id mapped to dataset ids through `to_dataset_id` when given)."""
    if len(instances) == 0:
        return []
    boxes = instances.pred_boxes.tensor.detach().cpu().double().numpy()
    boxes[:, 2:] -= boxes[:, :2]  # XYXY -> XYWH
    scores = instances.scores.detach().cpu().tolist()
    classes = instances.pred_classes.detach().cpu().tolist()
    mapping = to_dataset_id if to_dataset_id is not None else {}
    return [
        {"image_id": image_id, "category_id": mapping.get(c, c), "bbox": b, "score": s}
        for b, s, c in zip(boxes.tolist(), scores, classes)
    ]


def _single_name(dataset_name) -> str:
    if isinstance(dataset_name, str):
        return dataset_name
    names = list(dataset_name)  # configs interpolate "${..test.dataset.names}", which may be a list
    if len(names) != 1:
        raise ValueError(f"COCOEvaluator evaluates one dataset; got {names}. Use one evaluator per dataset.")
    return str(names[0])


class COCOEvaluator(DatasetEvaluator):
    """Box AP (AP, AP50, AP75, APs, APm, APl, and AP-<class>, in percent) with pycocotools' COCOeval.

    Ground truth: the dataset's metadata `json_file` when it exists on disk, else its dataset dicts
    converted to COCO format (cached as <output_dir>/<name>_coco_format.json when output_dir is set).
    Predicted classes (contiguous) map back to dataset ids via `thing_dataset_id_to_contiguous_id`.
    distributed=True gathers predictions on rank 0; other ranks' evaluate() returns {}.
    output_dir: where rank 0 writes coco_instances_results.json.
    max_dets_per_image: detections per image considered (COCO's default 100).
    use_fast_impl: use faster_coco_eval's COCOeval when that package is installed.
    """

    def __init__(
        self,
        dataset_name: str | Sequence[str],
        output_dir: str | None = None,
        distributed: bool = True,
        tasks: Sequence[str] = ("bbox",),
        max_dets_per_image: int | None = None,
        use_fast_impl: bool = False,
    ):
        self.dataset_name = _single_name(dataset_name)
        unsupported = [t for t in tasks if t != "bbox"]
        if unsupported:
            raise ValueError(f"COCOEvaluator: only the 'bbox' task is supported, got {unsupported}")
        self._tasks = tuple(tasks)
        self._output_dir = output_dir
        self._distributed = distributed
        n = 100 if max_dets_per_image is None else int(max_dets_per_image)
        if n < 1:
            raise ValueError(f"COCOEvaluator: max_dets_per_image must be >= 1, got {max_dets_per_image}")
        # COCOeval sorts maxDets and reports at the largest: keep n last (pycocotools applies it per
        # image and category)
        self._max_dets = [1, 10, n] if n >= 10 else [1, n, n]
        self._use_fast_impl = use_fast_impl
        self._metadata = MetadataCatalog.get(self.dataset_name)
        self._coco_gt: COCO | None = None  # loaded on first evaluate(), on the main rank only
        self._predictions: list[dict] = []

    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            prediction = {"image_id": inp["image_id"]}
            if "instances" in out:
                # contiguous class ids for now: dataset ids are known for sure once the ground truth is loaded
                prediction["instances"] = instances_to_coco_json(out["instances"], inp["image_id"])
            self._predictions.append(prediction)

    def evaluate(self, img_ids: Sequence[int] | None = None) -> OrderedDict:
        """Metrics over all ground-truth images (or only `img_ids`); {} on non-main ranks."""
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(self._predictions, dst=0)
            if not comm.is_main_process():
                return OrderedDict()
            predictions = list(itertools.chain(*gathered))
        else:
            predictions = self._predictions
        if not predictions:
            logger.warning(
                f"COCOEvaluator({self.dataset_name!r}): received no predictions; nothing to evaluate"
            )
            return OrderedDict()
        coco_gt = self._load_ground_truth()
        self._check_predictions(coco_gt, predictions)
        to_dataset_id = self._contiguous_to_dataset_id(coco_gt)
        coco_results = [
            {**r, "category_id": to_dataset_id[r["category_id"]]}
            for p in predictions
            for r in p.get("instances", [])
        ]
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "coco_instances_results.json"), "w") as f:
                json.dump(coco_results, f)
        results = OrderedDict()
        for task in self._tasks:
            results[task] = self._evaluate_task(task, coco_gt, coco_results, img_ids)
        return results

    def _contiguous_to_dataset_id(self, coco_gt: COCO) -> dict[int, int]:
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if id_map is None:  # not loaded through load_coco_json: its rule is sorted dataset ids -> 0..C-1
            id_map = {cid: i for i, cid in enumerate(sorted(coco_gt.getCatIds()))}
        return {v: k for k, v in id_map.items()}

    def _evaluate_task(self, task: str, coco_gt: COCO, coco_results: list[dict], img_ids) -> dict:
        if not coco_results:
            logger.warning(f"COCOEvaluator({self.dataset_name!r}): the model predicted no boxes; AP is 0")
        coco_eval = evaluate_predictions_on_coco(
            coco_gt, coco_results, task, self._max_dets, img_ids=img_ids, use_fast_impl=self._use_fast_impl
        )
        classes = self._metadata.get("thing_classes")
        if classes is None:
            classes = [c["name"] for c in coco_gt.loadCats(sorted(coco_gt.getCatIds()))]
        return derive_coco_results(coco_eval, task, classes)

    def _load_ground_truth(self) -> COCO:
        if self._coco_gt is not None:
            return self._coco_gt
        json_file = self._metadata.get("json_file")
        if json_file is None or not os.path.isfile(json_file):
            DatasetCatalog.get(
                self.dataset_name
            )  # may create the file (synthetic data) or explain its absence
            json_file = self._metadata.get("json_file")
        if json_file is None or not os.path.isfile(json_file):
            if self._output_dir:
                cache = os.path.join(self._output_dir, f"{self.dataset_name}_coco_format.json")
                json_file = convert_to_coco_json(self.dataset_name, cache)
            else:
                self._coco_gt = coco_from_dict(convert_to_coco_dict(self.dataset_name))
                return self._coco_gt
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self._coco_gt = COCO(json_file)
        return self._coco_gt

    def _check_predictions(self, coco_gt: COCO, predictions: list[dict]) -> None:
        unknown_images = sorted({p["image_id"] for p in predictions} - set(coco_gt.getImgIds()))
        if unknown_images:
            raise ValueError(
                f"COCOEvaluator({self.dataset_name!r}): predictions for image ids {unknown_images[:10]} that are "
                "not in the ground truth; is the test loader reading another dataset?"
            )
        num_classes = len(coco_gt.getCatIds())
        classes = {r["category_id"] for p in predictions for r in p.get("instances", [])}
        outside = sorted(c for c in classes if not 0 <= c < num_classes)
        if outside:
            raise ValueError(
                f"COCOEvaluator({self.dataset_name!r}): predicted classes {outside[:10]} are outside the dataset's "
                f"{num_classes} classes (0..{num_classes - 1}); does the model's num_classes match the dataset?"
            )


def coco_from_dict(dataset: dict) -> COCO:
    """A pycocotools COCO index over an in-memory COCO-format dict (its index-building chatter silenced)."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _eval_class(use_fast_impl: bool):
    if use_fast_impl:
        try:
            from faster_coco_eval import COCOeval_faster

            return COCOeval_faster
        except ImportError:
            logger.warning("use_fast_impl=True but faster_coco_eval is not installed; using pycocotools")
    return COCOeval


def evaluate_predictions_on_coco(
    coco_gt: COCO,
    coco_results: list[dict],
    iou_type: str = "bbox",
    max_dets: Sequence[int] = (1, 10, 100),
    img_ids: Sequence[int] | None = None,
    use_fast_impl: bool = False,
) -> COCOeval:
    """Run COCOeval (evaluate, accumulate, summarize) and return it; empty results count as no detections."""
    if coco_results:
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(copy.deepcopy(coco_results))  # loadRes adds fields in place
    else:  # loadRes cannot take an empty list; an empty result set gives AP 0 where there is ground truth
        coco_dt = coco_from_dict({**coco_gt.dataset, "annotations": []})
    coco_eval = _eval_class(use_fast_impl)(coco_gt, coco_dt, iou_type)
    coco_eval.params.maxDets = list(max_dets)
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval.evaluate()
        coco_eval.accumulate()
        if coco_eval.params.maxDets[-1] == 100:  # pycocotools' summarize() looks for maxDets == 100
            coco_eval.summarize()
        else:
            coco_eval.stats = _box_stats(coco_eval)
    logger.info("COCOeval summary:\n" + summary.getvalue().strip())
    return coco_eval


def _box_stats(coco_eval: COCOeval) -> np.ndarray:
    """AP, AP50, AP75, APs, APm, APl at the largest maxDets, computed as pycocotools' summarize does."""
    precision = coco_eval.eval["precision"]  # (iou, recall, class, area, max dets)
    iou_thrs = coco_eval.params.iouThrs

    def mean_ap(p):
        p = p[p > -1]
        return float(np.mean(p)) if p.size else -1.0

    return np.array(
        [
            mean_ap(precision[:, :, :, 0, -1]),
            mean_ap(precision[np.isclose(iou_thrs, 0.5), :, :, 0, -1]),
            mean_ap(precision[np.isclose(iou_thrs, 0.75), :, :, 0, -1]),
            *(mean_ap(precision[:, :, :, area, -1]) for area in (1, 2, 3)),
        ]
    )


def derive_coco_results(coco_eval: COCOeval, iou_type: str, class_names: Sequence[str] | None = None) -> dict:
    """{"AP": .., "AP50": .., ..., "AP-<class>": ..} in percent (NaN where COCOeval has no data)."""
    results = {
        m: float(coco_eval.stats[i] * 100) if coco_eval.stats[i] >= 0 else float("nan")
        for i, m in enumerate(BOX_METRICS)
    }
    logger.info(
        f"Evaluation results for {iou_type}:\n"
        + tabulate([results], headers="keys", tablefmt="pipe", floatfmt=".3f")
    )
    if not class_names or len(class_names) <= 1:
        return results
    precision = coco_eval.eval["precision"]
    if precision.shape[2] != len(class_names):
        raise ValueError(f"{len(class_names)} class names for {precision.shape[2]} evaluated categories")
    per_class = []
    for k, name in enumerate(class_names):
        p = precision[:, :, k, 0, -1]  # all areas, largest maxDets
        p = p[p > -1]
        per_class.append((name, float(np.mean(p) * 100) if p.size else float("nan")))
    num_cols = min(6, 2 * len(per_class))
    flat = list(itertools.chain(*per_class))
    rows = itertools.zip_longest(*[flat[i::num_cols] for i in range(num_cols)])
    table = tabulate(
        rows, headers=["category", "AP"] * (num_cols // 2), tablefmt="pipe", floatfmt=".3f", numalign="left"
    )
    logger.info(f"Per-category {iou_type} AP:\n" + table)
    results.update({f"AP-{name}": ap for name, ap in per_class})
    return results

"""Ground truth and detections for COCOEvaluator tests, plus a pycocotools reference."""

import contextlib
import io

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detrex.structures import Boxes, Instances

CATEGORIES = [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}, {"id": 8, "name": "bird"}]
TO_CONTIGUOUS = {1: 0, 3: 1, 8: 2}  # sorted dataset ids -> 0..2


def _quarter(rng, low, high, size=None):
    """Random multiples of 0.25: exact in float32, so no rounding differs between code paths."""
    return np.round(rng.uniform(low, high, size) * 4) / 4


def make_ground_truth(seed=0):
    """8 images of 160x200 px with small, medium and large boxes, crowd regions and one empty image."""
    rng = np.random.default_rng(seed)
    images = [{"id": 100 + i, "file_name": f"{i}.jpg", "width": 200, "height": 160} for i in range(8)]
    annotations = []
    for img in images[1:]:
        for _ in range(int(rng.integers(1, 6))):
            w, h = _quarter(rng, 8, 120, 2)
            x, y = _quarter(rng, 0, 200 - w), _quarter(rng, 0, 160 - h)
            crowd = int(rng.random() < 0.1)
            cat = int(rng.choice([1, 3, 8]))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": img["id"], "category_id": cat, "bbox": [x, y, w, h],
                 "area": float(w * h), "iscrowd": crowd}
            )  # fmt: skip
    annotations[0]["iscrowd"] = 1  # at least one crowd region
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def make_detections(gt, seed=1, perfect=False):
    """COCO result dicts (dataset ids, XYWH): jittered copies of the boxes, wrong classes, extras."""
    rng = np.random.default_rng(seed)
    dets = []
    for ann in gt["annotations"]:
        if perfect:
            if not ann["iscrowd"]:
                dets.append(
                    {
                        "image_id": ann["image_id"],
                        "category_id": ann["category_id"],
                        "bbox": ann["bbox"],
                        "score": 1.0,
                    }
                )
            continue
        x, y, w, h = ann["bbox"]
        box = [
            x + _quarter(rng, -4, 4),
            y + _quarter(rng, -4, 4),
            w + _quarter(rng, -6, 6),
            h + _quarter(rng, -6, 6),
        ]
        cat = ann["category_id"] if rng.random() < 0.8 else int(rng.choice([1, 3, 8]))
        dets.append(
            {"image_id": ann["image_id"], "category_id": cat, "bbox": box, "score": float(rng.random())}
        )
    if not perfect:
        for img in gt["images"]:
            for _ in range(int(rng.integers(0, 3))):
                w, h = _quarter(rng, 5, 60, 2)
                box = [_quarter(rng, 0, 140), _quarter(rng, 0, 100), w, h]
                dets.append({"image_id": img["id"], "category_id": int(rng.choice([1, 3, 8])), "bbox": box, "score": float(rng.random() * 0.5)})  # fmt: skip
    return dets


def to_model_outputs(gt, dets):
    """(inputs, outputs) for COCOEvaluator.process: Instances in contiguous classes, XYXY boxes."""
    inputs, outputs = [], []
    for img in gt["images"]:
        mine = [d for d in dets if d["image_id"] == img["id"]]
        boxes = torch.tensor(
            [[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)], dtype=torch.float32
        )
        inst = Instances(
            (img["height"], img["width"]),
            pred_boxes=Boxes(boxes.reshape(-1, 4)),
            scores=torch.tensor([d["score"] for d in mine], dtype=torch.float32),
            pred_classes=torch.tensor([TO_CONTIGUOUS[d["category_id"]] for d in mine], dtype=torch.int64),
        )
        inputs.append({"image_id": img["id"], "height": img["height"], "width": img["width"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def pycocotools_reference(json_file, dets):
    """AP metrics (percent) and per-category AP straight from pycocotools."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(json_file)
        # float32 round trip, as the detections go through torch tensors in the evaluator
        dets = [{**d, "score": float(np.float32(d["score"]))} for d in dets]
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    out = {
        n: float(coco_eval.stats[i] * 100) if coco_eval.stats[i] >= 0 else float("nan")
        for i, n in enumerate(names)
    }
    precision = coco_eval.eval["precision"]
    for k, name in enumerate(["dog", "cat", "bird"]):  # sorted dataset ids 1, 3, 8
        p = precision[:, :, k, 0, -1]
        out[f"AP-{name}"] = float(np.mean(p[p > -1]) * 100) if (p > -1).any() else float("nan")
    return out

r"""Draw saved detections next to the ground truth: ground truth on the left, predictions on the right.

    python tools/visualize_json_results.py --input output/inference/coco_instances_results.json \
        --output vis_results/ --dataset coco_2017_val --conf-threshold 0.5
    python tools/visualize_json_results.py --input output/my_run/inference/coco_instances_results.json \
        --output vis_results/ --config-file projects/conditional_detr/configs/my_config.py

With --config-file, the dataset is the config's test set (dataloader.test.dataset.names) unless --dataset
names another; datasets the config registers (your own) are known then.

The input is COCOEvaluator's `coco_instances_results.json` (a list of {"image_id", "category_id",
"bbox" (x, y, w, h), "score"}); category ids are the dataset's own ids and are mapped to class
names through the dataset metadata's `thing_dataset_id_to_contiguous_id`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from detrex.config import LazyConfig
from detrex.data import DatasetCatalog, ImageReadError, MetadataCatalog, read_image
from detrex.structures import Boxes, Instances
from detrex.utils.visualizer import VisImage, Visualizer, concat_side_by_side


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", required=True, help="coco_instances_results.json")
    parser.add_argument("--output", required=True, help="folder for the pictures")
    parser.add_argument("--dataset", help="registered dataset name, e.g. coco_2017_val")
    parser.add_argument(
        "--config-file",
        metavar="FILE",
        help="a config: registers its datasets; --dataset defaults to its test set",
    )
    parser.add_argument("--conf-threshold", type=float, default=0.5, help="minimum score to draw")
    parser.add_argument("--num-images", type=int, default=None, help="draw only the first N images")
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="config overrides 'path.key=value' (with --config-file)",
    )
    return parser


def dataset_from_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """--dataset, else the test set of --config-file (loading the config registers its datasets)."""
    if args.config_file:
        if not os.path.isfile(args.config_file):
            parser.error(f"--config-file {args.config_file!r}: no such file")
        cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
        if args.dataset:
            return args.dataset
        names = OmegaConf.select(cfg, "dataloader.test.dataset.names", default=None)
        names = [names] if isinstance(names, str) else list(names or [])
        if len(names) != 1:
            parser.error(f"the config's test set is {names}: pick one with --dataset")
        return names[0]
    if args.opts:
        parser.error(f"overrides {args.opts} need --config-file")
    if not args.dataset:
        parser.error("give --dataset (a registered name) or --config-file (its test set is used)")
    return args.dataset


def contiguous_id_map(metadata, category_ids: set[int]) -> dict[int, int]:
    """Dataset category id -> contiguous class index, from the metadata (identity when it has no map)."""
    mapping = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if mapping is None:
        num_classes = len(metadata.get("thing_classes", None) or [])
        mapping = {i: i for i in range(num_classes)} if num_classes else {i: i for i in category_ids}
    unknown = sorted(category_ids - set(mapping))
    if unknown:
        raise ValueError(
            f"results have category ids {unknown[:10]} unknown to dataset {metadata.name!r} (its ids: "
            f"{sorted(mapping)[:10]}...); were these results computed on another dataset?"
        )
    return {int(k): int(v) for k, v in mapping.items()}


def load_predictions(path: str, id_map_for) -> dict[int, dict]:
    """{image_id: {"pred_boxes" (xyxy), "scores", "pred_classes" (contiguous)}} from a results json;
    `id_map_for(category_ids)` gives the dataset id -> contiguous id map."""
    with open(path) as f:
        results = json.load(f)
    if not isinstance(results, list) or (results and not {"image_id", "bbox", "score"} <= set(results[0])):
        raise ValueError(f"{path} is not a COCO results list of {{image_id, category_id, bbox, score}}")
    id_map = id_map_for({int(r["category_id"]) for r in results})
    per_image = defaultdict(list)
    for r in results:
        per_image[r["image_id"]].append(r)
    predictions = {}
    for image_id, rs in per_image.items():
        xywh = torch.tensor([r["bbox"] for r in rs], dtype=torch.float32).reshape(-1, 4)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        predictions[image_id] = {
            "pred_boxes": Boxes(xyxy),
            "scores": torch.tensor([float(r["score"]) for r in rs]),
            "pred_classes": torch.tensor([id_map[int(r["category_id"])] for r in rs], dtype=torch.int64),
        }
    return predictions


def draw_pair(d: dict, fields: dict | None, metadata, threshold: float) -> np.ndarray:
    image = read_image(d["file_name"], format="RGB")
    gt = Visualizer(image, metadata).draw_dataset_dict(d).get_image()
    predictions = Instances(image.shape[:2], **(fields or {"pred_boxes": Boxes(torch.zeros(0, 4))}))
    pred = Visualizer(image, metadata).draw_instance_predictions(predictions, threshold=threshold).get_image()
    return concat_side_by_side(gt, pred)


def main(argv: list[str] | None = None) -> list[str]:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not os.path.isfile(args.input):
        parser.error(f"--input {args.input!r}: no such file")
    if args.num_images is not None and args.num_images < 1:
        parser.error(f"--num-images must be >= 1, got {args.num_images}")
    args.dataset = dataset_from_config(parser, args)
    if args.dataset not in DatasetCatalog.list():
        parser.error(
            f"--dataset {args.dataset!r} is not registered; registered: {', '.join(DatasetCatalog.list())}"
        )
    metadata = MetadataCatalog.get(args.dataset)
    dicts = DatasetCatalog.get(args.dataset)  # loading fills the metadata's class names and id map
    try:
        predictions = load_predictions(args.input, lambda ids: contiguous_id_map(metadata, ids))
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        parser.error(f"--input {args.input!r}: {e}")
    missing = set(predictions) - {d["image_id"] for d in dicts}
    if missing:
        parser.error(f"--input has image ids {sorted(missing)[:10]} that are not in {args.dataset!r}")

    os.makedirs(args.output, exist_ok=True)
    written, skipped = [], []
    for d in tqdm(dicts[: args.num_images], desc="images"):
        try:
            picture = draw_pair(d, predictions.get(d["image_id"]), metadata, args.conf_threshold)
        except (FileNotFoundError, ImageReadError) as e:  # one unreadable file does not stop the others
            tqdm.write(f"WARNING: skipped image_id {d['image_id']}: {e}", file=sys.stderr)
            skipped.append(d["file_name"])
            continue
        path = os.path.join(args.output, os.path.splitext(os.path.basename(d["file_name"]))[0] + ".png")
        VisImage(picture).save(path)
        written.append(path)
    print(f"wrote {len(written)} picture(s) (ground truth | predictions) to {os.path.abspath(args.output)}")
    if skipped:
        print(f"skipped {len(skipped)} image(s) that could not be read (warnings above)")
    return written


if __name__ == "__main__":
    main()

"""Sanity checks of a detection dataset against the model that will be trained on it.

Two levels:
- `check_model_classes(cfg)`: cheap, meant for the start of training. Compares the model's
  `num_classes` with the class lists of the configured train/test datasets and raises
  `DatasetCheckError` on a mismatch, instead of letting a run end with AP = 0.
- `check_dataset_dicts(dicts, num_classes)`: a full pass over the annotations (class ids, empty
  images, degenerate or out-of-image boxes, missing image files) and, with `decode_images`, a decode
  of some or all image files (unreadable files, size other than the dict's height/width), returning a
  `DatasetReport`; `tools/check_dataset.py` prints it.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tabulate import tabulate
from tqdm import tqdm

__all__ = [
    "DatasetCheckError",
    "DatasetReport",
    "check_dataset_dicts",
    "check_model_classes",
    "check_num_classes",
    "config_dataset_names",
]

logger = logging.getLogger(__name__)


class DatasetCheckError(ValueError):
    """A dataset does not fit the model (class ids or class count) or has broken annotations."""


@dataclass
class DatasetReport:
    """What `check_dataset_dicts` found. `errors` make training wrong; `warnings` deserve a look."""

    name: str
    num_images: int = 0
    num_instances: int = 0
    num_decoded: int = 0  # image files decoded (and their size compared with height/width)
    class_names: list[str] | None = None
    instances_per_class: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self) -> str:
        lines = [f"dataset {self.name!r}: {self.num_images} images, {self.num_instances} instances"]
        ids = sorted(set(self.instances_per_class) | set(range(len(self.class_names or []))))
        if ids:
            names = self.class_names or []
            rows = [
                [i, names[i] if 0 <= i < len(names) else "(no name)", self.instances_per_class.get(i, 0)]
                for i in ids
            ]
            lines.append(tabulate(rows, headers=["id", "class", "instances"], tablefmt="pipe"))
        if self.num_decoded:
            lines.append(f"decoded {self.num_decoded} of {self.num_images} image files")
        lines += [f"ERROR: {e}" for e in self.errors]
        lines += [f"WARNING: {w}" for w in self.warnings]
        lines.append("OK" if self.ok else f"{len(self.errors)} error(s)")
        return "\n".join(lines)


def _where(d: dict) -> str:
    return f"image_id {d.get('image_id')} ({d.get('file_name')})"


def _problem(items: list[str], what: str, max_examples: int) -> str:
    shown = "; ".join(items[:max_examples])
    more = f"; ... {len(items) - max_examples} more" if len(items) > max_examples else ""
    return f"{len(items)} {what}: {shown}{more}"


def _box_xyxy(anno: dict) -> tuple[float, float, float, float]:
    x0, y0, a, b = (float(v) for v in anno["bbox"])
    if int(anno.get("bbox_mode", 1)) == 0:  # BoxMode.XYXY_ABS
        return x0, y0, a, b
    return x0, y0, x0 + a, y0 + b  # BoxMode.XYWH_ABS (COCO)


def check_dataset_dicts(
    dataset_dicts: list[dict],
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    name: str = "dataset",
    check_files: bool = True,
    decode_images: int | None = 0,
    progress: bool = False,
    tolerance: float = 1.0,
    max_examples: int = 5,
) -> DatasetReport:
    """Scan detectron2-style dataset dicts (contiguous `category_id`, `bbox` in its `bbox_mode`).

    Errors: no images; class id outside [0, num_classes) (or outside the class-name list); class-name
    count above num_classes; boxes with width or height <= 0; boxes entirely outside the image;
    missing image files (when `check_files`); image files that cannot be decoded, or whose decoded size
    (EXIF orientation applied, as the mapper reads them) is not the dict's height x width, among the
    `decode_images` evenly spaced images decoded (None: all; `progress` shows a bar). Warnings: images
    without annotations; boxes reaching more than `tolerance` pixels past the image border; classes
    without any instance.
    """
    report = DatasetReport(name=name, num_images=len(dataset_dicts), class_names=class_names)
    if not dataset_dicts:
        report.errors.append(f"{name!r} has no images")
        return report
    report.errors += check_num_classes(num_classes, class_names, name)
    limit = num_classes if num_classes is not None else (len(class_names) if class_names else None)

    bad_ids, degenerate, outside, partly, missing, empty, no_size = [], [], [], [], [], [], []
    for d in dataset_dicts:
        annos = [a for a in d.get("annotations", []) if not a.get("iscrowd", 0)]
        if not annos:
            empty.append(_where(d))
        if check_files and not os.path.isfile(d.get("file_name", "")):
            missing.append(str(d.get("file_name")))
        h, w = d.get("height"), d.get("width")
        if h is None or w is None:
            no_size.append(_where(d))
        for a in annos:
            cid = int(a["category_id"])
            report.num_instances += 1
            report.instances_per_class[cid] += 1
            if cid < 0 or (limit is not None and cid >= limit):
                bad_ids.append(f"category_id {cid} at {_where(d)}")
            x0, y0, x1, y1 = _box_xyxy(a)
            box = f"bbox {[round(v, 1) for v in (x0, y0, x1, y1)]} (xyxy) at {_where(d)}"
            if not (x1 > x0 and y1 > y0):
                degenerate.append(box)
            elif h is not None and w is not None:
                if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                    outside.append(f"{box}, image {w}x{h}")
                elif x0 < -tolerance or y0 < -tolerance or x1 > w + tolerance or y1 > h + tolerance:
                    partly.append(f"{box}, image {w}x{h}")

    if bad_ids:
        valid = f"[0, {limit})" if limit is not None else ">= 0"
        what = f"annotations with a class id outside {valid} (expected contiguous ids; remap dataset ids)"
        report.errors.append(_problem(bad_ids, what, max_examples))
    if degenerate:
        report.errors.append(_problem(degenerate, "boxes with zero or negative width/height", max_examples))
    if outside:
        report.errors.append(_problem(outside, "boxes entirely outside their image", max_examples))
    if missing:
        report.errors.append(_problem(missing, "missing image files", max_examples))
    if decode_images != 0:
        report.num_decoded, unreadable, wrong_size = _decode_check(
            _evenly_spaced(dataset_dicts, decode_images), progress, name
        )
        if unreadable:
            what = "image files that cannot be decoded (training fails when it reaches them)"
            report.errors.append(_problem(unreadable, what, max_examples))
        if wrong_size:
            what = "images whose decoded size is not their height/width (the mapper refuses them)"
            report.errors.append(_problem(wrong_size, what, max_examples))
    if no_size:
        report.warnings.append(_problem(no_size, "images without height/width", max_examples))
    if partly:
        what = f"boxes reaching more than {tolerance} px past the image border (clipped in training)"
        report.warnings.append(_problem(partly, what, max_examples))
    if empty:
        what = "images without annotations (dropped by filter_empty in training)"
        report.warnings.append(_problem(empty, what, max_examples))
    if limit is not None:
        unused = [str(i) for i in range(limit) if report.instances_per_class[i] == 0]
        if unused:
            report.warnings.append(_problem(unused, "class ids without any instance", max_examples * 4))
    return report


def _evenly_spaced(items: list, count: int | None) -> list:
    """`count` items spread evenly from the first to the last (all of them when count is None)."""
    if count is None or count >= len(items):
        return list(items)
    last = len(items) - 1
    return [items[i] for i in sorted({round(k * last / max(count - 1, 1)) for k in range(count)})]


def _decoded_size(file_name: str) -> tuple[int, int] | str:
    """(height, width) of the decoded image, or why it cannot be decoded."""
    from detrex.data import ImageReadError, read_image  # detrex.data imports detrex.utils

    try:
        return read_image(file_name, format="RGB").shape[:2]
    except ImageReadError as e:
        cause = e.__cause__
        return f"{type(cause).__name__}: {cause}" if cause is not None else str(e)


def _decode_check(dataset_dicts: list[dict], progress: bool, name: str) -> tuple[int, list[str], list[str]]:
    """Decode the image files of `dataset_dicts` that exist (a missing one is reported elsewhere) on a few
    threads (PIL decodes without the GIL). Returns (number decoded, unreadable files, size mismatches)."""
    dicts = [d for d in dataset_dicts if os.path.isfile(d.get("file_name", ""))]
    unreadable, wrong_size = [], []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = pool.map(_decoded_size, [d["file_name"] for d in dicts])
        for d, result in zip(
            dicts, tqdm(results, total=len(dicts), desc=f"decoding {name}", disable=not progress)
        ):
            if isinstance(result, str):
                unreadable.append(f"{d['file_name']} ({result})")
                continue
            h, w = result
            expected = (d.get("height", h), d.get("width", w))
            if expected != (h, w):
                wrong_size.append(
                    f"{_where(d)} is {w}x{h} (w x h), its dict says {expected[1]}x{expected[0]}"
                )
    return len(dicts), unreadable, wrong_size


def check_num_classes(num_classes: int | None, class_names: list[str] | None, name: str) -> list[str]:
    """Errors (as messages) when a dataset's class list does not fit in a `num_classes`-way classifier."""
    if num_classes is None or class_names is None:
        return []
    if len(class_names) > num_classes:
        return [
            f"dataset {name!r} has {len(class_names)} classes but the model predicts num_classes={num_classes}; "
            f"set model.num_classes={len(class_names)} (the criterion and heads follow it)"
        ]
    if len(class_names) < num_classes:
        logger.info(
            f"dataset {name!r} has {len(class_names)} classes; the model predicts {num_classes} "
            f"(ids {len(class_names)}..{num_classes - 1} are never targets)"
        )
    return []


def config_dataset_names(cfg, split: str) -> list[str]:
    """Dataset names of `cfg.dataloader.<split>`: its `dataset.names` (a string or a list), or `dataset`
    itself when it is given as names; [] when neither."""
    try:
        dataset = cfg.dataloader[split].dataset
    except (AttributeError, KeyError, TypeError):
        return []
    if isinstance(dataset, str) or (
        isinstance(dataset, Sequence) and all(isinstance(n, str) for n in dataset)
    ):
        names = dataset
    else:
        names = dataset.get("names", None) if hasattr(dataset, "get") else None
    if not names:
        return []
    return [names] if isinstance(names, str) else [str(n) for n in names]


def _model_num_classes(cfg) -> int | None:
    for path in (("num_classes",), ("criterion", "num_classes")):
        node = cfg.model
        try:
            for key in path:
                node = node[key]
        except (AttributeError, KeyError, TypeError):
            continue
        return int(node)
    return None


def check_model_classes(
    cfg, scan_annotations: bool = False, splits: Sequence[str] = ("train", "test")
) -> None:
    """Fail early when the model's `num_classes` does not fit the configured datasets.

    Reads `cfg.model.num_classes` (or `cfg.model.criterion.num_classes`) and the names in
    `cfg.dataloader.<split>.dataset.names` for each of `splits` (evaluation alone: ("test",)), and
    compares each dataset's `thing_classes` with
    it. A dataset without `thing_classes` in its metadata, or every dataset when `scan_annotations`,
    is loaded and its class ids are checked (this reads the annotation file again).

    Raises:
        DatasetCheckError: naming the dataset, the counts and the override that fixes it.
    """
    from detrex.data import DatasetCatalog, MetadataCatalog  # detrex.data imports detrex.utils

    num_classes = _model_num_classes(cfg)
    if num_classes is None:
        logger.warning("check_model_classes: the config has no model.num_classes; skipped")
        return
    errors = []
    names = [name for split in splits for name in config_dataset_names(cfg, split)]
    for name in dict.fromkeys(names):  # unique, in order
        class_names = MetadataCatalog.get(name).get("thing_classes", None)
        errors += check_num_classes(num_classes, class_names, name)
        if class_names is None or scan_annotations:
            ids = {int(a["category_id"]) for d in DatasetCatalog.get(name) for a in d.get("annotations", [])}
            bad = sorted(i for i in ids if not 0 <= i < num_classes)
            if bad:
                errors.append(
                    f"dataset {name!r} has class ids {bad[:10]} outside [0, {num_classes}) = model.num_classes; "
                    "dataset dicts need contiguous ids 0..C-1 (see the metadata's "
                    "thing_dataset_id_to_contiguous_id), and model.num_classes must be at least C"
                )
    if errors:
        raise DatasetCheckError("\n".join(errors))

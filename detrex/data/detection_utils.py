"""Reading images and turning dataset-dict annotations into `Instances` (detectron2's detection_utils)."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from detrex.structures import Boxes, Instances

__all__ = [
    "BoxMode",
    "ImageReadError",
    "read_image",
    "check_image_size",
    "transform_instance_annotations",
    "annotations_to_instances",
    "filter_empty_instances",
]


class BoxMode(enum.IntEnum):
    """How a dataset dict's `bbox` is stored; values match detectron2's BoxMode."""

    XYXY_ABS = 0  # (x0, y0, x1, y1) in pixels
    XYWH_ABS = 1  # (x0, y0, width, height) in pixels, as in COCO json

    @staticmethod
    def convert(box: Sequence[float] | np.ndarray, from_mode: int, to_mode: int) -> list[float] | np.ndarray:
        """Convert one box (list/tuple) or an (N, 4) array between XYXY_ABS and XYWH_ABS."""
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        is_array = isinstance(box, np.ndarray)
        arr = np.array(box, dtype=np.float64).reshape(-1, 4)
        if to_mode == BoxMode.XYXY_ABS:
            arr[:, 2:] += arr[:, :2]
        else:
            arr[:, 2:] -= arr[:, :2]
        if is_array:
            return arr.reshape(np.shape(box))
        return [float(v) for v in arr[0]]


class ImageReadError(OSError):
    """An image file exists but cannot be decoded (truncated, corrupt, not an image)."""


_PIL_MODES = {"RGB": "RGB", "BGR": "RGB", "L": "L"}


def read_image(file_name: str, format: str | None = "RGB") -> np.ndarray:
    """Read an image as an (H, W, C) uint8 array, honouring the EXIF orientation.

    format: "RGB", "BGR", "L" (then shape (H, W, 1)) or None (the file's own mode).
    """
    if format is not None and format not in _PIL_MODES:
        raise ValueError(
            f"read_image: unsupported format {format!r}; use one of {sorted(_PIL_MODES)} or None"
        )
    try:
        with open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()  # decode now: a truncated file fails here, inside the try
            image = ImageOps.exif_transpose(image)
            if format is not None:
                image = image.convert(_PIL_MODES[format])
            array = np.asarray(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {file_name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"cannot decode image {file_name}: {type(e).__name__}: {e}") from e
    if array.ndim == 2:
        array = array[:, :, None]
    if format == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def check_image_size(dataset_dict: dict, image: np.ndarray) -> None:
    """Fill in missing "width"/"height", or raise if the dict's size disagrees with the decoded image."""
    h, w = image.shape[:2]
    if "width" in dataset_dict or "height" in dataset_dict:
        expected = (dataset_dict.get("width", w), dataset_dict.get("height", h))
        if expected != (w, h):
            raise ValueError(
                f"image {dataset_dict.get('file_name')} (image_id {dataset_dict.get('image_id')}) is {w}x{h} "
                f"(w x h) but its dataset dict says {expected[0]}x{expected[1]}; fix the annotation file"
            )
    dataset_dict.setdefault("width", w)
    dataset_dict.setdefault("height", h)


def transform_instance_annotations(annotation: dict, transforms, image_size: tuple[int, int]) -> dict:
    """Apply `transforms` (a TransformList) to one annotation's box, in place; the box becomes XYXY_ABS
    clipped to `image_size` = (h, w)."""
    bbox = BoxMode.convert(
        annotation["bbox"], annotation.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS
    )
    bbox = transforms.apply_box(np.array([bbox], dtype=np.float64))[0]
    h, w = image_size
    annotation["bbox"] = np.minimum(bbox.clip(min=0), [w, h, w, h])
    annotation["bbox_mode"] = BoxMode.XYXY_ABS
    return annotation


def annotations_to_instances(annos: list[dict], image_size: tuple[int, int]) -> Instances:
    """Instances(image_size, gt_boxes=Boxes (XYXY_ABS, clipped), gt_classes=int64)."""
    boxes = [
        BoxMode.convert(a["bbox"], a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS) for a in annos
    ]
    boxes = Boxes(torch.as_tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)))
    boxes.clip(image_size)
    classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)
    return Instances(image_size, gt_boxes=boxes, gt_classes=classes)


def filter_empty_instances(instances: Instances, box_threshold: float = 1e-5) -> Instances:
    """Drop instances whose box has (almost) zero width or height, e.g. after a crop."""
    return instances[instances.gt_boxes.nonempty(threshold=box_threshold)]

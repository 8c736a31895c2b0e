"""Reading images and turning dataset-dict annotations into `Instances` (detectron2's detection_utils)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from detrex.structures import Boxes, BoxMode, Instances

from . import transforms as T

__all__ = [
    "BoxMode",
    "ImageReadError",
    "read_image",
    "check_image_size",
    "transform_instance_annotations",
    "annotations_to_instances",
    "filter_empty_instances",
    "gen_crop_transform_with_instance",
]


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


def _xyxy_box(annotation: dict) -> list[float]:
    """The annotation's one box as [x0, y0, x1, y1] floats ("bbox_mode" defaults to COCO's XYWH_ABS)."""
    bbox = annotation["bbox"]
    if isinstance(bbox, torch.Tensor):
        bbox = bbox.tolist()  # numpy's array() of a tensor goes through a deprecated __array__ path
    bbox = [float(v) for v in np.asarray(bbox, dtype=np.float64).reshape(-1)]
    return BoxMode.convert(bbox, annotation.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS)


def transform_instance_annotations(annotation: dict, transforms, image_size: tuple[int, int]) -> dict:
    """Apply `transforms` (a TransformList, or a list of Transforms) to one annotation's box, in place;
    the box becomes an XYXY_ABS numpy array clipped to `image_size` = (h, w)."""
    if isinstance(transforms, list | tuple):
        transforms = T.TransformList(transforms)
    bbox = transforms.apply_box(np.array([_xyxy_box(annotation)], dtype=np.float64))[0]
    h, w = image_size
    annotation["bbox"] = np.minimum(bbox.clip(min=0), [w, h, w, h])
    annotation["bbox_mode"] = BoxMode.XYXY_ABS
    return annotation


def annotations_to_instances(annos: list[dict], image_size: tuple[int, int]) -> Instances:
    """Instances(image_size, gt_boxes=Boxes (XYXY_ABS, clipped), gt_classes=int64)."""
    boxes = np.array([_xyxy_box(a) for a in annos], dtype=np.float32).reshape(-1, 4)
    boxes = Boxes(torch.from_numpy(boxes))
    boxes.clip(image_size)
    classes = torch.tensor([int(a["category_id"]) for a in annos], dtype=torch.int64)
    return Instances(image_size, gt_boxes=boxes, gt_classes=classes)


def filter_empty_instances(instances: Instances, box_threshold: float = 1e-5) -> Instances:
    """Drop instances whose box has (almost) zero width or height, e.g. after a crop."""
    return instances[instances.gt_boxes.nonempty(threshold=box_threshold)]


class CropOutsideImageError(ValueError, AssertionError):
    """gen_crop_transform_with_instance cannot place the crop: the instance's center or the crop lies
    outside the image. Also an AssertionError, which detectron2 raises here."""


def gen_crop_transform_with_instance(crop_size, image_size, instance: dict) -> T.CropTransform:
    """A CropTransform of `crop_size` = (h, w) pixels inside an image of `image_size` = (h, w), placed at
    random (numpy's global RNG) among the positions whose region contains the center of `instance`'s box
    (`instance`: an annotation dict with "bbox" and "bbox_mode")."""
    crop_size = np.asarray(crop_size, dtype=np.int32)
    x0, y0, x1, y1 = BoxMode.convert(instance["bbox"], instance["bbox_mode"], BoxMode.XYXY_ABS)
    center_yx = np.array([(y0 + y1) * 0.5, (x0 + x1) * 0.5])
    if image_size[0] < center_yx[0] or image_size[1] < center_yx[1]:
        raise CropOutsideImageError(
            f"gen_crop_transform_with_instance: the box center (x, y) = ({center_yx[1]}, {center_yx[0]}) "
            f"is outside the {image_size[0]}x{image_size[1]} (h x w) image"
        )
    if image_size[0] < crop_size[0] or image_size[1] < crop_size[1]:
        raise CropOutsideImageError(
            f"gen_crop_transform_with_instance: crop {tuple(crop_size.tolist())} (h, w) is larger than the "
            f"image {tuple(image_size)}"
        )
    # the crop's top-left corner: close enough to the center to contain it, and inside the image
    low = np.maximum(np.floor(center_yx).astype(np.int32) - crop_size, 0)
    high = np.maximum(np.asarray(image_size, dtype=np.int32) - crop_size, 0)
    high = np.minimum(high, np.ceil(center_yx).astype(np.int32))
    crop_y0 = np.random.randint(low[0], high[0] + 1)
    crop_x0 = np.random.randint(low[1], high[1] + 1)
    return T.CropTransform(int(crop_x0), int(crop_y0), int(crop_size[1]), int(crop_size[0]))

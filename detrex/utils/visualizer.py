"""Draw boxes, class names and scores on RGB images with PIL (OpenCV is not needed).

    vis = Visualizer(image_rgb, metadata=MetadataCatalog.get("coco_2017_val"))
    vis.draw_instance_predictions(outputs["instances"], threshold=0.5).save("out.jpg")

Colours come from a fixed palette indexed by class id, so a class keeps its colour across images;
labels sit on a filled tag in the box colour, with black or white text (whichever reads better),
and are moved so that they stay inside the image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from detrex.structures import Boxes, Instances

__all__ = ["PALETTE", "Visualizer", "VisImage", "class_color", "concat_side_by_side"]

# Saturated, mutually distinct colours that stay visible on photos (RGB).
PALETTE: list[tuple[int, int, int]] = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 225, 25),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (255, 99, 71),
    (30, 144, 255),
]
GT_COLOR = (0, 200, 0)  # ground truth, when drawn in one colour


def class_color(class_id: int) -> tuple[int, int, int]:
    """The palette colour of a class id (cycles after len(PALETTE) classes)."""
    return PALETTE[int(class_id) % len(PALETTE)]


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = background
    luminance = 0.299 * r + 0.587 * g + 0.114 * b  # ITU-R BT.601 weights
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _load_font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable font; needs Pillow >= 10.1 built with FreeType
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


class VisImage:
    """An RGB image being drawn on; `get_image()` returns it as an (H, W, 3) uint8 array."""

    def __init__(self, image_rgb: np.ndarray):
        image_rgb = np.asarray(image_rgb)
        if image_rgb.ndim == 3 and image_rgb.shape[2] == 1:
            image_rgb = np.repeat(image_rgb, 3, axis=2)
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"VisImage expects an (H, W, 3) RGB image, got shape {image_rgb.shape}")
        if image_rgb.dtype != np.uint8:
            image_rgb = np.clip(image_rgb, 0, 255).astype(np.uint8)
        self.pil = Image.fromarray(np.ascontiguousarray(image_rgb), mode="RGB")
        self.height, self.width = image_rgb.shape[:2]

    def get_image(self) -> np.ndarray:
        return np.asarray(self.pil).copy()

    def save(self, path: str) -> None:
        """Write the image; the format follows the file extension (JPEG at quality 95)."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if path.lower().endswith((".jpg", ".jpeg")):
            self.pil.save(path, quality=95)
        else:
            self.pil.save(path)


class Visualizer:
    """Draws detections or annotations on one RGB image (a PIL-based subset of detectron2's Visualizer).

    metadata: anything with an optional `thing_classes` attribute (a dataset's Metadata) for class names.
    line_width / font_size: default to sizes that scale with the image.
    """

    def __init__(
        self,
        image_rgb: np.ndarray,
        metadata=None,
        line_width: int | None = None,
        font_size: int | None = None,
    ):
        self.output = VisImage(image_rgb)
        self.metadata = metadata
        short_side = min(self.output.height, self.output.width)
        self.line_width = line_width or max(2, round(short_side / 250))
        self.font = _load_font(font_size or max(10, round(short_side / 45)))
        self._draw = ImageDraw.Draw(self.output.pil)

    def class_names(self) -> list[str] | None:
        return getattr(self.metadata, "thing_classes", None) if self.metadata is not None else None

    def _label(self, class_id: int | None, score: float | None) -> str | None:
        parts = []
        if class_id is not None:
            names = self.class_names()
            parts.append(names[class_id] if names and 0 <= class_id < len(names) else f"class {class_id}")
        if score is not None:
            parts.append(f"{score:.0%}")
        return " ".join(parts) or None

    def draw_instance_predictions(self, predictions: Instances, threshold: float = 0.0) -> VisImage:
        """Draw `pred_boxes` with class names (`pred_classes`) and `scores`, keeping scores >= threshold."""
        boxes = _as_numpy(predictions.pred_boxes)
        n = len(boxes)
        scores = _as_numpy(predictions.scores) if predictions.has("scores") else np.ones(n)
        if predictions.has("pred_classes"):
            classes = [int(c) for c in _as_numpy(predictions.pred_classes)]
        else:
            classes = [None] * n
        keep = [i for i in range(n) if scores[i] >= threshold]
        labels = [self._label(classes[i], float(scores[i])) for i in keep]
        colors = [class_color(classes[i] or 0) for i in keep]
        return self.overlay_instances(boxes[keep], labels, colors)

    def draw_ground_truth(self, instances: Instances, color: tuple[int, int, int] | None = None) -> VisImage:
        """Draw `gt_boxes` with class names from `gt_classes` (a mapper's or loader's output)."""
        boxes = _as_numpy(instances.gt_boxes)
        if instances.has("gt_classes"):
            classes = [int(c) for c in _as_numpy(instances.gt_classes)]
        else:
            classes = [None] * len(boxes)
        labels = [self._label(c, None) for c in classes]
        colors = [color or class_color(c or 0) for c in classes]
        return self.overlay_instances(boxes, labels, colors)

    def draw_dataset_dict(self, dataset_dict: dict, color: tuple[int, int, int] | None = None) -> VisImage:
        """Draw the `annotations` of a dataset dict (bbox in its `bbox_mode`, contiguous `category_id`)."""
        annos = [a for a in dataset_dict.get("annotations", []) if not a.get("iscrowd", 0)]
        boxes = np.array([_xyxy(a) for a in annos], dtype=np.float64).reshape(-1, 4)
        labels = [self._label(int(a["category_id"]), None) for a in annos]
        colors = [color or class_color(int(a["category_id"])) for a in annos]
        return self.overlay_instances(boxes, labels, colors)

    def overlay_instances(
        self,
        boxes: np.ndarray | torch.Tensor | Boxes,
        labels: Sequence[str | None] | None = None,
        colors: Sequence[tuple[int, int, int]] | None = None,
    ) -> VisImage:
        """Draw (N, 4) XYXY boxes; big boxes first so that the labels of small ones stay on top."""
        boxes = _as_numpy(boxes).reshape(-1, 4)
        labels = list(labels) if labels is not None else [None] * len(boxes)
        colors = list(colors) if colors is not None else [class_color(i) for i in range(len(boxes))]
        if not len(labels) == len(colors) == len(boxes):
            raise ValueError(
                f"overlay_instances: {len(boxes)} boxes, {len(labels)} labels, {len(colors)} colors"
            )
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for i in np.argsort(-areas, kind="stable"):
            self.draw_box(boxes[i], colors[i], labels[i])
        return self.output

    def draw_box(self, box: Sequence[float], color: tuple[int, int, int], label: str | None = None) -> None:
        """One box outline (clipped to the image) with an optional label tag above it, or inside it at the top."""
        w, h = self.output.width, self.output.height
        x0, y0, x1, y1 = (round(float(v)) for v in box)  # edges on the nearest pixel
        x0, x1 = sorted((min(max(x0, 0), w - 1), min(max(x1, 0), w - 1)))
        y0, y1 = sorted((min(max(y0, 0), h - 1), min(max(y1, 0), h - 1)))
        color = tuple(int(c) for c in color)
        self._draw.rectangle([x0, y0, x1, y1], outline=color, width=self.line_width)
        if label:
            self.draw_label(label, x0, y0, color)

    def draw_label(self, text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
        """A filled tag whose bottom-left corner is at (x, y) when it fits; otherwise it is moved inside."""
        left, top, right, bottom = self._draw.textbbox((0, 0), text, font=self.font)
        pad = max(1, self.line_width // 2)
        tag_w, tag_h = right - left + 2 * pad, bottom - top + 2 * pad
        tx = min(max(x, 0), max(self.output.width - tag_w, 0))
        ty = y - tag_h if y - tag_h >= 0 else y  # above the box, else just inside its top edge
        ty = min(max(ty, 0), max(self.output.height - tag_h, 0))
        self._draw.rectangle([tx, ty, tx + tag_w - 1, ty + tag_h - 1], fill=color)
        self._draw.text((tx + pad - left, ty + pad - top), text, fill=_text_color(color), font=self.font)

    def get_output(self) -> VisImage:
        return self.output


def concat_side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 4) -> np.ndarray:
    """Place two RGB images next to each other on a white background (heights may differ)."""
    h = max(left.shape[0], right.shape[0])
    out = np.full((h, left.shape[1] + gap + right.shape[1], 3), 255, dtype=np.uint8)
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap :] = right
    return out


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, Boxes):
        x = x.tensor
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def _xyxy(annotation: dict) -> list[float]:
    x0, y0, a, b = (float(v) for v in annotation["bbox"])
    if int(annotation.get("bbox_mode", 1)) == 0:  # BoxMode.XYXY_ABS
        return [x0, y0, a, b]
    return [x0, y0, x0 + a, y0 + b]  # BoxMode.XYWH_ABS, the COCO default

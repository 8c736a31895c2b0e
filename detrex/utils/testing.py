"""Helpers for tests written against detectron2's `detectron2.utils.testing` (same names and behaviour)."""

import io
import os
import tempfile

import torch

__all__ = ["random_boxes", "reload_lazy_config", "reload_script_model"]


def random_boxes(num_boxes: int, max_coord: int = 100, device: str = "cpu") -> torch.Tensor:
    """(num_boxes, 4) random XYXY boxes with x0 <= x1, y0 <= y1, every coordinate in [1, max_coord]."""
    boxes = torch.rand(num_boxes, 4, device=device) * (max_coord * 0.5)
    boxes.clamp_(min=1.0)  # no degenerate corners at 0
    boxes[:, 2:] += boxes[:, :2]  # x1 = x0 + w, y1 = y0 + h: widths and heights stay non-negative
    return boxes


def reload_script_model(module):
    """`module` (a TorchScript function or module) saved with torch.jit.save and loaded back."""
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def reload_lazy_config(cfg):
    """`cfg` written by LazyConfig.save to a temporary YAML file and read back with LazyConfig.load."""
    from detrex.config import LazyConfig  # detrex.config imports detrex.utils: import it when called

    with tempfile.TemporaryDirectory(prefix="detrex") as folder:
        filename = os.path.join(folder, "config.yaml")
        LazyConfig.save(cfg, filename)
        return LazyConfig.load(filename)

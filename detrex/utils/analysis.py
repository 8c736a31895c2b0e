"""Tensor-in, tensor-out views of a detector, for tracers (fvcore's counters, ONNX export).

detrex detectors take `list[dict]` and return `Instances`; jit-based tools need a module whose
inputs and outputs are tensors. `DetectorTensorWrapper` runs the detector unchanged on one image;
`ExportableDetector` adds an explicit padding mask and a fixed-size top-k output for deployment.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import Counter

import torch
from torch import nn

from detrex.modeling.detr_detector import topk_detections
from detrex.structures import ImageList

with warnings.catch_warnings():  # fvcore.nn scripts a loss at import, which torch now calls deprecated
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    from fvcore.nn import (
        ActivationCountAnalysis,
        FlopCountAnalysis,
        flop_count_table,
        parameter_count_table,
    )
    from fvcore.nn.jit_handles import get_shape

__all__ = [
    "DetectorTensorWrapper",
    "ExportableDetector",
    "flop_count_analysis",
    "activation_count_analysis",
    "flop_count_table",
    "parameter_count_table",
    "quiet_tracing",
]


@contextlib.contextmanager
def quiet_tracing():
    """Hide what torch says while tracing a detector at one fixed input size: TracerWarnings (Python values
    taken from shapes become constants, as intended here) and the deprecation notices of the TorchScript
    ONNX exporter, which the export tool uses on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        yield


class DetectorTensorWrapper(nn.Module):
    """`model([{"image", "height", "width"}])` as a module of one image tensor: uint8 [3, H, W] in,
    (pred boxes (N, 4), scores (N,), pred classes (N,)) of that image out, in (height, width) pixels."""

    def __init__(self, model: nn.Module, height: int, width: int):
        super().__init__()
        self.model = model
        self.height, self.width = int(height), int(width)

    def forward(self, image: torch.Tensor):
        instances = self.model([{"image": image, "height": self.height, "width": self.width}])[0]["instances"]
        return instances.pred_boxes.tensor, instances.scores, instances.pred_classes


def _sdpa_flop(inputs, outputs) -> Counter:
    """aten::scaled_dot_product_attention: q @ k^T and attn @ v, one multiply-add counted as one flop
    (fvcore's convention)."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = 1
    for d in q[:-2]:
        batch *= d
    return Counter({"scaled_dot_product_attention": batch * q[-2] * k[-2] * (q[-1] + v[-1])})


def flop_count_analysis(model: nn.Module, inputs: tuple) -> FlopCountAnalysis:
    """fvcore's FlopCountAnalysis with a handle for fused attention, quiet about skipped cheap ops."""
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(
        "aten::scaled_dot_product_attention", _sdpa_flop
    )
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def activation_count_analysis(model: nn.Module, inputs: tuple) -> ActivationCountAnalysis:
    analysis = ActivationCountAnalysis(model, inputs)
    return analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


class _GivenMaskImageList(ImageList):
    """An ImageList whose padding mask is a given tensor instead of one built from Python sizes, so
    that a traced graph takes the mask as an input."""

    def __init__(self, tensor: torch.Tensor, mask: torch.Tensor):
        super().__init__(tensor, [tuple(tensor.shape[-2:])] * len(tensor))
        self._mask = mask

    def padding_mask(self) -> torch.Tensor:
        return self._mask


class ExportableDetector(nn.Module):
    """A detrex DETR detector (a ``DETRDetector``) as a fixed-shape function for export (ONNX) and deployment.

    Inputs: `images` float [B, 3, H, W], RGB, 0..255 (not normalised: the model's pixel_mean/std apply),
    each image at the top-left, and `mask` bool [B, H, W], True on padded pixels (their values are
    ignored: they are zeroed after normalisation, as when the model pads a batch itself).
    Outputs: boxes (B, k, 4) xyxy in input pixels (clipped to each image's unpadded part), scores (B, k)
    sigmoid probabilities, classes (B, k) int64: the k best (query, class) pairs, best first,
    k = `topk` (default: the model's `select_box_nums_for_evaluation`). No score threshold is applied.
    """

    def __init__(self, model: nn.Module, topk: int | None = None):
        super().__init__()
        if not callable(getattr(model, "forward_images", None)):
            raise TypeError(
                f"ExportableDetector: {type(model).__name__} is not a DETRDetector (no forward_images)"
            )
        self.model = model
        self.topk = int(topk or getattr(model, "select_box_nums_for_evaluation", 100))

    def raw_outputs(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last decoder layer's (logits (B, Q, K), boxes (B, Q, 4) normalised cxcywh)."""
        model = self.model
        normalised = (images - model.pixel_mean) / model.pixel_std
        normalised = normalised.masked_fill(mask[:, None], 0.0)  # padding is 0 after normalisation
        outputs = model.forward_images(_GivenMaskImageList(normalised, mask))
        return outputs["pred_logits"], outputs["pred_boxes"]

    def forward(self, images: torch.Tensor, mask: torch.Tensor):
        scores, classes, boxes = topk_detections(*self.raw_outputs(images, mask), self.topk)
        # boxes are relative to each image's unpadded size: read it off the mask
        valid = (~mask).to(boxes.dtype)
        height = valid[:, :, 0].sum(dim=1)  # (B,) rows of the first column that are image
        width = valid[:, 0, :].sum(dim=1)
        size = torch.stack([width, height, width, height], dim=-1)[:, None, :]  # (B, 1, 4)
        boxes = torch.minimum((boxes * size).clamp(min=0), size)
        return boxes, scores, classes

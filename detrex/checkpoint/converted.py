"""The result of converting a checkpoint to a model's names (what the load report describes)."""

from dataclasses import dataclass, field

import torch


@dataclass
class ConvertedCheckpoint:
    """A state dict in the model's names, and how it was obtained."""

    state_dict: dict[str, torch.Tensor]
    format: str
    full_model: bool  # False for ImageNet backbone weights
    extra: dict = field(default_factory=dict)  # other top-level entries (kept for this project's format)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    merged: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (checkpoint keys, model key)
    sliced: list[str] = field(default_factory=list)  # class tensors whose 91 COCO-id rows became 80
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # further lines for the report

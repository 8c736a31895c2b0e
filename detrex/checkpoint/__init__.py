"""Checkpoints: DetectionCheckpointer (format detection, conversion, atomic saving) and converters."""

from .conversion import (
    CheckpointFormatError,
    ConvertedCheckpoint,
    IncompatibleCheckpointError,
    convert_checkpoint,
    convert_official,
    read_checkpoint_file,
)
from .detection_checkpoint import DetectionCheckpointer, atomic_write
from .load_report import LoadPlan, format_report, plan_load

__all__ = [
    "CheckpointFormatError",
    "ConvertedCheckpoint",
    "DetectionCheckpointer",
    "IncompatibleCheckpointError",
    "LoadPlan",
    "atomic_write",
    "convert_checkpoint",
    "convert_official",
    "format_report",
    "plan_load",
    "read_checkpoint_file",
]

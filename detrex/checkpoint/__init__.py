"""Checkpoints: DetectionCheckpointer (format detection, conversion, partial loading, atomic saving),
converters (official releases, Hugging Face transformers, ImageNet ResNets) and their errors."""

from .conversion import align_by_suffix, convert_checkpoint, convert_official
from .converted import ConvertedCheckpoint
from .detection_checkpoint import DetectionCheckpointer, atomic_write
from .errors import (
    CheckpointDownloadError,
    CheckpointError,
    CheckpointFormatError,
    CheckpointNotFoundError,
    CheckpointPathError,
    IncompatibleCheckpointError,
    NotACheckpointError,
    TruncatedCheckpointError,
)
from .file_formats import read_checkpoint_file, read_hf_config, safetensors_bytes
from .load_report import LoadPlan, format_report, plan_load

__all__ = [
    "CheckpointDownloadError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointNotFoundError",
    "CheckpointPathError",
    "ConvertedCheckpoint",
    "DetectionCheckpointer",
    "IncompatibleCheckpointError",
    "LoadPlan",
    "NotACheckpointError",
    "TruncatedCheckpointError",
    "align_by_suffix",
    "atomic_write",
    "convert_checkpoint",
    "convert_official",
    "format_report",
    "plan_load",
    "read_checkpoint_file",
    "read_hf_config",
    "safetensors_bytes",
]

"""Data structures that cross module boundaries: boxes, per-image instances, padded image batches."""

from .boxes import Boxes
from .image_list import ImageList
from .instances import Instances

__all__ = ["Boxes", "ImageList", "Instances"]

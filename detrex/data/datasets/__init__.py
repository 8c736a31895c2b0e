"""Dataset registration: builtin COCO 2017 and synthetic shapes are registered on import."""

from .builtin import COCO_2017_SPLITS, register_all_coco
from .builtin_meta import COCO_CATEGORIES, coco_instances_meta
from .coco import convert_to_coco_dict, convert_to_coco_json, load_coco_json, register_coco_instances
from .root import get_datasets_root
from .synthetic import (
    SHAPE_CLASSES,
    ensure_synthetic_shapes,
    generate_synthetic_shapes,
    register_all_synthetic,
    register_synthetic_shapes,
)

register_all_coco()
register_all_synthetic()

__all__ = [
    "COCO_2017_SPLITS",
    "COCO_CATEGORIES",
    "SHAPE_CLASSES",
    "coco_instances_meta",
    "convert_to_coco_dict",
    "convert_to_coco_json",
    "ensure_synthetic_shapes",
    "generate_synthetic_shapes",
    "get_datasets_root",
    "load_coco_json",
    "register_coco_instances",
    "register_synthetic_shapes",
]

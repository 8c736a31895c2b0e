"""Registry of the family converters (see ``base.py`` for the interface).

Each family module defines ``CONVERTER``; it is imported here inside ``try`` so that a family whose module
is not written yet simply is not offered.
"""

from .base import COCO_CLASS_ROWS, NUM_OFFICIAL_CLASS_ROWS, FamilyConverter
from .conditional_detr import CONVERTER as _CONDITIONAL_DETR

CONVERTERS: dict[str, FamilyConverter] = {_CONDITIONAL_DETR.family: _CONDITIONAL_DETR}

try:
    from .anchor_detr import CONVERTER as _ANCHOR_DETR

    CONVERTERS[_ANCHOR_DETR.family] = _ANCHOR_DETR
except ModuleNotFoundError as e:  # only a missing family module is tolerated, not its own import errors
    if e.name != f"{__name__}.anchor_detr":
        raise


def register_converter(converter: FamilyConverter) -> FamilyConverter:
    if converter.family in CONVERTERS:
        raise KeyError(f"register_converter: family {converter.family!r} is already registered")
    CONVERTERS[converter.family] = converter
    return converter


def find_converter(state_dict) -> FamilyConverter | None:
    """The converter whose signature matches the keys of ``state_dict``, or None."""
    found = [c for c in CONVERTERS.values() if c.matches(state_dict)]
    if len(found) > 1:
        raise ValueError(
            f"find_converter: signatures of {[c.family for c in found]} all match; make them specific"
        )
    return found[0] if found else None


def find_model_family(state_dict) -> FamilyConverter | None:
    """The family whose detrex model has the keys of ``state_dict`` (``model_signature``), or None. Works on
    a model's state dict and on checkpoints in detrex's layout."""
    found = [c for c in CONVERTERS.values() if c.matches_model(state_dict)]
    return found[0] if len(found) == 1 else None


__all__ = [
    "COCO_CLASS_ROWS",
    "CONVERTERS",
    "NUM_OFFICIAL_CLASS_ROWS",
    "FamilyConverter",
    "find_converter",
    "find_model_family",
    "register_converter",
]

"""Lazy Python configs (detectron2's LazyConfig system) and the configs shipped with detrex."""

from .config import get_config, try_get_key
from .instantiate import InstantiationError, instantiate, locate, target_to_string
from .lazy import LazyCall, LazyConfig
from .overrides import ConfigOverrideError
from .serialize import UnsavedValue

L = LazyCall

__all__ = [
    "ConfigOverrideError",
    "InstantiationError",
    "L",
    "LazyCall",
    "LazyConfig",
    "UnsavedValue",
    "get_config",
    "instantiate",
    "locate",
    "target_to_string",
    "try_get_key",
]

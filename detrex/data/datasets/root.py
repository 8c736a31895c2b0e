"""Where datasets live: $DETREX_DATASETS, else $DETECTRON2_DATASETS, else ./datasets (read on each call)."""

from __future__ import annotations

import os

__all__ = ["get_datasets_root", "DATASETS_ROOT_HELP"]

DATASETS_ROOT_HELP = "root: $DETREX_DATASETS, else $DETECTRON2_DATASETS, else ./datasets"


def get_datasets_root() -> str:
    """The datasets root, from the environment at the time of the call (not at import)."""
    for var in ("DETREX_DATASETS", "DETECTRON2_DATASETS"):
        value = os.environ.get(var)
        if value:
            return os.path.expanduser(value)
    return "datasets"

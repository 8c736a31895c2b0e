"""Distributed helpers (``detrex.utils.comm``), logging, environment info and metric writers."""

from .env import collect_env_info, seed_all_rng
from .events import (
    CommonMetricPrinter,
    EventStorage,
    EventWriter,
    JSONWriter,
    TensorboardXWriter,
    get_event_storage,
)
from .logger import log_first_n, setup_logger

__all__ = [
    "setup_logger",
    "log_first_n",
    "seed_all_rng",
    "collect_env_info",
    "EventStorage",
    "get_event_storage",
    "EventWriter",
    "JSONWriter",
    "CommonMetricPrinter",
    "TensorboardXWriter",
]

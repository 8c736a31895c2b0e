"""Printing evaluation results in a form easy to paste into spreadsheets."""

from __future__ import annotations

import logging
from collections.abc import Mapping

__all__ = ["print_csv_format"]

logger = logging.getLogger(__name__)


def print_csv_format(results: Mapping) -> None:
    """Log each task's headline metrics (per-class "AP-<name>" entries left out) as two CSV lines:

    copypaste: Task: bbox
    copypaste: AP,AP50,AP75,APs,APm,APl
    copypaste: 40.1234,60.0000,...
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"print_csv_format expects a mapping of task -> metrics, got {type(results)}")
    for task, res in results.items():
        if isinstance(res, Mapping):
            headline = {k: v for k, v in res.items() if "-" not in k}
            logger.info(f"copypaste: Task: {task}")
            logger.info("copypaste: " + ",".join(headline))
            logger.info("copypaste: " + ",".join(f"{float(v):.4f}" for v in headline.values()))
        else:
            logger.info(f"copypaste: {task}={res}")

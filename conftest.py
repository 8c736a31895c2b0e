"""Pytest root: makes `detrex`, `projects` and `tools` importable when tests run from a clean clone."""

import logging
import os

import pytest
import torch

# Tests compare small computations element by element; fixed threads keep timings and numerics steady.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _restore_detrex_logger():
    """setup_logger (called by default_setup in some tests) gives the "detrex" logger its own handlers and
    stops propagation, as a real run wants; undo that after each test so `caplog` sees later tests' logs."""
    logger = logging.getLogger("detrex")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for handler in logger.handlers[:]:
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.propagate, logger.level = saved[1], saved[2]

"""Pytest root: makes `detrex`, `projects` and `tools` importable when tests run from a clean clone."""

import logging
import os

import pytest
import torch

# Tests compare small computations element by element; fixed threads keep timings and numerics steady.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip where no CUDA device is visible (the CPU machines and CI)."""
    if torch.cuda.is_available():
        return
    needs_cuda = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(needs_cuda)


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

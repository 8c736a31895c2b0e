"""Pytest root: makes `detrex`, `projects` and `tools` importable when tests run from a clean clone."""

import os

import torch

# Tests compare small computations element by element; fixed threads keep timings and numerics steady.
torch.set_num_threads(min(2, os.cpu_count() or 1))

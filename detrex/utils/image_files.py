"""Image files named on a command line (files, folders, glob patterns) and where their pictures go."""

from __future__ import annotations

import glob
import os

__all__ = ["IMAGE_EXTENSIONS", "expand_inputs", "output_paths"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Image paths from files, folders (sorted, by extension) and glob patterns, in the given order."""
    paths = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(
                os.path.join(pattern, f) for f in os.listdir(pattern) if f.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif os.path.isfile(pattern):
            found = [pattern]
        else:
            found = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
        if not found:
            raise FileNotFoundError(f"--input {pattern!r}: no such file, and no images match it")
        paths += found
    return list(dict.fromkeys(paths))  # a file named twice is processed once


def output_paths(inputs: list[str], output: str) -> list[str]:
    """Where each picture goes: output/<file name>; a clash gets the parent folder name prefixed."""
    names = [os.path.basename(p) for p in inputs]
    out = []
    for path, name in zip(inputs, names):
        if names.count(name) > 1:
            name = f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}_{name}"
        out.append(os.path.join(output, name))
    if len(set(out)) != len(out):
        raise ValueError(f"inputs {inputs} would overwrite each other's outputs in {output}")
    return out

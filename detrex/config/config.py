"""`get_config`: the configs shipped with detrex (repository `configs/`, installed as detrex/config/configs)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .instantiate import close_names
from .lazy import LazyConfig

__all__ = ["get_config", "try_get_key"]

_MISSING = object()


def _config_roots() -> list[Path]:
    """Where shipped configs live: the copy a wheel install carries, then a source checkout's `configs/`."""
    package = Path(__file__).resolve().parent
    roots = [package / "configs"]  # setup.py's build_py copies the repository's configs/ here
    repo = package.parent.parent
    if (repo / "pyproject.toml").is_file():  # a checkout or an editable install, not site-packages
        roots.append(repo / "configs")
    return [r for r in roots if r.is_dir()]


def get_config(config_path: str) -> DictConfig:
    """Load a config shipped with detrex, e.g. `get_config("common/train.py").train`.

    `config_path` is relative to detrex's `configs/` folder. Each call loads the file afresh, so editing
    the result never affects another caller.
    """
    roots = _config_roots()
    for root in roots:
        path = root / config_path
        if path.is_file():
            return LazyConfig.load(str(path))
    shipped = sorted({str(p.relative_to(r)).replace(os.sep, "/") for r in roots for p in r.rglob("*.py")})
    close = close_names(config_path, shipped)
    hint = f" Closest: {', '.join(close)}." if close else f" Available: {', '.join(shipped) or 'none'}."
    searched = ", ".join(str(r) for r in roots) or "no configs folder found next to the detrex package"
    raise FileNotFoundError(
        f"get_config({config_path!r}): no such config in detrex (searched: {searched}).{hint}"
    )


def try_get_key(cfg: Any, *keys: str, default: Any = None) -> Any:
    """The value of the first of `keys` (dotted paths) present in `cfg`, else `default`."""
    for key in keys:
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is not _MISSING:
            return value
    return default

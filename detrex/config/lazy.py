"""Lazy configs: `LazyCall` records a call instead of making it; `LazyConfig` loads, saves and overrides them.

Config files are plain Python. Their relative imports (`from .models.anchor_detr_r50 import model`,
`from ..common.train import train`) load the other config file by its path, freshly each time, so a file
that edits an imported config never changes what another load sees.
"""

from __future__ import annotations

import builtins
import collections.abc as abc
import dataclasses
import inspect
import os
import re
import types
from typing import Any

from omegaconf import DictConfig

from .instantiate import CONFIG_FLAGS, SEQUENCE_CONFIGS, close_names, target_to_string
from .overrides import apply_overrides
from .serialize import load_pickle, load_yaml, save, to_py

__all__ = ["LazyCall", "LazyConfig"]


class LazyCall:
    """Wrap a callable so that calling it records the call as a config instead of making it.

    `L(nn.Linear)(in_features=4, out_features=2)` is a DictConfig
    `{"_target_": nn.Linear, "in_features": 4, "out_features": 2}`: edit it like any config, then
    `instantiate` it. The target may be a callable, a dotted-path string, or a config that instantiates
    to a callable. Arguments are keyword-only so that every value has a key to override.
    """

    def __init__(self, target: Any):
        if not (callable(target) or isinstance(target, str | abc.Mapping)):
            raise TypeError(f"LazyCall target must be a callable or a dotted-path string, got {target!r}")
        self._target = target

    def __call__(self, *args: Any, **kwargs: Any) -> DictConfig:
        if args:
            raise TypeError(
                f"LazyCall({self._target!r}) takes keyword arguments only, got {len(args)} positional; "
                "write L(target)(name=value, ...) so every value has a key"
            )
        target = self._target
        if dataclasses.is_dataclass(target) or (isinstance(target, type) and issubclass(target, dict)):
            target = target_to_string(target)  # omegaconf reads these types as a schema, not as a value
        return DictConfig({"_target_": target, **kwargs}, flags=CONFIG_FLAGS)


def _as_config(value: Any) -> Any:
    return DictConfig(value, flags=CONFIG_FLAGS) if isinstance(value, dict) else value


def _is_config_value(name: str, value: Any) -> bool:
    return not name.startswith("_") and isinstance(value, (dict, DictConfig, *SEQUENCE_CONFIGS))


class _ConfigFileRunner:
    """Runs config files. Each file gets builtins whose `__import__` turns relative imports into file loads."""

    def __init__(self):
        self._stack: list[str] = []  # files being run, to report circular imports
        self._builtins = dict(vars(builtins), __import__=self._import)

    def run(self, filename: str) -> dict:
        filename = os.path.abspath(filename)
        if filename in self._stack:
            chain = " -> ".join(self._stack[self._stack.index(filename) :] + [filename])
            raise ImportError(f"circular import between config files: {chain}")
        with open(filename, encoding="utf-8") as f:
            source = f.read()
        stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(filename))[0])
        namespace = {
            "__file__": filename,
            "__name__": f"_detrex_config_file.{stem}",
            "__builtins__": self._builtins,
        }
        self._stack.append(filename)
        try:
            # compiled with its path, so tracebacks and load_rel see the file
            exec(compile(source, filename, "exec"), namespace)
        finally:
            self._stack.pop()
        return namespace

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 or not globals or globals.get("__builtins__") is not self._builtins:
            return builtins.__import__(name, globals, locals, fromlist, level)
        importer = globals["__file__"]
        dots = "." * level
        if not name:
            raise ImportError(
                f"{importer}: the relative import 'from {dots} import ...' (a folder) is not supported in config "
                f"files; import names from a file instead: from {dots}<file> import <name>"
            )
        base = os.path.dirname(importer)
        for _ in range(level - 1):
            base = os.path.dirname(base)
        path = os.path.join(base, *name.split(".")) + ".py"
        if not os.path.isfile(path):
            what = "is a directory, not a config file" if os.path.isdir(path[:-3]) else "does not exist"
            raise ImportError(f"{importer}: 'from {dots}{name} import ...': {path} {what}")
        namespace = self.run(path)
        names = [n for n in namespace if not n.startswith("_")] if "*" in fromlist else fromlist
        module = types.ModuleType(namespace["__name__"])
        module.__dict__.update(namespace)
        for n in names:
            if n not in namespace:
                close = close_names(n, [k for k in namespace if not k.startswith("_")])
                hint = f" Closest: {', '.join(close)}." if close else ""
                raise ImportError(f"{importer}: cannot import name {n!r} from config file {path}.{hint}")
            module.__dict__[n] = _as_config(namespace[n])  # imported dicts become configs, as at top level
        return module


class LazyConfig:
    """Load, save, override and print lazy configs (detectron2's `LazyConfig` API)."""

    @staticmethod
    def load(filename: str | os.PathLike, keys: str | tuple[str, ...] | None = None):
        """Load a config file: `.py` (lazy Python config), `.yaml`/`.yml` (what `save` writes) or `.pkl`.

        A `.py` file gives a DictConfig of its top-level public config values (dicts become DictConfigs);
        other variables (imports, functions, numbers) are left out. With `keys`, return just those values
        (a tuple when `keys` is a tuple); for a `.py` file any top-level name may be asked for.
        """
        filename = os.fspath(filename)
        ext = os.path.splitext(filename)[1]
        if ext == ".py":
            namespace = _ConfigFileRunner().run(filename)
            if keys is None:
                values = {k: _as_config(v) for k, v in namespace.items() if _is_config_value(k, v)}
                return DictConfig(values, flags=CONFIG_FLAGS)
        elif ext in (".yaml", ".yml"):
            namespace = load_yaml(filename)
        elif ext == ".pkl":
            namespace = load_pickle(filename)
        else:
            raise ValueError(f"config file {filename!r} must end in .py, .yaml, .yml or .pkl")
        if keys is None:
            return namespace
        if isinstance(keys, str):
            return _as_config(namespace[keys])
        return tuple(_as_config(namespace[k]) for k in keys)

    @staticmethod
    def load_rel(filename: str, keys: str | tuple[str, ...] | None = None):
        """`load` with `filename` relative to the file that calls this (for use inside config files)."""
        frame = inspect.currentframe().f_back
        caller = frame.f_globals.get("__file__") or frame.f_code.co_filename
        if not caller or caller.startswith("<"):
            raise RuntimeError("LazyConfig.load_rel: the caller is not a file; use LazyConfig.load(path)")
        return LazyConfig.load(os.path.join(os.path.dirname(caller), filename), keys)

    save = staticmethod(save)
    apply_overrides = staticmethod(apply_overrides)
    to_py = staticmethod(to_py)

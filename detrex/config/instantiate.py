"""Build objects from lazy configs: `instantiate`, and the dotted-path helpers `locate` / `target_to_string`."""

from __future__ import annotations

import builtins
import collections.abc as abc
import dataclasses
import difflib
import importlib
import inspect
import sys
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Flags of every config detrex creates: configs may hold classes, functions and other objects.
CONFIG_FLAGS = {"allow_objects": True}

try:  # omegaconf >= 2.4 keeps tuples as TupleConfig; older versions turn them into ListConfig
    from omegaconf.tupleconfig import TupleConfig

    SEQUENCE_CONFIGS: tuple[type, ...] = (ListConfig, TupleConfig)
    _TUPLES: tuple[type, ...] = (tuple, TupleConfig)
except ImportError:  # pragma: no cover - depends on the installed omegaconf
    SEQUENCE_CONFIGS, _TUPLES = (ListConfig,), (tuple,)

__all__ = ["InstantiationError", "instantiate", "locate", "target_to_string"]


class InstantiationError(Exception):
    """`instantiate` failed; `path` is the config key of the object being built (e.g. "model.backbone")."""

    def __init__(self, message: str, path: str, target: Any = None):
        super().__init__(message)
        self.path = path
        self.target = target


def close_names(name: str, candidates, n: int = 3) -> list[str]:
    """Up to `n` of `candidates` that look like `name` (for "did you mean" hints), best first."""
    return difflib.get_close_matches(name, [str(c) for c in candidates], n=n, cutoff=0.6)


def locate(name: str) -> Any:
    """Return the object named by a dotted path such as "torch.optim.AdamW" or "builtins.dict".

    Imports the longest module prefix of `name`, then follows attributes. Raises ImportError naming the
    part that could not be found (with close names); an import error *inside* an existing module is re-raised.
    """
    parts = name.split(".")
    if not name or not all(parts):
        raise ImportError(f"cannot locate {name!r}: not a dotted path like 'package.module.Class'")
    obj, found = None, 0
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            obj = sys.modules.get(module_name) or importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name is not None and (module_name + ".").startswith(e.name + "."):
                continue  # this prefix is not a module; try a shorter one
            raise  # the module exists, but one of its own imports failed
        found = i
        break
    if found == 0:
        if not hasattr(builtins, parts[0]):
            raise ImportError(f"cannot locate {name!r}: no module named {parts[0]!r}")
        obj, found = getattr(builtins, parts[0]), 1
    for i in range(found, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError:
            where = ".".join(parts[:i])
            close = close_names(parts[i], dir(obj))
            hint = f" Closest: {', '.join(where + '.' + c for c in close)}." if close else ""
            raise ImportError(
                f"cannot locate {name!r}: {where!r} has no attribute {parts[i]!r}.{hint}"
            ) from None
    return obj


def split_target(obj: Any) -> tuple[str, str]:
    """(module, qualname) under which `obj` can be imported again, with the shortest module path that works.

    E.g. torch.optim.adamw.AdamW -> ("torch.optim", "AdamW"). Raises ValueError for lambdas, local
    objects, instances and anything else that `locate` would not find again.
    """
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise ValueError(f"{obj!r} has no importable name (a lambda, a local or an instance?)")
    parts = module.split(".")
    for k in range(1, len(parts) + 1):
        candidate = ".".join(parts[:k])
        try:
            if locate(f"{candidate}.{qualname}") is obj:
                return candidate, qualname
        except ImportError:
            pass
    raise ValueError(f"{obj!r} is not importable as {module}.{qualname}")


def target_to_string(obj: Any) -> str:
    """Inverse of `locate`: the dotted path of a class or function (ValueError if there is none)."""
    module, qualname = split_target(obj)
    return f"{module}.{qualname}"


def node_path(cfg: Any) -> str:
    """Dotted key of a config node inside its root ("" for a root or a plain dict)."""
    parts = []
    try:
        while OmegaConf.is_config(cfg) and cfg._get_parent() is not None:
            parts.append(str(cfg._key()))
            cfg = cfg._get_parent()
    except AttributeError:  # pragma: no cover - private omegaconf API moved
        return ""
    return ".".join(reversed(parts))


def join_key(path: str, key: Any) -> str:
    """The dotted config path of `key` under `path` ("" is the top level)."""
    return f"{path}.{key}" if path else str(key)


def _show(path: str) -> str:
    return repr(path) if path else "the top-level config"


def instantiate(cfg: Any) -> Any:
    """Recursively build the objects a lazy config describes.

    A mapping with a `_target_` (a callable, or a dotted-path string) is called with its other keys, after
    they are instantiated. A config node (DictConfig) without `_target_` becomes a dict of its
    instantiated values; a plain mapping (dict, ...) without `_target_` is a value and is returned as it
    is, the same object (as in detectron2). Sequences become lists/tuples of instantiated items; anything
    else is returned as-is. Interpolations resolve against the config the node belongs to. A failure
    raises InstantiationError naming the config path being built, chained to the original error.
    """
    return _instantiate(cfg, node_path(cfg))


def _items(cfg: Any, path: str) -> dict:
    if not isinstance(cfg, DictConfig):
        return dict(cfg)
    out = {}
    for key in cfg.keys():
        try:
            out[key] = cfg[key]  # resolves ${...} interpolations
        except Exception as e:
            raise InstantiationError(
                f"cannot read {_show(join_key(path, key))}: {type(e).__name__}: {e}", join_key(path, key)
            ) from e
    return out


def _instantiate(cfg: Any, path: str) -> Any:
    if isinstance(cfg, SEQUENCE_CONFIGS) or isinstance(cfg, list | tuple):
        items = [_instantiate(v, join_key(path, i)) for i, v in enumerate(cfg)]
        return tuple(items) if isinstance(cfg, _TUPLES) else items
    if isinstance(cfg, DictConfig) and dataclasses.is_dataclass(OmegaConf.get_type(cfg)):
        return OmegaConf.to_object(cfg)  # a structured config stands for its dataclass
    if not isinstance(cfg, abc.Mapping):
        return cfg
    if not isinstance(cfg, DictConfig) and "_target_" not in cfg:
        return cfg  # a plain mapping is a value: no copy, no recursion (detectron2's behaviour)
    items = _items(cfg, path)
    if "_target_" not in items:
        return {k: _instantiate(v, join_key(path, k)) for k, v in items.items()}
    target = _resolve_target(_instantiate(items.pop("_target_"), join_key(path, "_target_")), path)
    kwargs = {k: _instantiate(v, join_key(path, k)) for k, v in items.items()}
    try:
        return target(**kwargs)
    except InstantiationError:
        raise  # a nested instantiate inside the constructor already named its path
    except Exception as e:
        raise InstantiationError(_failure_message(path, target, kwargs, e), path, target) from e


def _resolve_target(target: Any, path: str) -> Any:
    if isinstance(target, str):
        try:
            return locate(target)
        except ImportError as e:
            raise InstantiationError(f"cannot instantiate {_show(path)}: {e}", path, target) from e
    if not callable(target):
        raise InstantiationError(
            f"cannot instantiate {_show(path)}: _target_ must be a callable or a dotted-path string, "
            f"got {type(target).__name__} {target!r}",
            path,
            target,
        )
    return target


def _target_name(target: Any) -> str:
    try:
        return target_to_string(target)
    except ValueError:
        return repr(target)


def _failure_message(path: str, target: Any, kwargs: dict, error: Exception) -> str:
    head = (
        f"cannot instantiate {_show(path)} (_target_={_target_name(target)}): {type(error).__name__}: {error}"
    )
    if not isinstance(error, TypeError):
        return head
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins and some C types have no signature
        return head
    kinds = {p.kind for p in params.values()}
    named = [
        n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
    ]
    lines = [head]
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        for key in (k for k in kwargs if k not in named):
            close = close_names(key, named)
            hint = f" Closest: {', '.join(close)}." if close else ""
            lines.append(f"  unexpected key {join_key(path, key)!r}.{hint} Accepted: {', '.join(named)}.")
    missing = [
        n
        for n, p in params.items()
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in kwargs
    ]
    if missing:
        lines.append(f"  missing required key(s) under {_show(path)}: {', '.join(missing)}.")
    return "\n".join(lines)

"""Writing lazy configs out: YAML (`save` / `load_yaml`), a cloudpickle fallback, and Python source (`to_py`)."""

from __future__ import annotations

import dataclasses
import enum
import json
import keyword
import logging
import math
import os
from typing import Any

import cloudpickle
import yaml
from omegaconf import DictConfig, OmegaConf, SCMode

from detrex.utils.file_io import atomic_write

from .instantiate import CONFIG_FLAGS, join_key, locate, split_target

__all__ = ["UnsavedValue", "load_pickle", "load_yaml", "save", "to_py"]

logger = logging.getLogger(__name__)

_SCALARS = (str, int, float, bool, type(None))
_NAME_TAG = "tag:yaml.org,2002:python/name:"  # PyYAML's own tags, so detectron2 reads these files too
_TUPLE_TAG = "tag:yaml.org,2002:python/tuple"
_OBJECT_TAG = "tag:yaml.org,2002:python/object:"  # a dataclass instance: its fields as a mapping
_APPLY_TAG = "tag:yaml.org,2002:python/object/apply:"  # an enum member: Class(value)
_UNSAVED_TAG = "!unserializable"


class UnsavedValue:
    """Stands in, in a config read back from YAML, for a value `save` could not write (e.g. a lambda)."""

    def __init__(self, description: str):
        self.description = description

    def __call__(self, *args: Any, **kwargs: Any):
        raise RuntimeError(
            f"this config value ({self.description}) could not be saved to YAML; load the pickle that "
            "LazyConfig.save wrote next to the YAML file (config.yaml.pkl) to get the original object"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnsavedValue) and other.description == self.description

    def __hash__(self) -> int:
        return hash(self.description)

    def __repr__(self) -> str:
        return f"UnsavedValue({self.description!r})"


class _Name:
    """A class or function written to YAML by its dotted path."""

    def __init__(self, path: str):
        self.path = path


class _Fields:
    """A dataclass instance written as its fields under PyYAML's python/object tag (what detectron2 writes)."""

    def __init__(self, path: str, fields: dict):
        self.path, self.fields = path, fields


class _Call:
    """An enum member written as Class(value) under PyYAML's python/object/apply tag."""

    def __init__(self, path: str, args: list):
        self.path, self.args = path, args


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _construct_dataclass(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    cls = locate(suffix)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"!!python/object:{suffix} is not a dataclass; only dataclasses are read back",
            node.start_mark,
        )
    instance = cls.__new__(cls)  # the fields as saved, without running __init__ (as PyYAML does)
    for name, value in loader.construct_mapping(node, deep=True).items():
        object.__setattr__(instance, name, value)  # object's setter: frozen dataclasses too
    return instance


def _construct_enum(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    cls = locate(suffix)
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"!!python/object/apply:{suffix} is not an enum; only enum members are read back",
            node.start_mark,
        )
    return cls(*loader.construct_sequence(node, deep=True))


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # write repeated values out, no &id001 anchors
        return True


class _Loader(yaml.SafeLoader):
    """SafeLoader plus tuples, importable names, dataclass instances, enum members and placeholders; it
    never calls any other constructor."""


def _flat(items: Any) -> bool:  # lists of scalars read best on one line: betas: [0.9, 0.999]
    return all(type(v) in _SCALARS for v in items)


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, _flat(v)))
_Dumper.add_representer(tuple, lambda d, v: d.represent_sequence(_TUPLE_TAG, v, _flat(v)))
_Dumper.add_representer(_Name, lambda d, v: d.represent_scalar(_NAME_TAG + v.path, ""))
_Dumper.add_representer(UnsavedValue, lambda d, v: d.represent_scalar(_UNSAVED_TAG, v.description))
_Dumper.add_representer(_Fields, lambda d, v: d.represent_mapping(_OBJECT_TAG + v.path, v.fields))
_Dumper.add_representer(_Call, lambda d, v: d.represent_sequence(_APPLY_TAG + v.path, v.args, True))
_Loader.add_constructor(_TUPLE_TAG, lambda loader, node: tuple(loader.construct_sequence(node, deep=True)))
_Loader.add_constructor(_UNSAVED_TAG, lambda loader, node: UnsavedValue(loader.construct_scalar(node)))
_Loader.add_multi_constructor(_NAME_TAG, lambda loader, suffix, node: locate(suffix))
_Loader.add_multi_constructor(_OBJECT_TAG, _construct_dataclass)
_Loader.add_multi_constructor(_APPLY_TAG, _construct_enum)


def _describe(obj: Any) -> str:
    code = getattr(obj, "__code__", None)
    where = f" from {code.co_filename}:{code.co_firstlineno}" if code is not None else ""
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{type(obj).__name__} {name}{where}"[:200]


def _plain(value: Any, path: str, unsaved: list[tuple[str, Any]], target: bool = False) -> Any:
    """`value` with classes/functions turned into dotted paths and unwritable objects into placeholders."""
    if isinstance(value, dict):
        return {k: _plain(v, join_key(path, k), unsaved, target=k == "_target_") for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_plain(v, join_key(path, i), unsaved) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if type(value) in _SCALARS or isinstance(value, UnsavedValue):
        return value
    if isinstance(value, enum.Enum) or _is_dataclass_instance(value):
        try:
            module, qualname = split_target(type(value))
        except ValueError:  # a local class: nothing to import when reading back
            pass
        else:
            if isinstance(value, enum.Enum):
                return _Call(f"{module}.{qualname}", [_plain(value.value, path, unsaved)])
            fields = {
                f.name: _plain(getattr(value, f.name), join_key(path, f.name), unsaved)
                for f in dataclasses.fields(value)
            }
            return _Fields(f"{module}.{qualname}", fields)
    if callable(value):
        try:
            module, qualname = split_target(value)
            dotted = f"{module}.{qualname}"
            return dotted if target else _Name(dotted)  # _target_: plain string, as detectron2 writes it
        except ValueError:
            pass
    unsaved.append((path, value))
    return UnsavedValue(_describe(value))


def save(cfg: Any, filename: str | os.PathLike) -> None:
    """Write `cfg` to a YAML file that `LazyConfig.load` reads back to an equivalent config.

    Classes and functions are written as dotted paths (`_target_: torch.optim.AdamW`), interpolations as
    written (`${..lr}`), instances of importable dataclasses as their fields and enum members as
    Class(value), under PyYAML's python/object tags as detectron2 writes them. A value YAML cannot hold (a lambda, a local function, an arbitrary object) is
    logged by key, written as an `!unserializable` placeholder, and the whole config is also pickled with
    cloudpickle to `<filename>.pkl`, which `LazyConfig.load` reads back exactly.
    """
    filename = os.fspath(filename)
    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.create(cfg, flags=CONFIG_FLAGS)
    container = OmegaConf.to_container(cfg, resolve=False, structured_config_mode=SCMode.INSTANTIATE)
    unsaved: list[tuple[str, Any]] = []
    data = _plain(container, "", unsaved)
    os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
    pickle_name = filename + ".pkl"
    try:
        text = yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=9999)
    except yaml.YAMLError as e:  # e.g. keys YAML cannot hold; the pickle below still has everything
        logger.error(f"LazyConfig.save: cannot write {filename} as YAML ({e}); writing only {pickle_name}")
        unsaved.append(("(whole config)", cfg))
    else:
        atomic_write(filename, lambda f: f.write(text.encode("utf-8")))
    if not unsaved:
        if os.path.exists(pickle_name):
            os.remove(pickle_name)  # a stale pickle from an earlier save would contradict the YAML
        return
    keys = "; ".join(f"{path} ({_describe(value)})" for path, value in unsaved)
    try:
        payload = cloudpickle.dumps(cfg)
        atomic_write(pickle_name, lambda f: f.write(payload))
    except Exception as e:
        logger.error(f"LazyConfig.save: cannot pickle the config to {pickle_name} either: {e}")
        return
    logger.warning(
        f"LazyConfig.save: {len(unsaved)} value(s) cannot be written to YAML: {keys}. {filename} marks them "
        f"{_UNSAVED_TAG}; the complete config is pickled to {pickle_name} (LazyConfig.load reads it)."
    )


def _find_unsaved(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _find_unsaved(v, join_key(path, k))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in _find_unsaved(v, join_key(path, i))]
    if _is_dataclass_instance(value):
        return [
            p
            for f in dataclasses.fields(value)
            for p in _find_unsaved(getattr(value, f.name), join_key(path, f.name))
        ]
    return [path] if isinstance(value, UnsavedValue) else []


def load_yaml(filename: str) -> DictConfig:
    """Read a config written by `save` (or detectron2's `LazyConfig.save`) without running arbitrary code."""
    with open(filename, encoding="utf-8") as f:
        data = yaml.load(f, Loader=_Loader)
    data = {} if data is None else data
    unsaved = _find_unsaved(data)
    if unsaved:
        logger.warning(
            f"{filename}: placeholders stand for {len(unsaved)} value(s) that could not be saved to YAML: "
            f"{', '.join(unsaved)}; load {filename}.pkl for the complete config"
        )
    return OmegaConf.create(data, flags=CONFIG_FLAGS)


def load_pickle(filename: str) -> DictConfig:
    """Read the cloudpickle file `save` writes next to a YAML that could not hold every value."""
    with open(filename, "rb") as f:
        cfg = cloudpickle.load(f)
    return cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg, flags=CONFIG_FLAGS)


class _PyWriter:
    """Renders plain config containers as Python expressions using `L(...)` and dict literals."""

    width = 100

    def __init__(self):
        self.imports: set[str] = set()
        self.unwritable: list[str] = []

    def reference(self, value: Any) -> str | None:
        try:
            module, qualname = split_target(value)
        except ValueError:
            return None
        if module == "builtins":
            return qualname
        self.imports.add(module)
        return f"{module}.{qualname}"

    def target(self, value: Any, path: str) -> str:
        if isinstance(value, str):
            try:
                found = self.reference(locate(value))
            except Exception:  # not importable here; keep the string, which instantiate resolves later
                found = None
            return found or json.dumps(value)
        return self.expr(value, path, 0)

    def expr(self, value: Any, path: str, indent: int) -> str:
        if isinstance(value, dict) and "_target_" in value:
            head = f"L({self.target(value['_target_'], join_key(path, '_target_'))})("
            args = {k: v for k, v in value.items() if k != "_target_"}
            return self.block(head, self.keywords(args, path, indent), ")", indent)
        if isinstance(value, dict):
            if all(isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k) for k in value):
                return self.block("dict(", self.keywords(value, path, indent), ")", indent)
            items = [f"{k!r}: {self.expr(v, join_key(path, k), indent + 1)}" for k, v in value.items()]
            return self.block("{", items, "}", indent)
        if isinstance(value, list | tuple):
            items = [self.expr(v, join_key(path, i), indent + 1) for i, v in enumerate(value)]
            if isinstance(value, tuple):
                return self.block("(", items, ",)" if len(items) == 1 else ")", indent)
            return self.block("[", items, "]", indent)
        if isinstance(value, float) and not math.isfinite(value):
            return f'float("{value}")'
        if isinstance(value, str):
            return json.dumps(value, ensure_ascii=False)  # a valid Python literal, in double quotes
        if type(value) in _SCALARS:
            return repr(value)
        if isinstance(value, enum.Enum) and self.reference(type(value)):
            return f"{self.reference(type(value))}.{value.name}"
        if _is_dataclass_instance(value) and self.reference(type(value)):
            fields = dataclasses.fields(value)
            if all(f.init for f in fields):  # the constructor can rebuild it
                args = {f.name: getattr(value, f.name) for f in fields}
                return self.block(
                    f"{self.reference(type(value))}(", self.keywords(args, path, indent), ")", indent
                )
        written = self.reference(value) if callable(value) else None
        if written is None:
            self.unwritable.append(f"{path} = {_describe(value)}")
            return "..."
        return written

    def keywords(self, args: dict, path: str, indent: int) -> list[str]:
        out = []
        for k, v in args.items():
            text = self.expr(v, join_key(path, k), indent + 1)
            named = isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k)
            out.append(f"{k}={text}" if named else f"**{{{k!r}: {text}}}")
        return out

    def block(self, open_: str, items: list[str], close: str, indent: int) -> str:
        inline = open_ + ", ".join(items) + close
        if "\n" not in inline and len(inline) + 4 * indent <= self.width:
            return inline
        pad = "    " * (indent + 1)
        body = "".join(f"{pad}{item},\n" for item in items)
        return f"{open_}\n{body}{'    ' * indent}{close.lstrip(',')}"


def to_py(cfg: Any, prefix: str = "") -> str:
    """Python source that assembles `cfg` with `L(...)` calls and dict literals.

    With the default empty `prefix` the result is itself a config file: `LazyConfig.load` of it gives back
    the config (interpolations kept), except for values that have no source form (lambdas, objects), which
    are written `...` and listed in a comment at the top. `prefix="cfg."` writes `cfg.model = ...`.
    """
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=False, structured_config_mode=SCMode.INSTANTIATE)
    writer = _PyWriter()
    lines = []
    for key, value in cfg.items():
        name = f"{prefix}{key}" if str(key).isidentifier() else f"globals()[{key!r}]"
        lines.append(f"{name} = {writer.expr(value, str(key), 0)}")
    header = [f"import {m}" for m in sorted(writer.imports)]
    header += (
        ["", "from detrex.config import LazyCall as L"]
        if header
        else ["from detrex.config import LazyCall as L"]
    )
    if writer.unwritable:
        header = (
            ["# Values with no source form, written as `...`:"]
            + [f"#   {u}" for u in writer.unwritable]
            + header
        )
    return "\n".join(header + ["", ""] + lines) + "\n"

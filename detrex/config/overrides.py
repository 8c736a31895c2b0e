"""Command-line overrides (`train.max_iter=1000`, `+train.new_key=1`, `~train.key`) for lazy configs."""

from __future__ import annotations

import ast
import contextlib
import difflib
import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .instantiate import SEQUENCE_CONFIGS, close_names, join_key

__all__ = ["ConfigOverrideError", "apply_overrides", "parse_value"]

# Spellings that are not Python literals but that YAML/Hydra users type; anything else non-literal stays a str.
_WORDS = {"true": True, "false": False, "null": None, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_MISSING = object()

# Keys that detrex's configs had and this project moved; an override of the old key sets the new one,
# with a warning, so published detrex commands keep working. detrex wrote `model.device = train.device`;
# here `train.device` is the one device knob (tools/train_net.py moves the model once).
RENAMED_KEYS = {"model.device": "train.device"}


class ConfigOverrideError(KeyError, ValueError):
    """An override names a key that does not exist, or cannot be parsed or applied.

    A KeyError (detectron2 raises one for unknown keys) and a ValueError (a malformed override).
    """

    def __str__(self) -> str:  # KeyError would print the repr of the message, newlines escaped
        return str(self.args[0]) if self.args else ""


def parse_value(text: str) -> Any:
    """The Python literal `text` spells ("1e-4", "(0.9, 0.999)", "[1, 2]", "True", "None", "'a b'"), else text.

    true/false/null (YAML spellings) and inf/-inf/nan are understood too; "cpu", "./out" or "${..lr}"
    (an interpolation) stay strings.
    """
    text = text.strip()
    if text in _WORDS:
        return _WORDS[text]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _split(text: str) -> tuple[str, str, str]:
    """(mode, key, raw value) of one override; mode is "set", "add" (+key), "force" (++key) or "delete" (~key).

    List items may be written ``a.0.b`` or, as in the config files, ``a[0].b``."""
    if text.startswith("~"):
        return "delete", _dotted(text[1:].partition("=")[0].strip()), ""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if text.startswith("-"):
        raise ConfigOverrideError(
            f"override {text!r} looks like a command-line flag: flags go before the first key=value "
            "override (everything after it is read as overrides)"
        )
    if not sep or not key.lstrip("+"):
        raise ConfigOverrideError(f"override {text!r}: expected key=value, e.g. train.max_iter=1000")
    if key.startswith("++"):
        return "force", _dotted(key[2:]), raw
    if key.startswith("+"):
        return "add", _dotted(key[1:]), raw
    return "set", _dotted(key), raw


def _dotted(key: str) -> str:
    """``a[0].b`` -> ``a.0.b``."""
    return re.sub(r"\[(-?\d+)\]", r".\1", key).lstrip(".")


def _check_value(text: str, key: str, parent: Any, value: Any) -> None:
    """Refuse, before anything is built with it, a value that does not fit the key: a list with bare words
    (``[res4]``), a word where the config holds a number or a bool (``train.max_iter=abc``), or a number of
    the wrong kind (``model.num_classes=3.5``, ``train.max_iter=1e3``, ``train.amp.enabled=1``).
    An int for a float key, interpolations, None, lists and dicts stay allowed."""
    if isinstance(value, str) and "${" in value:
        return
    if isinstance(value, str):
        stripped = value.strip()
        if stripped and stripped[0] in "[(" and stripped[-1] in "])":
            raise ConfigOverrideError(
                f"override {text!r}: {value!r} looks like a list but is not a Python literal (a bare word in "
                f"it?); quote the strings in it, e.g. {key}=\"['a', 'b']\", or quote the whole value to mean a "
                "string"
            )
    current = _child(parent, key.rsplit(".", 1)[-1])
    if not isinstance(current, bool | int | float) or not isinstance(value, str | bool | int | float):
        return
    holds = f"{key} holds {type(current).__name__} {current!r}"
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigOverrideError(
                f"override {text!r}: {holds}, and {value!r} is not one; write {key}=True or {key}=False"
            )
    elif isinstance(value, str):
        raise ConfigOverrideError(
            f"override {text!r}: {holds}, and {value!r} is not one; write a number, or quote the value if "
            f"a string is really meant ({key}=\"'{value}'\")"
        )
    elif isinstance(value, bool):
        raise ConfigOverrideError(f"override {text!r}: {holds}, and {value!r} is a bool; write a number")
    elif isinstance(current, int) and isinstance(value, float):
        raw = text.partition("=")[2].strip()
        if math.isfinite(value) and value == int(value):
            fix = f"is the float {value!r}; write it as a whole number: {key}={int(value)}"
        else:
            fix = f"is not a whole number; {key} takes an integer" + (
                f", e.g. {key}={math.floor(value)}" if math.isfinite(value) else ""
            )
        raise ConfigOverrideError(f"override {text!r}: {holds}, and {raw} {fix}")


def _child(node: Any, part: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, SEQUENCE_CONFIGS) else node[part]  # resolves ${...}
    except Exception:  # a "???" or a broken interpolation: not a node one can descend into
        return _MISSING


def _walk(cfg: DictConfig, text: str, key: str) -> tuple[bool, int, Any]:
    """(exists, depth of the first missing part, node at that depth) for the dotted `key`."""
    parts = key.split(".")
    node = cfg
    for depth, part in enumerate(parts):
        if isinstance(node, DictConfig):
            exists = part in node.keys()  # unlike `in node`, keys() includes "???" values
        elif isinstance(node, SEQUENCE_CONFIGS):
            exists = part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node)
        else:
            here = ".".join(parts[:depth])
            shown = (
                "a missing or unresolvable value" if node is _MISSING else f"{type(node).__name__} {node!r}"
            )
            raise ConfigOverrideError(
                f"override {text!r}: {here!r} holds {shown}, not a config node; cannot set {part!r} inside it"
            )
        if not exists:
            return False, depth, node
        if depth < len(parts) - 1:
            node = _child(node, part)
    return True, len(parts), node


def _all_paths(cfg: DictConfig, limit: int = 20000) -> list[str]:
    paths: list[str] = []
    stack: list[tuple[str, Any]] = [("", OmegaConf.to_container(cfg, resolve=False))]
    while stack and len(paths) < limit:
        prefix, value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            path = join_key(prefix, k)
            paths.append(path)
            if isinstance(v, dict | list | tuple):
                stack.append((path, v))
    return paths


def _unknown_key_message(cfg: DictConfig, text: str, key: str, depth: int, parent: Any) -> str:
    parts = key.split(".")
    missing, where = parts[depth], ".".join(parts[:depth])
    where_text = f"under {where!r}" if where else "at the top level"
    siblings = [str(k) for k in parent.keys()] if isinstance(parent, DictConfig) else []
    paths = _all_paths(cfg)
    close = [join_key(where, s) for s in close_names(missing, siblings)]
    close += [p for p in paths if p.rsplit(".", 1)[-1] == parts[-1]]  # the same name somewhere else
    same_depth = [p for p in paths if p.count(".") == key.count(".")]
    close += difflib.get_close_matches(key, same_depth, n=3, cutoff=0.8)
    close = list(dict.fromkeys(close))[:4]
    message = f"override {text!r}: no key {missing!r} {where_text}.\n  "
    if close:
        message += f"Closest: {', '.join(close)}. "
    elif siblings:
        more = ", ..." if len(siblings) > 12 else ""
        message += f"Keys {where_text}: {', '.join(siblings[:12])}{more}. "
    if text.startswith("~"):  # deleting: there is nothing to add
        return message.rstrip() + " Nothing was deleted."
    return message + f"To add a new key on purpose, write +{text.lstrip('+')}."


def _delete(cfg: DictConfig, key: str) -> None:
    parent_key, _, last = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    with open_dict(parent):
        del parent[int(last) if isinstance(parent, SEQUENCE_CONFIGS) else last]


def apply_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """Apply command-line overrides to `cfg` in place and return it.

    `a.b=value` sets an existing key (value parsed by `parse_value`); an unknown key is a
    ConfigOverrideError listing the closest existing keys. `+a.b=value` adds a new key (an error if it
    exists), `++a.b=value` sets it either way, `~a.b` deletes it. Values go through omegaconf, so
    `${..x}` interpolations elsewhere follow the new value, and a dict value merges into a node.
    """
    if not isinstance(cfg, DictConfig):
        raise TypeError(f"apply_overrides needs an omegaconf DictConfig, got {type(cfg).__name__}")
    for text in overrides:
        mode, key, raw = _split(text)
        exists, depth, parent = _walk(cfg, text, key)
        if not exists and key in RENAMED_KEYS and _walk(cfg, text, RENAMED_KEYS[key])[0]:
            new_key = RENAMED_KEYS[key]
            logging.getLogger(__name__).warning(
                "override %r: %r is now %r; setting that.", text, key, new_key
            )
            key = new_key
            exists, depth, parent = _walk(cfg, text, key)
        if not exists and mode in ("set", "delete"):
            raise ConfigOverrideError(_unknown_key_message(cfg, text, key, depth, parent))
        if exists and mode == "add":
            raise ConfigOverrideError(
                f"override {text!r}: {key!r} already exists; write {key}={raw} to change it "
                f"(or ++{key}={raw} to set it whether or not it exists)"
            )
        try:
            if mode == "delete":
                _delete(cfg, key)
                continue
            value = parse_value(raw)
            if mode == "set" and not raw.strip().startswith(("'", '"')):
                _check_value(text, key, parent, value)
            with open_dict(cfg) if mode != "set" else contextlib.nullcontext():
                OmegaConf.update(cfg, key, value, merge=True)
        except ConfigOverrideError:
            raise
        except Exception as e:  # omegaconf's own refusals: an immutable tuple, a bad interpolation, ...
            raise ConfigOverrideError(f"override {text!r}: {type(e).__name__}: {e}") from e
    return cfg

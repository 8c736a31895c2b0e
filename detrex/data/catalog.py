"""Name -> dataset and name -> metadata registries (the detectron2 API).

DatasetCatalog.register("my_train", lambda: load_coco_json(json_file, image_root, "my_train"))
dicts = DatasetCatalog.get("my_train")          # calls the function: datasets load lazily
MetadataCatalog.get("my_train").thing_classes   # plain attributes, set once
"""

from __future__ import annotations

import difflib
from collections import UserDict
from collections.abc import Callable
from typing import Any

__all__ = ["DatasetCatalog", "MetadataCatalog", "Metadata"]


class UnregisteredNameError(KeyError):
    """A dataset name nobody registered. A KeyError (as in detectron2) whose message prints as written."""

    def __str__(self) -> str:  # KeyError's own str() is the repr, newlines escaped
        return str(self.args[0]) if self.args else ""


def _unknown_name_message(kind: str, name: str, registered: list[str]) -> str:
    close = difflib.get_close_matches(name, registered, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(sorted(registered)) or "(none)"
    return (
        f"{kind} {name!r} is not registered.{hint}\n  Registered: {listing}\n"
        "  Register your own in the config file that uses it (configs run before anything is built) with "
        "register_coco_instances(name, metadata, json_file, image_root) or DatasetCatalog.register(name, func)."
    )


class _DatasetCatalog(UserDict):
    """Maps a dataset name to a zero-argument function returning a list of dataset dicts."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        if not callable(func):
            raise TypeError(f"DatasetCatalog.register({name!r}, ...): expected a callable, got {type(func)}")
        if name in self:
            raise KeyError(f"dataset {name!r} is already registered; DatasetCatalog.remove({name!r}) first")
        self[name] = func

    def get(self, name: str) -> list[dict]:
        try:
            func = self[name]
        except KeyError:
            raise UnregisteredNameError(_unknown_name_message("dataset", name, list(self.keys()))) from None
        return func()

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"

    __repr__ = __str__


class Metadata:
    """Attributes describing a dataset (class names, id maps, files), each set once.

    Setting an attribute again to a different value raises, so two registrations cannot silently
    disagree. Values given to `set_lazy` are computed on every read (paths under $DETREX_DATASETS are
    resolved when used, not at import).
    """

    def __init__(self, name: str = ""):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_lazy", {})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        values, lazy = self.__dict__["_values"], self.__dict__["_lazy"]
        if key in values:
            return values[key]
        if key in lazy:
            return lazy[key]()
        known = sorted(set(values) | set(lazy))
        raise AttributeError(f"metadata of dataset {self.name!r} has no {key!r}. Available: {known}")

    def __setattr__(self, key: str, val: Any) -> None:
        if key == "name":
            raise AttributeError("Metadata.name is fixed at creation")
        if key in self._lazy:
            current = self._lazy[key]()
            if current != val:
                raise ValueError(
                    f"metadata {key!r} of dataset {self.name!r} is {current!r}; cannot set it to {val!r}"
                )
            return
        if key in self._values and self._values[key] != val:
            raise ValueError(
                f"metadata {key!r} of dataset {self.name!r} is already {self._values[key]!r}; cannot set it "
                f"to {val!r}. Use MetadataCatalog.remove({self.name!r}) to start over."
            )
        self._values[key] = val

    def __delattr__(self, key: str) -> None:
        self._values.pop(key, None)
        self._lazy.pop(key, None)

    def set(self, **kwargs: Any) -> Metadata:
        for key, val in kwargs.items():
            setattr(self, key, val)
        return self

    def set_lazy(self, **funcs: Callable[[], Any]) -> Metadata:
        """Attributes computed when read, e.g. `json_file=lambda: os.path.join(datasets_root(), ...)`."""
        for key, func in funcs.items():
            if key in self._values:
                raise ValueError(f"metadata {key!r} of dataset {self.name!r} is already set to a value")
            self._lazy[key] = func
        return self

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            return default

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name}
        out.update({k: f() for k, f in self._lazy.items()})
        out.update(self._values)
        return out

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "name")
        return f"Metadata(name={self.name!r}, {body})"


class _MetadataCatalog(UserDict):
    """Maps a dataset name to its Metadata; `get` creates an empty one on first use (as detectron2)."""

    def get(self, name: str) -> Metadata:
        if not name:
            raise ValueError("MetadataCatalog.get: empty dataset name")
        if name not in self:
            self[name] = Metadata(name=name)
        return self[name]

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()
MetadataCatalog = _MetadataCatalog()


def unknown_dataset_error(name: str) -> KeyError:
    """The KeyError DatasetCatalog.get raises for `name` (reused by callers that check names early)."""
    return UnregisteredNameError(_unknown_name_message("dataset", name, DatasetCatalog.list()))

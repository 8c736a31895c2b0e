"""Per-image annotations or predictions: named fields of equal length (detectron2's `Instances`)."""

from __future__ import annotations

import itertools
from typing import Any

import torch


class Instances:
    """Holds fields (`gt_boxes`, `scores`, ...) that all have the same length N, for one image.

    `image_size` is (height, width). Fields are tensors, `Boxes`, lists, or anything supporting
    `len()` and indexing; indexing an `Instances` indexes every field with the same key.
    """

    def __init__(self, image_size: tuple[int, int], **fields: Any):
        self._image_size = (int(image_size[0]), int(image_size[1]))
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> tuple[int, int]:
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        if name == "_fields" or name not in self._fields:
            known = ", ".join(self._fields) if "_fields" in self.__dict__ else ""
            raise AttributeError(f"Instances has no field '{name}' (fields: {known or 'none'})")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        n = len(value)
        if self._fields and n != len(self):
            raise ValueError(f"Adding field '{name}' of length {n} to Instances of length {len(self)}")
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        return self._fields

    def to(self, *args, **kwargs) -> Instances:
        out = Instances(self._image_size)
        for k, v in self._fields.items():
            out.set(k, v.to(*args, **kwargs) if hasattr(v, "to") else v)
        return out

    def __getitem__(self, item) -> Instances:
        if isinstance(item, int):
            if item >= len(self) or item < -len(self):
                raise IndexError(f"Instances index {item} out of range for length {len(self)}")
            item = slice(item, None, len(self))  # one element, but keep the leading dimension
        out = Instances(self._image_size)
        for k, v in self._fields.items():
            if isinstance(v, list):
                out.set(k, _index_list(v, item))
            else:
                out.set(k, v[item])
        return out

    def __len__(self) -> int:
        for v in self._fields.values():
            return len(v)
        return 0

    def __iter__(self):
        raise NotImplementedError("Instances are not iterable; index them or read a field")

    @staticmethod
    def cat(instance_lists: list[Instances]) -> Instances:
        if len(instance_lists) == 0:
            raise ValueError("Instances.cat needs at least one Instances")
        if len(instance_lists) == 1:
            return instance_lists[0]
        size = instance_lists[0].image_size
        if any(i.image_size != size for i in instance_lists):
            raise ValueError("Instances.cat: all image sizes must be equal")
        out = Instances(size)
        for k in instance_lists[0]._fields:
            values = [i.get(k) for i in instance_lists]
            v0 = values[0]
            if isinstance(v0, torch.Tensor):
                merged = torch.cat(values, dim=0)
            elif isinstance(v0, list):
                merged = list(itertools.chain(*values))
            elif hasattr(type(v0), "cat"):
                merged = type(v0).cat(values)
            else:
                raise ValueError(f"Instances.cat: field '{k}' of type {type(v0)} cannot be concatenated")
            out.set(k, merged)
        return out

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {_short(v)}" for k, v in self._fields.items())
        return (
            f"Instances(num_instances={len(self)}, image_height={self._image_size[0]}, "
            f"image_width={self._image_size[1]}, fields=[{fields}])"
        )


def _index_list(values: list, item) -> list:
    if isinstance(item, slice):
        return values[item]
    if isinstance(item, torch.Tensor):
        if item.dtype == torch.bool:
            item = item.nonzero().flatten()
        return [values[i] for i in item.tolist()]
    return [values[i] for i in item]


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"Tensor{tuple(v.shape)}"
    return repr(v) if len(repr(v)) < 60 else f"{type(v).__name__}(len={len(v)})"

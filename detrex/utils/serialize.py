"""Pickling helpers: `PicklableWrapper` lets closures and lambdas cross process boundaries (cloudpickle)."""

from typing import Any

import cloudpickle

__all__ = ["PicklableWrapper"]


class PicklableWrapper:
    """Wrap `obj` (e.g. a lambda given as a dataset mapper) so that pickle serializes it with cloudpickle.

    Calls and attribute reads go to `obj`; unpickling gives back `obj` itself. Wrapping twice is the same
    as wrapping once. cloudpickle is slower than pickle, so wrap only what pickle cannot handle.
    """

    def __init__(self, obj: Any):
        while isinstance(obj, PicklableWrapper):
            obj = obj._obj
        self._obj = obj

    def __reduce__(self):
        return cloudpickle.loads, (cloudpickle.dumps(self._obj),)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._obj(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "_obj":  # not set yet (e.g. during copy): do not recurse into __getattr__
            raise AttributeError(name)
        return getattr(self._obj, name)
